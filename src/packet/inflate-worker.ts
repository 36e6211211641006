/**
 * The inflate worker thread (inflate-offload.ts runs it): inflates one compressed body at a time with
 * the same SyncInflater the main thread uses, so results and errors are the same. Input arrives in
 * shared input slots ('in' messages, handed back with 'in-free'); output goes into shared output
 * slots, announced with 'out' messages, which the main thread copies out and releases through the
 * control array. When no output slot is free the worker blocks (Atomics.wait): that is the
 * back-pressure that keeps memory at the slots' size whatever the compression ratio.
 * Every job ends with exactly one 'done', 'error' or 'aborted' message carrying its id.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SyncInflater } from './inflate.js';
import { PgpFormatError } from './pgpstream.js';

export interface InflateWorkerSetup {
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  /**
   * Int32: [0] id of a job to abort; [1 + i] output slot i is held by the reader (1) or free (0);
   * [1 + slots] 1 + the slot the worker is waiting for, or 0 (the reader wakes it only then: a
   * notify is a system call, dear under gVisor).
   */
  ctrl: SharedArrayBuffer;
  slot: number;
}

export type ToWorker =
  | { t: 'start'; id: number; algo: 1 | 2; maxRatio: number }
  | { t: 'in'; id: number; slot: number; len: number }
  | { t: 'end'; id: number }
  | { t: 'abort'; id: number };

export type FromWorker =
  | { t: 'out'; id: number; slot: number; off: number; len: number }
  | { t: 'in-free'; id: number; slot: number }
  | { t: 'done'; id: number }
  | { t: 'aborted'; id: number }
  | { t: 'error'; id: number; name: string; message: string; code?: string; errno?: number };

class Aborted extends Error {}

function main(port: NonNullable<typeof parentPort>, setup: InflateWorkerSetup): void {
  const ctrl = new Int32Array(setup.ctrl);
  const slots = setup.output.byteLength / setup.slot;
  const waiting = 1 + slots;
  let job: { id: number; z: SyncInflater; next: number } | undefined;

  const aborted = (id: number): boolean => Atomics.load(ctrl, 0) === id;

  /** The next output slot in turn, once the reader has released it. */
  const allocOut = (): Buffer => {
    const j = job!;
    const i = j.next;
    j.next = (i + 1) % slots;
    while (Atomics.load(ctrl, 1 + i) !== 0) {
      if (aborted(j.id)) throw new Aborted();
      Atomics.store(ctrl, waiting, 1 + i);
      // Checked again after announcing the wait: a release in between is then either seen here or notified.
      if (Atomics.load(ctrl, 1 + i) !== 0 && !aborted(j.id)) Atomics.wait(ctrl, 1 + i, 1, 1000);
      Atomics.store(ctrl, waiting, 0);
    }
    if (aborted(j.id)) throw new Aborted();
    Atomics.store(ctrl, 1 + i, 1);
    return Buffer.from(setup.output, i * setup.slot, setup.slot);
  };

  const emit = (id: number, o: Buffer): void => {
    const slot = Math.floor(o.byteOffset / setup.slot);
    port.postMessage({ t: 'out', id, slot, off: o.byteOffset - slot * setup.slot, len: o.length } satisfies FromWorker);
  };

  const finish = (msg: FromWorker): void => {
    job?.z.close();
    job = undefined;
    port.postMessage(msg);
  };

  const run = (id: number, step: (j: NonNullable<typeof job>) => void): void => {
    if (!job || job.id !== id) return; // a job already finished (error or abort): its late messages are void
    try {
      step(job);
    } catch (e) {
      if (e instanceof Aborted) finish({ t: 'aborted', id });
      else {
        const err = e as NodeJS.ErrnoException;
        finish({
          t: 'error',
          id,
          name: e instanceof PgpFormatError ? 'PgpFormatError' : 'Error',
          message: err.message ?? String(e),
          ...(err.code !== undefined ? { code: err.code } : {}),
          ...(err.errno !== undefined ? { errno: err.errno } : {}),
        });
      }
    }
  };

  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'start':
        job?.z.close();
        job = { id: m.id, z: new SyncInflater(m.algo, { outChunk: setup.slot, maxRatio: m.maxRatio, allocOut }), next: 0 };
        return;
      case 'in':
        return run(m.id, (j) => {
          for (const o of j.z.push(Buffer.from(setup.input, m.slot * setup.slot, m.len))) emit(m.id, o);
          port.postMessage({ t: 'in-free', id: m.id, slot: m.slot } satisfies FromWorker);
        });
      case 'end':
        return run(m.id, (j) => {
          for (const o of j.z.end()) emit(m.id, o);
          finish({ t: 'done', id: m.id });
        });
      case 'abort':
        if (job?.id === m.id) finish({ t: 'aborted', id: m.id });
        return;
    }
  });
}

if (parentPort) main(parentPort, workerData as InflateWorkerSetup);
