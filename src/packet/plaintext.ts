/**
 * The plaintext of a packet being encoded: magic + header line, then the payload, checking the payload's
 * length and SHA-256 against the header as it goes. sample() reads ahead (kept, not lost) so the
 * encoder can decide whether compression pays. Pure.
 * Fails: a mismatch or a failing payload stream ENDS the stream early and is reported through
 * failure() (INTERNAL): openpgp does not propagate an errored source to its output, so the encoder
 * checks failure() at the end and errors its output instead of ending it.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { FerryError } from '../errors/index.js';
import type { PacketHeader } from './header.js';

export interface PlaintextSource {
  stream: ReadableStream<Uint8Array>;
  failure(): Error | undefined;
  /** Up to n bytes from the start of the payload (reads ahead; the stream still yields them). */
  sample(n: number): Promise<Uint8Array>;
}

/**
 * prefix, then the payload, checking its length and SHA-256 against the header as it goes. A problem
 * (mismatch, payload stream error) ENDS the stream early and is reported through failure(): openpgp
 * does not propagate an errored source to its output (it surfaces as an uncaught exception), so the
 * caller's guard turns it into an error on the output stream instead. `onBytes` sees each payload
 * chunk's size as it is pulled.
 */
export function plaintextSource(prefix: Uint8Array, payload: Readable | Uint8Array, header: PacketHeader, onBytes?: (n: number) => void): PlaintextSource {
  const source: AsyncIterator<unknown> =
    payload instanceof Uint8Array ? ([payload][Symbol.iterator]() as unknown as AsyncIterator<unknown>) : payload[Symbol.asyncIterator]();
  const hash = createHash('sha256');
  let count = 0;
  let sentPrefix = false;
  let failure: Error | undefined;
  const ahead: IteratorResult<unknown>[] = []; // read by sample(), not yet pulled
  let sourceError: unknown;
  let sourceFailed = false;
  const nextFromSource = async (): Promise<IteratorResult<unknown>> => {
    const a = ahead.shift();
    if (a) return a;
    if (sourceFailed) throw sourceError;
    return source.next();
  };
  const fail = (controller: ReadableStreamDefaultController<Uint8Array>, e: Error): void => {
    failure ??= e;
    controller.close();
    source.return?.().catch(() => undefined);
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!sentPrefix) {
          sentPrefix = true;
          controller.enqueue(prefix);
          return;
        }
        for (;;) {
          let next: IteratorResult<unknown>;
          try {
            next = await nextFromSource();
          } catch (e) {
            fail(controller, new FerryError('INTERNAL', `reading the payload failed: ${(e as Error).message}`, { cause: e }));
            return;
          }
          const { value, done } = next;
          if (done) {
            const digest = hash.digest('hex');
            if (count !== header.size || digest !== header.sha256) {
              const msg = `payload does not match its header: ${count} bytes sha256 ${digest}, header says ${header.size} bytes sha256 ${header.sha256}`;
              fail(controller, new FerryError('INTERNAL', msg));
            } else controller.close();
            return;
          }
          if (!(value instanceof Uint8Array)) {
            fail(controller, new FerryError('INTERNAL', 'payload stream must yield bytes (Buffer/Uint8Array), not strings'));
            return;
          }
          if (value.length === 0) continue;
          count += value.length;
          onBytes?.(value.length);
          if (count > header.size) {
            fail(controller, new FerryError('INTERNAL', `payload is longer than header.size ${header.size}`));
            return;
          }
          hash.update(value);
          controller.enqueue(value);
          return;
        }
      },
      async cancel(reason) {
        await source.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
  const sample = async (n: number): Promise<Uint8Array> => {
    const parts: Uint8Array[] = [];
    let have = 0;
    for (const a of ahead) if (!a.done && a.value instanceof Uint8Array) (parts.push(a.value), (have += a.value.length));
    while (have < n && !sourceFailed && !ahead.at(-1)?.done) {
      try {
        const r = await source.next();
        ahead.push(r);
        if (r.done || !(r.value instanceof Uint8Array)) break;
        parts.push(r.value);
        have += r.value.length;
      } catch (e) {
        sourceFailed = true; // reported when the stream reaches it
        sourceError = e;
      }
    }
    return Buffer.concat(parts).subarray(0, n);
  };
  return { stream, failure: () => failure, sample };
}

