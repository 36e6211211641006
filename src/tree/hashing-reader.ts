/**
 * Reads a large packet file for the decoder, hashing it (SHA-256, for the name check) as it goes: one
 * read ahead, each chunk read into its own buffer. It replaces fs.createReadStream piped through a
 * Transform, whose stream machinery cost the large receiver's main thread more than the reads
 * themselves (docs/performance-history.md).
 * Once lent buffers (lendFrom: the decrypt worker's input slots, decrypt-input.ts), it reads into
 * them instead, so the ciphertext reaches the worker without a copy; each is given back when the
 * decoder asks for the next chunk (it has consumed this one), when nothing was read into it, or when
 * the file is closed.
 * Fails: the iterator throws the file system's error (ENOENT, EIO, ...) where the read failed.
 * destroy() closes the file, once a read under way has returned; the iterator then ends.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { BufferLender, SlotReadable } from '../packet/decrypt-input.js';
import { hashFile } from './scan.js';

export interface HashingReaderOptions {
  /** Bytes per read. */
  chunk: number;
  /** Called with the size of each chunk read into a buffer of its own (the daemon paces GC by the garbage). */
  onBytes?: ((n: number) => void) | undefined;
}

interface Chunk {
  bytes: Uint8Array;
  /** The borrowed buffer it was read into. */
  lent: Uint8Array | undefined;
}

export class HashingFileReader implements AsyncIterable<Uint8Array>, SlotReadable {
  private readonly hash = createHash('sha256');
  private size = 0;
  private ended = false;
  private destroyed = false;
  private iterated = false;
  private handle: Promise<FileHandle> | undefined;
  /** The read under way, if any: the file is closed only after it returned. */
  private reading: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private lender: BufferLender | undefined;
  /** Borrowed buffers not given back yet (the current chunk's and the read ahead's), each with its lender. */
  private readonly borrowed = new Map<Uint8Array, BufferLender>();

  constructor(
    private readonly path: string,
    private readonly opts: HashingReaderOptions,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) throw new Error('a packet file is read once');
    this.iterated = true;
    return this.chunks();
  }

  /** From the next read on, reads into buffers `lender` lends, where it has one to lend. */
  lendFrom(lender: BufferLender): void {
    this.lender = lender;
  }

  /** Closes the file (after a read under way); what is still to be read is not read. */
  destroy(): void {
    this.destroyed = true;
    void this.close();
  }

  /** The file's SHA-256 and size: from this read if it reached the end, else from a pass of its own (size -1). */
  async digest(): Promise<{ hash: Buffer; size: number }> {
    if (this.ended) return { hash: this.hash.digest(), size: this.size };
    return { hash: await hashFile(this.path), size: -1 };
  }

  private async *chunks(): AsyncGenerator<Uint8Array> {
    try {
      if (this.destroyed) return;
      this.handle = open(this.path, 'r');
      const fh = await this.handle;
      let next = this.read(fh, 0);
      for (;;) {
        const chunk = await next;
        if (chunk === null) return;
        // Read ahead while the decoder works on this chunk, as a read stream would.
        next = this.read(fh, this.size);
        yield chunk.bytes;
        this.giveBack(chunk.lent); // asked for the next: this one is consumed
      }
    } finally {
      await this.close();
    }
  }

  /** The next chunk at `position` (null at the end or once destroyed), hashed in order. */
  private read(fh: FileHandle, position: number): Promise<Chunk | null> {
    const p = (async () => {
      const lender = this.lender;
      const lent = this.destroyed ? undefined : await lender?.borrow();
      if (lent) this.borrowed.set(lent, lender!);
      if (this.destroyed) {
        this.giveBack(lent);
        return null;
      }
      const buf = lent ?? Buffer.allocUnsafeSlow(this.opts.chunk);
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(buf, 0, Math.min(buf.length, this.opts.chunk), position));
      } catch (e) {
        this.giveBack(lent);
        throw e;
      }
      if (bytesRead === 0) {
        this.giveBack(lent);
        this.ended = true;
        return null;
      }
      const bytes = buf.subarray(0, bytesRead);
      this.hash.update(bytes);
      this.size += bytesRead;
      if (!lent) this.opts.onBytes?.(bytesRead); // a lent buffer is allocated once, for good: no garbage to pace
      return { bytes, lent };
    })();
    this.reading = p.catch(() => undefined); // its error reaches the iterator; never unhandled
    return p;
  }

  private close(): Promise<void> {
    this.closing ??= (async () => {
      this.destroyed = true;
      const fh = await this.handle?.catch(() => undefined);
      await this.reading;
      for (const b of [...this.borrowed.keys()]) this.giveBack(b);
      await fh?.close().catch(() => undefined);
    })();
    return this.closing;
  }

  private giveBack(lent: Uint8Array | undefined): void {
    const lender = lent && this.borrowed.get(lent);
    if (!lender) return;
    this.borrowed.delete(lent);
    lender.giveBack(lent);
  }
}
