/**
 * Inflation of large compressed bodies on a worker thread, so that it runs on the second core while
 * this thread decrypts, hashes and writes (docs/performance.md, "large-message"). One worker per
 * process, one body at a time: while it is busy (or broken) a body is inflated on the calling thread
 * as before, by the caller's own inflater. The worker runs the same SyncInflater (inflate-worker.ts),
 * so output and errors are the same bytes and messages; errors come back as PgpFormatError or as an
 * Error with zlib's code and errno.
 *
 * Memory: shared slots, allocated once (IN_SLOTS + OUT_SLOTS of SLOT bytes). Output is copied out of
 * its slot into Buffers of at most OUT_PIECE bytes that the reader may keep, and the slot released;
 * the worker waits for a free slot, so it runs at most OUT_SLOTS slots ahead of the reader. Handing
 * buffers over by transfer instead was measured slower than inflating on one thread (page faults).
 */
import { Worker } from 'node:worker_threads';
import type { FromWorker, InflateWorkerSetup, ToWorker } from './inflate-worker.js';
import { PgpFormatError } from './pgpstream.js';

const SLOT = 256 * 1024;
const IN_SLOTS = 4;
const OUT_SLOTS = 8;
/** Copies handed to the reader: under glibc's mmap threshold, so freed ones are reused without page faults. */
const OUT_PIECE = 64 * 1024;

/**
 * The worker failed (it could not start, crashed or exited): a local problem, not a bad packet. The
 * decoder passes it on unchanged, so the receiver retries the packet; the worker is not used again
 * and the retry inflates on the main thread.
 */
