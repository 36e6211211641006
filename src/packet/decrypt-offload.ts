/**
 * Decryption of large packets on a worker thread, so that it runs on the second core while this
 * thread hashes, checks the signature and writes (docs/performance-history.md, "large-message"): the worker
 * decrypts the SEIPD v1 body, checks its MDC and inflates the compressed packet inside, with the same
 * code this thread runs (decrypt-worker.ts), so output and errors are the same bytes and messages;
 * errors come back as PgpFormatError or as an Error with zlib's code and errno. One worker per
 * process, one packet at a time: while it is busy (or broken) open() returns undefined and the
 * caller decrypts on its own thread as before.
 *
 * Memory: shared slots, allocated once (decrypt-input.ts's input slots, OUT_SLOTS of SLOT bytes for
 * output). Ciphertext goes in where the receiver's file reader read it, else copied. Output is copied out of
 * its slot into Buffers of at most OUT_PIECE bytes that the reader may keep, and the slot released;
 * the worker waits for a free slot, so it runs at most OUT_SLOTS slots ahead of the reader. Handing
 * buffers over by transfer instead was measured slower than inflating on one thread (page faults).
 */
import { Worker } from 'node:worker_threads';
import { IN_SLOT, InputPump, InputSlots, MIN_FREE_AT_START, type SlotReadable } from './decrypt-input.js';
import { CTRL_DRAIN, CTRL_SLOTS, CTRL_STOP, type DecryptWorkerSetup, type FromWorker, type ToWorker } from './decrypt-worker.js';
import { PgpFormatError } from './pgpstream.js';

/** Output slots are the size of input slots: the worker's setup has one slot size for both. */
const SLOT = IN_SLOT;
const OUT_SLOTS = 8;
/** Copies handed to the reader: under glibc's mmap threshold, so freed ones are reused without page faults. */
const OUT_PIECE = 64 * 1024;

/**
 * The worker failed (it could not start, crashed or exited): a local problem, not a bad packet. The
 * decoder passes it on unchanged, so the receiver retries the packet; the worker is not used again
 * and the retry decrypts on the main thread.
 */
