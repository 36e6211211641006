/**
 * The decrypt worker thread (decrypt-offload.ts runs it): decrypts one large SEIPD v1 body at a time,
 * checks its MDC and inflates the compressed packet inside, with the main thread's own code
 * (seipd.ts, inner-message.ts, inflate.ts), so results and errors are the same. Ciphertext arrives
 * in shared input slots ('in' messages, handed back with 'in-free'); output goes into shared output
 * slots, announced with 'out' messages, which the main thread copies out and releases through the
 * control array. When no output slot is free the worker blocks (Atomics.wait): that is the
 * back-pressure that keeps memory at the slots' size whatever the compression ratio.
 * The main thread can stop the output (the packet is refused): then the job either ends ('aborted')
 * or, when asked to drain, decrypts the rest for the MDC only, without inflating it.
 * Every job ends with exactly one 'done', 'error' or 'aborted' message carrying its id.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createGcPacer } from '../memory/gc-pacer.js';
import { SyncInflater } from './inflate.js';
import { innerMessage } from './inner-message.js';
import { PgpFormatError } from './pgpstream.js';
import { seipdV1Decrypt } from './seipd.js';

export interface DecryptWorkerSetup {
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  /**
   * Int32: [STOP] id of a job whose output must stop; [DRAIN] id of a job to drain once stopped (set
   * before STOP); [SLOTS + i] output slot i is held by the reader (1) or free (0); [SLOTS + slots]
   * 1 + the slot the worker is waiting for, or 0 (the reader wakes it only then: a notify is a system
   * call).
   */
  ctrl: SharedArrayBuffer;
  slot: number;
}

export const CTRL_STOP = 0;
export const CTRL_DRAIN = 1;
export const CTRL_SLOTS = 2;

export type ToWorker =
  | { t: 'start'; id: number; algorithm: string; key: Uint8Array; maxRatio: number }
  /** Ciphertext at `off` in input slot `slot`, handed back with 'in-free' once decrypted. */
  | { t: 'in'; id: number; slot: number; off: number; len: number }
  | { t: 'end'; id: number }
  | { t: 'abort'; id: number };

export type FromWorker =
  /** `last`: the reader releases the slot once it has copied this piece. */
  | { t: 'out'; id: number; slot: number; off: number; len: number; last: boolean }
  | { t: 'in-free'; id: number; slot: number }
  | { t: 'done'; id: number; verified: boolean }
  | { t: 'aborted'; id: number }
  /** `verified`: the error is in the inner data; the rest was decrypted and its MDC checked out. */
  | { t: 'error'; id: number; verified: boolean; name: string; message: string; code?: string; errno?: number };

/** The main thread stopped the output, or aborted the job. */
class Stopped extends Error {}

interface Job {
  id: number;
  /** Input slots of the ranges yielded to the decryption and not reported consumed yet, in order. */
  yielded: number[];
  /** The next output slot in turn. */
  next: number;
  inputs: ({ slot: number; off: number; len: number } | 'end')[];
  aborted: boolean;
  wake: (() => void) | undefined;
}

