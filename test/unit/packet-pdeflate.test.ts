/** Parallel zlib (src/packet/pdeflate.ts): a standard zlib stream, bounded, errors surface; gpg reads a large packet. */
import { createCipheriv } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { adler32, DEFAULT_BLOCK_SIZE, parallelZlib, zlibHeader } from '../../src/packet/pdeflate.js';
import { gpgHome } from '../helpers/gpg.js';
import { decodeBuffer, encodeToBuffer, makeHeader, makeKey, plaintextOf } from './packet-helpers.js';

const B = 64 * 1024; // small blocks keep the edge cases fast

/** Deterministic incompressible bytes (AES-CTR keystream). */
function randomData(n: number, seed = 1): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16, 0)).update(Buffer.alloc(n));
}

/** Deterministic mail-like text: words from a small vocabulary in CRLF lines (compresses ~3-4x). */
function textData(n: number): Buffer {
  const words = ['the', 'packet', 'mail', 'node', 'relay', 'Syncthing', 'signature', 'encrypted', 'offline', 'delivered', 'queue', 'message', 'and', 'of', 'to', 'is'];
  const out = Buffer.allocUnsafe(n + 64);
  let len = 0;
  let x = 12345;
  let col = 0;
  while (len < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = words[(x >>> 16) % words.length]!;
    len += out.write(w, len, 'latin1');
    col += w.length;
    if (col > 70) {
      len += out.write('\r\n', len, 'latin1');
      col = 0;
    } else len += out.write(' ', len, 'latin1');
  }
  return out.subarray(0, n);
}

async function* chunks(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size);
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}

/** Adler-32 as zlib computes it: the trailer of a stored zlib stream. */
function referenceAdler(data: Uint8Array): number {
  const z = deflateSync(data, { level: 0 });
  return z.readUInt32BE(z.length - 4);
}

describe('adler32 and the header', () => {
  it('matches zlib, in one go and continued over pieces', () => {
    const cases = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(1 << 20, 0xff), randomData(100_003), textData(70_001)];
    for (const data of cases) {
      expect(adler32(1, data)).toBe(referenceAdler(data));
      let a = 1;
      for (let off = 0; off < data.length; off += 9_999) a = adler32(a, data.subarray(off, off + 9_999));
      expect(a).toBe(referenceAdler(data));
    }
  });

  it('writes the header zlib writes, for every level', () => {
    for (let level = 0; level <= 9; level++) {
      expect(Buffer.from(zlibHeader(level)).equals(deflateSync(Buffer.from('x'), { level }).subarray(0, 2))).toBe(true);
    }
  });
});

describe('parallelZlib', () => {
  const sizes = [0, 1, B - 1, B, B + 1, 5 * B + 7];
  for (const [kind, make] of [['random', randomData], ['text', textData]] as const) {
    for (const n of sizes) {
      it(`round trips ${n} bytes of ${kind} data`, async () => {
        const data = make(n);
        // Chunks smaller than, equal to and larger than a block, and the whole input at once.
        for (const size of [1000, B, 3 * B + 1, Math.max(1, n)]) {
          const z = await collect(parallelZlib(chunks(data, size), 6, { blockSize: B }));
          expect(inflateSync(z).equals(data), `chunks of ${size}`).toBe(true);
          expect(z.readUInt32BE(z.length - 4)).toBe(referenceAdler(data));
        }
      });
    }
  }

  it('round trips at every level, with one and with many blocks in flight', async () => {
    const data = textData(3 * B + 100);
    for (let level = 0; level <= 9; level++) {
      for (const inFlight of [1, 4]) {
        const z = await collect(parallelZlib(chunks(data, 10_000), level, { blockSize: B, inFlight }));
        expect(inflateSync(z).equals(data), `level ${level}`).toBe(true);
      }
    }
  });

  it('stays within 0.5 % of one deflateSync stream on 10 MiB of text', async () => {
    const data = textData(10 * 1024 * 1024);
    const single = deflateSync(data, { level: 6 }).length;
    const z = await collect(parallelZlib(chunks(data, 64 * 1024), 6));
    expect(inflateSync(z).equals(data)).toBe(true);
    expect(z.length / single).toBeLessThan(1.005);
  });

  it('reads the source only as the consumer pulls', async () => {
    let produced = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 100; i++) {
        produced += B / 4;
        yield randomData(B / 4, i);
      }
    }
    const it = parallelZlib(source(), 6, { blockSize: B, inFlight: 2 });
    await it.next(); // the header
    await it.next(); // the first block
    expect(produced).toBeLessThanOrEqual(2 * B);
    await it.return(undefined);
    expect(produced).toBeLessThan(100 * (B / 4));
  });

  for (const after of [0, 1, 4]) {
    it(`errors, never ends cleanly, when the source fails after ${after} blocks`, async () => {
      async function* failing(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < after; i++) yield randomData(B, i);
        throw new Error('source broke');
      }
      await expect(collect(parallelZlib(failing(), 6, { blockSize: B, inFlight: 3 }))).rejects.toThrow('source broke');
    });
  }

  it('rejects bad options before any output', async () => {
    await expect(collect(parallelZlib(chunks(Buffer.from('x'), 1), 10))).rejects.toThrow(RangeError);
    await expect(collect(parallelZlib(chunks(Buffer.from('x'), 1), 6, { blockSize: 0 }))).rejects.toThrow(RangeError);
    await expect(collect(parallelZlib(chunks(Buffer.from('x'), 1), 6, { inFlight: 0 }))).rejects.toThrow(RangeError);
  });
});

describe('a streamed (> 1 MiB) compressed packet', () => {
  it('decodes, and gpg decrypts and verifies it', { timeout: 120_000 }, async () => {
    const [sender, recipient] = await Promise.all([makeKey('sender'), makeKey('recipient')]);
    const payload = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), textData(3 * DEFAULT_BLOCK_SIZE + 12_345)]);
    const header = makeHeader(sender, recipient, payload);
    const packet = await encodeToBuffer(sender, recipient, payload, 6, header);
    expect(packet.length).toBeLessThan(payload.length / 2); // it was compressed
    expect((await decodeBuffer(packet, recipient, [sender])).payload.equals(payload)).toBe(true);

    const G = await gpgHome([recipient.priv, sender.priv]);
    try {
      const r = await G.gpg(['--status-fd', '1', '--output', path.join(G.home, 'p.out'), '--decrypt'], { input: packet });
      expect(r.stdout).toMatch(/^\[GNUPG:\] GOODSIG /m);
      expect(r.stdout).toMatch(/^\[GNUPG:\] GOODMDC/m);
      expect((await readFile(path.join(G.home, 'p.out'))).equals(plaintextOf(header, payload))).toBe(true);
      expect((await G.gpg(['--list-packets'], { input: packet })).stdout).toContain('compressed packet: algo=2');
    } finally {
      await G.close();
    }
  });
});