export class DecryptWorkerFailure extends Error {
  constructor(cause: unknown) {
    super(`the decrypt worker failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'DecryptWorkerFailure';
  }
}

export interface DecryptWorkerOptions {
  /** The worker script; default: decrypt-worker.js next to this module (dist/packet/). */
  workerUrl?: URL;
}

/** One packet's decryption on the worker, as decrypt-native.ts's NativeOpen needs it. */
export interface WorkerDecryption {
  /** The inner message, decompressed. Ends only after the MDC checked out. */
  signed: AsyncGenerator<Uint8Array>;
  integrityChecked: () => boolean;
  /** Stops the output; the rest is decrypted for the MDC only. Rejects only for the decryption's errors. */
  drain: () => Promise<void>;
  /** Ends the job (the decode gave up). Never rejects. */
  close: () => Promise<void>;
}

export class DecryptWorker {
  private worker: Worker | undefined;
  private readonly inputs = new InputSlots();
  private readonly output = new SharedArrayBuffer(OUT_SLOTS * SLOT);
  private readonly ctrlBuf = new SharedArrayBuffer(4 * (CTRL_SLOTS + OUT_SLOTS + 1)); // layout: decrypt-worker.ts
  private readonly ctrl = new Int32Array(this.ctrlBuf);
  private busy = false;
  private nextId = 1;
  private failed: unknown;

  constructor(private readonly opts: DecryptWorkerOptions = {}) {}

  /**
   * Decrypts a SEIPD v1 body (`ciphertext`: after the version octet) with `algorithm` (openpgp.js's
   * name, e.g. 'aes256') and the session key; decompressed output may not exceed maxRatio times its
   * input plus 1 MiB. `source`, the input `ciphertext` is read from, if it can read on into the
   * input slots. Undefined if the worker is busy with another packet or broken, or if too few input
   * slots are free (decrypt-input.ts, MIN_FREE_AT_START).
   */
  open(algorithm: string, key: Uint8Array, ciphertext: AsyncIterable<Uint8Array>, maxRatio: number, source?: SlotReadable): WorkerDecryption | undefined {
    if (this.busy || this.failed !== undefined || this.inputs.freeCount() < MIN_FREE_AT_START) return undefined;
    let worker: Worker;
    try {
      worker = this.start();
    } catch (e) {
      this.failed = e;
      return undefined;
    }
    this.busy = true;
    const job = new Job(
      { worker, inputs: this.inputs, output: this.output, ctrl: this.ctrl, release: (slot) => this.release(slot), ended: () => (this.busy = false) },
      this.nextId++,
    );
    job.start({ algorithm, key, maxRatio }, ciphertext, source);
    return job;
  }

  /**
   * Starts the worker ahead of the first large packet: starting it (a second V8 isolate) took ~130 ms
   * in a profile, which the first large packet would otherwise wait for. Costs ~10 MiB of RSS.
   */
  warm(): void {
    if (this.failed !== undefined) return;
    try {
      this.start();
    } catch (e) {
      this.failed = e;
    }
  }

  /** Ciphertext handed over where the file reader read it, and copied, in bytes over all jobs; input slots held now. */
  inputUse(): { direct: number; copied: number; held: number } {
    return { ...this.inputs.stats, held: this.inputs.heldCount() };
  }

  /** Stops the worker (the daemon at shutdown; tests). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.failed ??= new Error('closed');
    if (w) await w.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const setup: DecryptWorkerSetup = { input: this.inputs.buffer, output: this.output, ctrl: this.ctrlBuf, slot: SLOT };
    const w = new Worker(this.opts.workerUrl ?? new URL('./decrypt-worker.js', import.meta.url), { workerData: setup });
    w.unref(); // an idle worker must not keep the process alive
    w.on('error', (e) => {
      this.failed = e;
      this.worker = undefined;
    });
    w.on('exit', (code) => {
      if (this.worker !== w) return; // closed
      this.worker = undefined;
      this.failed ??= new Error(`the decrypt worker exited with code ${code}`);
    });
    this.worker = w;
    return w;
  }

  private release(slot: number): void {
    Atomics.store(this.ctrl, CTRL_SLOTS + slot, 0);
    // The worker waits for the oldest slot; it is woken once half the slots are free, not at each one.
    const waitsFor = Atomics.load(this.ctrl, CTRL_SLOTS + OUT_SLOTS) - 1;
    if (waitsFor >= 0 && (waitsFor + OUT_SLOTS / 2 - 1) % OUT_SLOTS === slot) Atomics.notify(this.ctrl, CTRL_SLOTS + waitsFor);
  }
}

interface JobContext {
  worker: Worker;
  inputs: InputSlots;
  output: SharedArrayBuffer;
  ctrl: Int32Array;
  release: (slot: number) => void;
  /** The worker has ended the job (or died): it may take the next one. */
  ended: () => void;
}

type Terminal = Exclude<FromWorker, { t: 'out' } | { t: 'in-free' }>;

/** One packet on the worker: the pump feeding it ciphertext, the reader of its output, and its end. */
class Job implements WorkerDecryption {
  readonly signed: AsyncGenerator<Uint8Array>;
  private readonly outs: Extract<FromWorker, { t: 'out' }>[] = [];
  private readonly pump: InputPump;
  private terminal: Terminal | undefined;
  private gone: DecryptWorkerFailure | undefined;
  /** The ciphertext itself failed (truncated, trailing bytes): the decryption's error. */
  private pumpError: { error: unknown } | undefined;
  private stopped: 'drain' | 'abort' | undefined;
  private verified = false;
  /** The reader is finished with the output slots (read() ended, or was closed before it started). */
  private readerDone = false;
  private finishing = false;
  private wakeReader: (() => void) | undefined;
  private readonly finished: Promise<void>;
  private onFinished!: () => void;

  constructor(
    private readonly ctx: JobContext,
    private readonly id: number,
  ) {
    this.finished = new Promise<void>((r) => (this.onFinished = r));
    this.signed = this.read();
    this.pump = new InputPump(
      ctx.inputs,
      (slot, off, len) => this.post({ t: 'in', id, slot, off, len }),
      () => this.post({ t: 'end', id }),
      () => this.stopped === 'abort' || this.isOver(),
    );
  }

  start(params: { algorithm: string; key: Uint8Array; maxRatio: number }, ciphertext: AsyncIterable<Uint8Array>, source?: SlotReadable): void {
    const { worker } = this.ctx;
    worker.on('message', this.onMessage);
    worker.on('exit', this.onExit);
    worker.on('error', this.onError);
    this.post({ t: 'start', id: this.id, ...params });
    source?.lendFrom(this.pump.lender);
    void this.pump.run(ciphertext).catch((error: unknown) => {
      this.pumpError = { error };
      if (!this.isOver()) this.post({ t: 'abort', id: this.id }); // the worker would wait for the rest forever
      this.wake();
    });
  }

  integrityChecked = (): boolean => this.verified;

  drain = async (): Promise<void> => {
    if (!this.isOver()) this.stop('drain');
    await this.signed.return(undefined);
    this.doneReading();
    await this.finished;
    if (this.pumpError) throw this.pumpError.error;
    if (this.gone) throw this.gone;
    const t = this.terminal!;
    if (t.t === 'aborted') throw new DecryptWorkerFailure(new Error('the job was aborted while draining'));
    this.verified = t.verified;
    if (t.t === 'error' && !t.verified) throw rebuild(t);
  };

  close = async (): Promise<void> => {
    if (!this.isOver() && this.stopped === undefined) this.stop('abort');
    await this.signed.return(undefined).catch(() => undefined);
    this.doneReading();
    await this.finished;
  };

  private async *read(): AsyncGenerator<Buffer> {
    const { output, release } = this.ctx;
    try {
      for (;;) {
        while (this.outs.length > 0 && this.stopped === undefined) {
          const o = this.outs.shift()!;
          for (let p = 0; p < o.len; p += OUT_PIECE) {
            const n = Math.min(OUT_PIECE, o.len - p);
            const piece = Buffer.allocUnsafe(n);
            piece.set(new Uint8Array(output, o.slot * SLOT + o.off + p, n));
            if (p + n === o.len && o.last) release(o.slot);
            yield piece;
          }
        }
        // The ciphertext failed (truncation, trailing bytes): it wins over what the worker found since.
        if (this.pumpError) throw this.pumpError.error;
        if (this.gone) throw this.gone;
        const t = this.terminal;
        if (t?.t === 'done') {
          this.verified = t.verified;
          return;
        }
        if (t?.t === 'error') {
          this.verified = t.verified;
          throw rebuild(t);
        }
        if (t) throw new DecryptWorkerFailure(new Error(`unexpected '${t.t}'`));
        await new Promise<void>((r) => (this.wakeReader = r));
        this.wakeReader = undefined;
      }
    } finally {
      // The reader left early (the decode failed): end the job, unless it is being drained.
      if (!this.isOver() && this.stopped === undefined) this.stop('abort');
      this.doneReading();
    }
  }

  /** Stops the worker's output: it then drains the rest or aborts (decrypt-worker.ts). */
  private stop(how: 'drain' | 'abort'): void {
    this.stopped = how;
    const { ctrl } = this.ctx;
    if (how === 'drain') Atomics.store(ctrl, CTRL_DRAIN, this.id);
    Atomics.store(ctrl, CTRL_STOP, this.id);
    // 2 in every slot word: a worker about to wait on one then finds it changed and does not sleep.
    for (let i = 0; i < OUT_SLOTS; i++) {
      Atomics.store(ctrl, CTRL_SLOTS + i, 2);
      Atomics.notify(ctrl, CTRL_SLOTS + i);
    }
    if (how === 'abort') this.post({ t: 'abort', id: this.id });
    this.wake();
  }

  private isOver(): boolean {
    return this.terminal !== undefined || this.gone !== undefined;
  }

  private post(m: ToWorker): void {
    this.ctx.worker.postMessage(m);
  }

  private wake(): void {
    this.wakeReader?.();
    this.ctx.inputs.wakeAll(); // the pump and the file reader may wait for an input slot
  }

  private readonly onMessage = (m: FromWorker): void => {
    if (m.id !== this.id) return;
    if (m.t === 'out') this.outs.push(m);
    else if (m.t === 'in-free') this.pump.handedBack(m.slot);
    else this.end(m, undefined);
    this.wake();
  };

  private readonly onExit = (code: number): void => this.end(undefined, new DecryptWorkerFailure(new Error(`exited with code ${code}`)));
  private readonly onError = (e: unknown): void => this.end(undefined, new DecryptWorkerFailure(e));

  private end(terminal: Terminal | undefined, gone: DecryptWorkerFailure | undefined): void {
    if (this.isOver()) return;
    this.terminal = terminal;
    this.gone = gone;
    this.wake();
    this.finish();
  }

  private doneReading(): void {
    this.readerDone = true;
    this.finish();
  }

  /**
   * Hands the slots to the next job once both sides are done with them: the worker sent its last
   * message (or died) and the reader copied out what it wanted. The worker runs up to OUT_SLOTS ahead,
   * so its last message often comes while output is still unread; a next job then would overwrite it.
   * The pump is not waited for: it may be parked in a read that never returns, and it checks that
   * the job is over before it touches a slot again.
   */
  private finish(): void {
    if (this.finishing || !this.isOver() || !this.readerDone) return;
    this.finishing = true;
    const { worker, ctrl } = this.ctx;
    for (let i = 0; i < OUT_SLOTS; i++) Atomics.store(ctrl, CTRL_SLOTS + i, 0);
    this.pump.releaseAll();
    worker.off('message', this.onMessage);
    worker.off('exit', this.onExit);
    worker.off('error', this.onError);
    this.ctx.ended();
    this.onFinished();
  }
}

function rebuild(m: Extract<FromWorker, { t: 'error' }>): Error {
  if (m.name === 'PgpFormatError') return new PgpFormatError(m.message);
  return Object.assign(new Error(m.message), { ...(m.code !== undefined ? { code: m.code } : {}), ...(m.errno !== undefined ? { errno: m.errno } : {}) });
}