function main(port: NonNullable<typeof parentPort>, setup: DecryptWorkerSetup): void {
  const ctrl = new Int32Array(setup.ctrl);
  const slots = setup.output.byteLength / setup.slot;
  const waiting = CTRL_SLOTS + slots;
  let job: Job | undefined;
  // Every ciphertext chunk decrypts into a fresh Buffer: without paced scavenges they pile up as
  // external memory (the main thread paces its own the same way, memory/gc-pacer.ts). Only with the
  // gc() that --expose-gc gives (the daemon's flags; a worker inherits them): the pacer's other way
  // to reach it changes V8's process-wide flags, which the main thread may be doing at the same time.
  const gc = (globalThis as { gc?: (opts: { type: 'minor' }) => void }).gc;
  const gcPacer = createGcPacer({ collect: typeof gc === 'function' ? () => gc({ type: 'minor' }) : null });

  const stopped = (j: Job): boolean => Atomics.load(ctrl, CTRL_STOP) === j.id;

  /** The next output slot in turn, once the reader has released it. */
  const allocOut = (j: Job): Buffer => {
    const i = j.next;
    j.next = (i + 1) % slots;
    while (Atomics.load(ctrl, CTRL_SLOTS + i) !== 0) {
      if (stopped(j)) throw new Stopped();
      Atomics.store(ctrl, waiting, 1 + i);
      // Checked again after announcing the wait: a release in between is then either seen here or notified.
      if (Atomics.load(ctrl, CTRL_SLOTS + i) !== 0 && !stopped(j)) Atomics.wait(ctrl, CTRL_SLOTS + i, 1, 1000);
      Atomics.store(ctrl, waiting, 0);
    }
    if (stopped(j)) throw new Stopped();
    Atomics.store(ctrl, CTRL_SLOTS + i, 1);
    return Buffer.from(setup.output, i * setup.slot, setup.slot);
  };

  /** Announces output: in place if the inflater wrote it into a slot, else copied into slots. */
  const emit = (j: Job, o: Buffer): void => {
    if (o.buffer === setup.output) {
      const slot = Math.floor(o.byteOffset / setup.slot);
      const off = o.byteOffset - slot * setup.slot;
      port.postMessage({ t: 'out', id: j.id, slot, off, len: o.length, last: off + o.length === setup.slot } satisfies FromWorker);
      return;
    }
    for (let p = 0; p < o.length; p += setup.slot) {
      const piece = o.subarray(p, p + setup.slot);
      const s = allocOut(j);
      s.set(piece);
      port.postMessage({ t: 'out', id: j.id, slot: Math.floor(s.byteOffset / setup.slot), off: 0, len: piece.length, last: true } satisfies FromWorker);
    }
  };

  /** The ciphertext as the main thread hands it over, each range a view of its input slot. */
  async function* ciphertext(j: Job): AsyncGenerator<Uint8Array> {
    for (;;) {
      while (j.inputs.length === 0 && !j.aborted) await new Promise<void>((r) => (j.wake = r));
      j.wake = undefined;
      if (j.aborted) throw new Stopped();
      const m = j.inputs.shift()!;
      if (m === 'end') return;
      j.yielded.push(m.slot);
      yield Buffer.from(setup.input, m.slot * setup.slot + m.off, m.len);
    }
  }

  /**
   * A range is handed back as soon as it is decrypted (seipdV1Decrypt's onConsumed: the plaintext is
   * a copy), not after its plaintext was inflated: the reader can read on into the slot ~1 ms sooner
   * per 256 KiB, and the worker waited for input 13 % of its time in a profile.
   */
  const consumed = (j: Job, ct: Uint8Array): void => {
    // Reported in the order they were yielded (seipdV1Decrypt decrypts them in order).
    const slot = j.yielded.shift();
    if (slot === undefined || ct.buffer !== setup.input) throw new Error('decrypt worker: a ciphertext range reported that was not handed over');
    gcPacer.account(ct.length);
    port.postMessage({ t: 'in-free', id: j.id, slot } satisfies FromWorker);
  };

  async function run(j: Job, m: Extract<ToWorker, { t: 'start' }>): Promise<void> {
    let verified = false;
    const plain = seipdV1Decrypt(m.algorithm, m.key, ciphertext(j), () => (verified = true), (ct) => consumed(j, ct));
    const signed = innerMessage(plain, (algo) => new SyncInflater(algo, { outChunk: setup.slot, maxRatio: m.maxRatio, allocOut: () => allocOut(j) }));
    let result: FromWorker;
    try {
      for await (const o of signed) emit(j, o as Buffer);
      result = { t: 'done', id: j.id, verified };
    } catch (e) {
      if (e instanceof Stopped && Atomics.load(ctrl, CTRL_DRAIN) !== j.id) result = { t: 'aborted', id: j.id };
      else result = await drain(j, plain, e, () => verified);
    }
    await plain.return(undefined).catch(() => undefined);
    job = undefined;
    port.postMessage(result);
  }

  /**
   * The rest through decryption and the MDC only, without inflating it: asked for (output stopped,
   * the packet is refused), or after the inner data failed, so that the integrity check decides first.
   * If the decryption itself failed, `plain` has ended: the drain ends at once and `cause` (the
   * decryption's error, not verified) is what is reported.
   */
  async function drain(j: Job, plain: AsyncGenerator<Uint8Array>, cause: unknown, verified: () => boolean): Promise<FromWorker> {
    try {
      for (let n = await plain.next(); !n.done; n = await plain.next());
    } catch (e) {
      return e instanceof Stopped ? { t: 'aborted', id: j.id } : failure(j.id, e, false);
    }
    return cause instanceof Stopped ? { t: 'done', id: j.id, verified: verified() } : failure(j.id, cause, verified());
  }

  port.on('message', (m: ToWorker) => {
    if (m.t === 'start') {
      // The main thread starts a job only once the previous one has ended.
      const j: Job = { id: m.id, yielded: [], next: 0, inputs: [], aborted: false, wake: undefined };
      job = j;
      void run(j, m);
      return;
    }
    const j = job;
    if (!j || j.id !== m.id) return; // a job already finished: its late messages are void
    if (m.t === 'in') j.inputs.push({ slot: m.slot, off: m.off, len: m.len });
    else if (m.t === 'end') j.inputs.push('end');
    else j.aborted = true;
    j.wake?.();
  });
}

function failure(id: number, e: unknown, verified: boolean): FromWorker {
  const err = e as NodeJS.ErrnoException;
  return {
    t: 'error',
    id,
    verified,
    name: e instanceof PgpFormatError ? 'PgpFormatError' : 'Error',
    message: err.message ?? String(e),
    ...(err.code !== undefined ? { code: err.code } : {}),
    ...(err.errno !== undefined ? { errno: err.errno } : {}),
  };
}

if (parentPort) main(parentPort, workerData as DecryptWorkerSetup);