export class InflateWorkerFailure extends Error {
  constructor(cause: unknown) {
    super(`the inflate worker failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'InflateWorkerFailure';
  }
}

export interface InflateWorkerOptions {
  /** The worker script; default: inflate-worker.js next to this module (dist/packet/). */
  workerUrl?: URL;
}

export class InflateWorker {
  private worker: Worker | undefined;
  private readonly input = new SharedArrayBuffer(IN_SLOTS * SLOT);
  private readonly output = new SharedArrayBuffer(OUT_SLOTS * SLOT);
  private readonly ctrlBuf = new SharedArrayBuffer(4 * (2 + OUT_SLOTS)); // layout: inflate-worker.ts
  private readonly ctrl = new Int32Array(this.ctrlBuf);
  private busy = false;
  private nextId = 1;
  private failed: unknown;

  constructor(private readonly opts: InflateWorkerOptions = {}) {}

  /**
   * Inflates `compressed` (algo 1 = raw deflate, 2 = zlib) on the worker; output may not exceed
   * maxRatio times the input plus 1 MiB. If, when reading starts, the worker is busy with another
   * body or broken, `onThisThread()` inflates it instead.
   */
  async *inflate(algo: 1 | 2, compressed: AsyncIterable<Uint8Array>, maxRatio: number, onThisThread: () => AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    let worker: Worker | undefined;
    if (!this.busy && this.failed === undefined) {
      try {
        worker = this.start();
      } catch (e) {
        this.failed = e;
      }
    }
    if (!worker) {
      yield* onThisThread();
      return;
    }
    this.busy = true;
    try {
      yield* this.run(worker, algo, compressed, maxRatio);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Starts the worker ahead of the first large packet: starting it takes ~130 ms here (a second V8
   * isolate, gVisor), which the first large packet would otherwise wait for. Costs ~10 MiB of RSS.
   */
  warm(): void {
    if (this.failed !== undefined) return;
    try {
      this.start();
    } catch (e) {
      this.failed = e;
    }
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
    const setup: InflateWorkerSetup = { input: this.input, output: this.output, ctrl: this.ctrlBuf, slot: SLOT };
    const w = new Worker(this.opts.workerUrl ?? new URL('./inflate-worker.js', import.meta.url), { workerData: setup });
    w.unref(); // an idle worker must not keep the process alive
    w.on('error', (e) => {
      this.failed = e;
      this.worker = undefined;
    });
    w.on('exit', (code) => {
      if (this.worker !== w) return; // closed
      this.worker = undefined;
      this.failed ??= new Error(`the inflate worker exited with code ${code}`);
    });
    this.worker = w;
    return w;
  }

  private async *run(worker: Worker, algo: 1 | 2, compressed: AsyncIterable<Uint8Array>, maxRatio: number): AsyncGenerator<Buffer> {
    const id = this.nextId++;
    const outs: Extract<FromWorker, { t: 'out' }>[] = [];
    const freeIn: number[] = Array.from({ length: IN_SLOTS }, (_, i) => i);
    let terminal: FromWorker | undefined;
    let gone: unknown; // the worker died
    let wakeReader: (() => void) | undefined;
    let wakePump: (() => void) | undefined;
    const wake = (): void => {
      wakeReader?.();
      wakePump?.();
    };
    const onMessage = (m: FromWorker): void => {
      if (m.id !== id) return;
      if (m.t === 'out') outs.push(m);
      else if (m.t === 'in-free') freeIn.push(m.slot);
      else terminal = m;
      wake();
    };
    const onExit = (code: number): void => {
      gone ??= new InflateWorkerFailure(new Error(`exited with code ${code}`));
      wake();
    };
    const onError = (e: unknown): void => {
      gone = new InflateWorkerFailure(e);
      wake();
    };
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    worker.on('error', onError);
    const post = (m: ToWorker): void => worker.postMessage(m);

    let stop = false;
    let pumpError: unknown;
    /** Copies the compressed body into input slots as they come free. */
    const pump = (async () => {
      let slot = -1;
      let fill = 0;
      const take = async (): Promise<boolean> => {
        while (freeIn.length === 0 && !stop && terminal === undefined && gone === undefined) await new Promise<void>((r) => (wakePump = r));
        wakePump = undefined;
        if (stop || terminal !== undefined || gone !== undefined) return false;
        slot = freeIn.shift()!;
        fill = 0;
        return true;
      };
      post({ t: 'start', id, algo, maxRatio });
      for await (const chunk of compressed) {
        let off = 0;
        while (off < chunk.length) {
          if (slot < 0 && !(await take())) return;
          const n = Math.min(SLOT - fill, chunk.length - off);
          new Uint8Array(this.input, slot * SLOT + fill, n).set(chunk.subarray(off, off + n));
          fill += n;
          off += n;
          if (fill === SLOT) {
            post({ t: 'in', id, slot, len: fill });
            slot = -1;
          }
        }
        if (stop) return;
      }
      if (slot >= 0 && fill > 0) post({ t: 'in', id, slot, len: fill });
      post({ t: 'end', id });
    })().catch((e: unknown) => {
      pumpError = e;
      wake();
    });

    try {
      for (;;) {
        while (outs.length > 0) {
          const o = outs.shift()!;
          for (let p = 0; p < o.len; p += OUT_PIECE) {
            const n = Math.min(OUT_PIECE, o.len - p);
            const piece = Buffer.allocUnsafe(n);
            piece.set(new Uint8Array(this.output, o.slot * SLOT + o.off + p, n));
            if (p + n === o.len && o.off + o.len === SLOT) this.release(o.slot);
            yield piece;
          }
        }
        // The compressed input itself failed (MDC, truncation). The pump runs up to IN_SLOTS ahead, so
        // with corrupt deflate data as well either error may come first: both are PACKET_DECRYPT.
        if (pumpError !== undefined) throw pumpError;
        if (terminal?.t === 'done') return;
        if (terminal?.t === 'error') throw rebuild(terminal);
        if (terminal !== undefined || gone !== undefined) throw gone ?? new InflateWorkerFailure(new Error(`unexpected '${terminal!.t}'`));
        await new Promise<void>((r) => (wakeReader = r));
        wakeReader = undefined;
      }
    } finally {
      stop = true;
      if (terminal === undefined && gone === undefined) {
        Atomics.store(this.ctrl, 0, id);
        // 2 in every slot word: a worker about to wait on one then finds it changed and does not sleep.
        for (let i = 0; i < OUT_SLOTS; i++) {
          Atomics.store(this.ctrl, 1 + i, 2);
          Atomics.notify(this.ctrl, 1 + i);
        }
        post({ t: 'abort', id });
        while (terminal === undefined && gone === undefined) await new Promise<void>((r) => (wakeReader = r));
      }
      wakePump?.();
      await pump;
      for (let i = 0; i < OUT_SLOTS; i++) Atomics.store(this.ctrl, 1 + i, 0);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      worker.off('error', onError);
    }
  }

  private release(slot: number): void {
    Atomics.store(this.ctrl, 1 + slot, 0);
    // The worker waits for the oldest slot; it is woken once half the slots are free, not at each one.
    const waitsFor = Atomics.load(this.ctrl, 1 + OUT_SLOTS) - 1;
    if (waitsFor >= 0 && (waitsFor + OUT_SLOTS / 2 - 1) % OUT_SLOTS === slot) Atomics.notify(this.ctrl, 1 + waitsFor);
  }
}

function rebuild(m: Extract<FromWorker, { t: 'error' }>): Error {
  if (m.name === 'PgpFormatError') return new PgpFormatError(m.message);
  return Object.assign(new Error(m.message), { ...(m.code !== undefined ? { code: m.code } : {}), ...(m.errno !== undefined ? { errno: m.errno } : {}) });
}
