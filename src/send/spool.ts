/**
 * Reads an outgoing message exactly once, computing its size and SHA-256: kept in memory up to a limit,
 * otherwise written to a temporary spool file (plain write, no fsync: it only lives while packets are
 * built; the durable copies are the packets). Bytes pass through unchanged.
 * Fails with the source's error (client gone, size limit) or the spool write's errno error (ENOSPC...);
 * a partly written spool file is removed before the error is thrown.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { once } from 'node:events';

export interface SpooledMessage {
  size: number;
  /** SHA-256 of the message bytes, lowercase hex. */
  sha256: string;
  /** A new source of the message bytes, one per packet. */
  open(): Readable | Uint8Array;
  /** Removes the spool file, if any (never throws). */
  dispose(): Promise<void>;
}

/** `onBytes` sees the size of every chunk read (the daemon paces garbage collection with it: memory/gc-pacer.ts). */
export async function spoolMessage(message: Readable | Uint8Array, memoryLimit: number, spoolDir: string, onBytes?: (n: number) => void): Promise<SpooledMessage> {
  if (message instanceof Uint8Array) {
    const bytes = message;
    return {
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      open: () => bytes,
      dispose: async () => undefined,
    };
  }
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  let file: { path: string; ws: WriteStream } | undefined;
  try {
    for await (const chunk of message) {
      // No copy of a Buffer: streams hand out fresh chunks, and the chunks kept here are never changed.
      const buf: Buffer = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      hash.update(buf);
      size += buf.length;
      onBytes?.(buf.length);
      if (!file && size > memoryLimit) {
        await fsp.mkdir(spoolDir, { recursive: true, mode: 0o700 });
        // The pid names the writer: a daemon starting removes only files of processes that are gone (send/leftovers.ts).
        const path = join(spoolDir, `${process.pid}-${randomBytes(12).toString('hex')}.msg`);
        const ws = createWriteStream(path, { flags: 'wx', mode: 0o600 });
        ws.on('error', () => undefined); // surfaced through ws.errored / once() below
        file = { path, ws };
        await once(ws, 'open');
        for (const c of chunks) await write(ws, c);
        chunks.length = 0;
      }
      if (file) await write(file.ws, buf);
      else chunks.push(buf);
    }
    if (file) {
      const ws = file.ws;
      const closed = once(ws, 'close');
      ws.end();
      await closed;
      if (ws.errored) throw ws.errored;
    }
  } catch (err) {
    if (file) {
      file.ws.destroy();
      await fsp.rm(file.path, { force: true }).catch(() => undefined);
    }
    throw err;
  }
  const sha256 = hash.digest('hex');
  if (!file) {
    const bytes = Buffer.concat(chunks, size);
    return { size, sha256, open: () => bytes, dispose: async () => undefined };
  }
  const path = file.path;
  return {
    size,
    sha256,
    open: () => createReadStream(path),
    dispose: () => fsp.rm(path, { force: true }).catch(() => undefined),
  };
}

/** Writes one chunk, honouring backpressure and surfacing the stream's error (ENOSPC...). */
async function write(ws: WriteStream, buf: Buffer): Promise<void> {
  if (ws.errored) throw ws.errored;
  if (!ws.write(buf)) await once(ws, 'drain'); // rejects if 'error' comes first
  if (ws.errored) throw ws.errored;
}
