/**
 * Streaming inflate (ZLIB, RFC 1950, or raw deflate, RFC 1951) on the calling thread, for compressed
 * packet bodies too large for one zlib.inflateSync call. node:zlib's stream runs every step on the
 * thread pool; under gVisor each hand-off costs the main thread 0.1-0.3 ms and the stages take turns
 * instead of overlapping (docs/performance-history.md, "Floors"). Here one zlib handle is driven through its
 * synchronous write, the call zlib.inflateSync itself makes, into fixed-size output buffers, so a
 * large packet inflates with no hand-off and with memory bounded by one output buffer at a time.
 *
 * This uses node:zlib internals: `_handle.writeSync`, `_writeState` and `_handle.onerror`, in Node
 * since v10. test/unit/packet-inflate.test.ts fails if they change.
 *
 * Same results as the stream it replaces: corrupt data fails with zlib's own error (e.g. "incorrect
 * data check", code Z_DATA_ERROR); a stream cut short fails at end() with "unexpected end of file"
 * (Z_BUF_ERROR); bytes after the end of the deflate stream are ignored, as node:zlib ignores them.
 * Output beyond maxRatio:1 of the input consumed (plus 1 MiB) fails with PgpFormatError.
 */
import { constants, createInflate, createInflateRaw } from 'node:zlib';
import { PgpFormatError } from './pgpstream.js';

interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number, code?: string) => void;
  close(): void;
}

interface ZlibInternals {
  _handle: ZlibHandle | null;
  _writeState: Uint32Array; // [avail_out, avail_in] after the last write
}

export interface SyncInflaterOptions {
  /**
   * Size of each output buffer. Outputs are slices of it, never written again by this inflater once
   * handed out: the caller may keep them (with allocOut, until it gives the buffer back to whoever
   * supplies them). A new buffer is taken when one is full.
   */
  outChunk: number;
  /** Output may not exceed maxRatio times the input consumed, plus 1 MiB. */
  maxRatio: number;
  /**
   * Supplies each new output buffer (default: a fresh Buffer of outChunk bytes). The off-thread
   * inflater hands out slots of shared memory that the reader has finished with instead.
   */
  allocOut?: () => Buffer;
}

export class SyncInflater {
  private readonly handle: ZlibHandle;
  private readonly state: Uint32Array;
  private readonly stream: { close(): void };
  private error: Error | undefined;
  private inBytes = 0;
  private outBytes = 0;
  /** The deflate stream has ended: what follows is ignored. */
  private ended = false;
  /** The output buffer being filled, and how much of it was already handed out. */
  private out: Buffer | undefined;
  private outOff = 0;
  private closed = false;

  /** algo: 1 = ZIP (raw deflate), 2 = ZLIB, as in the Compressed Data packet. */
  constructor(algo: 1 | 2, private readonly opts: SyncInflaterOptions) {
    const z = algo === 2 ? createInflate() : createInflateRaw();
    const internals = z as unknown as ZlibInternals;
    if (!internals._handle || typeof internals._handle.writeSync !== 'function' || !(internals._writeState instanceof Uint32Array)) {
      z.close();
      throw new Error('node:zlib internals changed: no synchronous handle (see src/packet/inflate.ts)');
    }
    this.stream = z;
    this.handle = internals._handle;
    this.state = internals._writeState;
    // Called synchronously from writeSync when zlib reports an error.
    this.handle.onerror = (message, errno, code) => {
      this.error ??= Object.assign(new Error(message), { errno, code });
    };
  }

  /** Inflates one input chunk; yields output buffers as they fill (lazily: memory stays bounded). */
  *push(input: Uint8Array): Generator<Buffer> {
    if (this.ended || input.length === 0) return;
    yield* this.run(constants.Z_NO_FLUSH, input);
  }

  /** Flushes the rest; throws if the deflate stream was cut short. Closes the handle. */
  *end(): Generator<Buffer> {
    try {
      if (!this.ended) yield* this.run(constants.Z_FINISH, new Uint8Array(0));
      if (!this.ended) throw Object.assign(new Error('unexpected end of file'), { errno: constants.Z_BUF_ERROR, code: 'Z_BUF_ERROR' });
    } finally {
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.close();
  }

  private *run(flush: number, input: Uint8Array): Generator<Buffer> {
    if (this.closed) throw new Error('inflater is closed');
    if (this.error) throw this.error;
    let off = 0;
    let left = input.length;
    for (;;) {
      // Output goes into the current buffer after what was already handed out, as node:zlib does, so
      // that many small outputs (tiny input chunks: 1-byte partial lengths) share one buffer instead of
      // each pinning a buffer of its own.
      if (!this.out || this.outOff === this.out.length) {
        this.out = this.opts.allocOut ? this.opts.allocOut() : Buffer.allocUnsafe(this.opts.outChunk);
        this.outOff = 0;
      }
      const out = this.out;
      const room = out.length - this.outOff;
      this.handle.writeSync(flush, input, off, left, out, this.outOff, room);
      if (this.error) throw this.error;
      const availOut = this.state[0]!;
      const availIn = this.state[1]!;
      const produced = room - availOut;
      this.inBytes += left - availIn;
      this.outBytes += produced;
      off += left - availIn;
      left = availIn;
      if (this.outBytes > this.opts.maxRatio * this.inBytes + (1 << 20)) {
        throw new PgpFormatError(`compressed data expands more than ${this.opts.maxRatio}:1`);
      }
      // Room left in the output buffer means zlib stopped for want of input, or at the stream's end.
      const stopped = availOut !== 0;
      if (stopped && (left > 0 || flush === constants.Z_FINISH)) this.ended = true;
      const start = this.outOff;
      this.outOff += produced;
      if (produced > 0) yield start === 0 && produced === out.length ? out : out.subarray(start, start + produced);
      if (stopped) return;
    }
  }
}
