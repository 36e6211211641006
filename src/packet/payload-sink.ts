/**
 * The decoder's payload sink (decode.ts): given, or made from the (not yet authenticated) header when
 * the first payload bytes arrive; watched for 'error' from the start, written with back-pressure, and
 * finished only after every check passed. A failing sink is a local problem (e.g. ENOSPC), not a bad
 * packet: its error travels as SinkFailure and reaches the caller unchanged.
 */
import type { Writable } from 'node:stream';
import type { PacketHeader } from './header.js';

/** A Writable, or a function that makes one from the header (called once, before the first payload byte). */
export type PayloadSink = Writable | ((header: PacketHeader) => Writable | Promise<Writable>);

/** Raised inside the read loop when the sink fails; passed through unchanged. */
export class SinkFailure {
  constructor(readonly error: unknown) {}
}

/** The payload sink, given or made from the header on first use; watched for errors from then on. */
export class SinkSlot {
  private state: SinkState | undefined;
  constructor(private readonly source: PayloadSink) {
    if (typeof source !== 'function') this.state = watchSink(source);
  }

  async get(header: PacketHeader): Promise<SinkState> {
    if (this.state) return this.state;
    const make = this.source as (h: PacketHeader) => Writable | Promise<Writable>;
    try {
      this.state = watchSink(await make(header));
    } catch (e) {
      throw new SinkFailure(e); // a local problem (e.g. cannot create the file), not a bad packet
    }
    return this.state;
  }

  destroy(): void {
    this.state?.sink.destroy();
  }

  dispose(): void {
    this.state?.dispose();
  }
}

export interface SinkState {
  readonly sink: Writable;
  write(chunk: Uint8Array): Promise<void>;
  failure(): unknown;
  dispose(): void;
}

/** Tracks the sink's 'error' from the start (an unlistened 'error' would crash the process). */
function watchSink(sink: Writable): SinkState {
  let error: unknown;
  let failed = false;
  const onError = (e: unknown): void => {
    if (!failed) {
      failed = true;
      error = e;
    }
  };
  sink.on('error', onError);
  return {
    sink,
    failure: () => (failed ? error : undefined),
    async write(chunk) {
      if (failed) throw new SinkFailure(error);
      if (sink.write(chunk)) return;
      await new Promise<void>((resolve, reject) => {
        const done = (e?: unknown): void => {
          sink.off('drain', onDrain);
          sink.off('error', onErr);
          sink.off('close', onClose);
          if (e === undefined) resolve();
          else reject(new SinkFailure(e));
        };
        const onDrain = (): void => done();
        const onErr = (e: unknown): void => done(e);
        const onClose = (): void => done(error ?? new Error('payload sink closed before the payload was written'));
        sink.on('drain', onDrain);
        sink.on('error', onErr);
        sink.on('close', onClose);
      });
    },
    // Keep a no-op listener so a late 'error' (e.g. from destroy) cannot crash the process.
    dispose: () => {
      sink.off('error', onError);
      sink.on('error', () => undefined);
    },
  };
}

export async function finishSink(state: SinkState): Promise<void> {
  const { sink } = state;
  if (state.failure() !== undefined) throw new SinkFailure(state.failure());
  await new Promise<void>((resolve, reject) => {
    sink.once('finish', () => resolve());
    sink.once('error', (e) => reject(new SinkFailure(e)));
    sink.end();
  });
}
