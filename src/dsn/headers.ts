/**
 * Reads the header block of a message file (up to the first empty line), for DSNs and bounce checks.
 * How it fails: rejects with the fs error if the file cannot be read; a message with no empty line in
 * the first `max` bytes yields its complete lines within that limit.
 */
import { open } from 'node:fs/promises';
import { headerBlockEnd } from './parse.js';

/** The header block of an in-memory message, by the same rules as readHeaderBlock. */
export function headerBlockOf(bytes: Uint8Array, max = 65536): Buffer {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, max));
  const { end, complete } = headerBlockEnd(data);
  return Buffer.from(complete || data.length === max ? data.subarray(0, end) : data);
}

export async function readHeaderBlock(file: string, max = 65536): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(max);
    let got = 0;
    while (got < max) {
      const { bytesRead } = await fh.read(buf, got, max - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (headerBlockEnd(buf.subarray(0, got)).complete) break;
    }
    const data = buf.subarray(0, got);
    const { end, complete } = headerBlockEnd(data);
    // No empty line: a short file is all headers; a long one is cut at its last complete line.
    return Buffer.from(complete || got === max ? data.subarray(0, end) : data);
  } finally {
    await fh.close();
  }
}
