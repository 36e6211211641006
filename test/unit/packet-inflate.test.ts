/**
 * SyncInflater (src/packet/inflate.ts): streaming inflate on the calling thread through node:zlib's
 * synchronous handle. It must give the bytes and the errors zlib.inflateSync gives for the same input,
 * whatever the chunking, keep memory bounded (lazy output, ratio limit), and fail loudly if the
 * node:zlib internals it relies on change.
 */
import { randomBytes } from 'node:crypto';
import { createInflate, deflateRawSync, deflateSync, inflateRawSync, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SyncInflater } from '../../src/packet/inflate.js';
import { PgpFormatError } from '../../src/packet/pgpstream.js';

const OUT = 16 * 1024;

function inflateAll(algo: 1 | 2, input: Uint8Array, chunk: number, opts = { outChunk: OUT, maxRatio: 1100 }): Buffer {
  const z = new SyncInflater(algo, opts);
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) for (const b of z.push(input.subarray(i, i + chunk))) out.push(b);
  for (const b of z.end()) out.push(b);
  for (const b of out) expect(b.length).toBeLessThanOrEqual(opts.outChunk);
  return Buffer.concat(out);
}

/** What zlib.inflateSync throws for the same bytes (message and code), or 'ok'. */
function syncVerdict(algo: 1 | 2, input: Uint8Array): string {
  try {
    (algo === 2 ? inflateSync : inflateRawSync)(input);
    return 'ok';
  } catch (e) {
    return `${(e as Error).message} (${(e as NodeJS.ErrnoException).code})`;
  }
}

function verdict(algo: 1 | 2, input: Uint8Array, chunk: number): string {
  try {
    inflateAll(algo, input, chunk);
    return 'ok';
  } catch (e) {
    return `${(e as Error).message} (${(e as NodeJS.ErrnoException).code})`;
  }
}

const text = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i}: the ferry leaves at dawn\r\n`).join(''));
const mixed = Buffer.concat([text, randomBytes(300_000), text]);

describe('SyncInflater', () => {
  it('uses node:zlib internals that this Node still has (fails if they change)', () => {
    const z = createInflate() as unknown as { _handle: { writeSync: unknown; onerror: unknown }; _writeState: unknown; close(): void };
    expect(typeof z._handle.writeSync).toBe('function');
    expect(typeof z._handle.onerror).toBe('function');
    expect(z._writeState).toBeInstanceOf(Uint32Array);
    z.close();
    expect(() => new SyncInflater(2, { outChunk: OUT, maxRatio: 1100 }).close()).not.toThrow();
    expect(() => new SyncInflater(1, { outChunk: OUT, maxRatio: 1100 }).close()).not.toThrow();
  });

  for (const [name, algo, deflate] of [['ZLIB', 2, deflateSync], ['raw deflate (ZIP)', 1, deflateRawSync]] as const) {
    it(`${name}: the same bytes as inflateSync, in chunks of 1, 7, 4096, 65536 bytes and whole`, () => {
      const z = deflate(mixed, { level: 6 });
      for (const chunk of [7, 4096, 65536, z.length]) expect(inflateAll(algo, z, chunk).equals(mixed), `chunk ${chunk}`).toBe(true);
      const small = text.subarray(0, 100_000);
      expect(inflateAll(algo, deflate(small), 1).equals(small), 'chunk 1').toBe(true);
    });
    it(`${name}: an empty payload and an empty input behave as inflateSync`, () => {
      expect(inflateAll(algo, deflate(Buffer.alloc(0)), 3).length).toBe(0);
      expect(verdict(algo, new Uint8Array(0), 1)).toBe(syncVerdict(algo, new Uint8Array(0)));
    });
  }

  for (const [name, algo, deflate] of [['ZLIB', 2, deflateSync], ['raw deflate (ZIP)', 1, deflateRawSync]] as const) {
    it(`${name}: corrupt data gives the same error as inflateSync (message and code), wherever the chunks fall`, () => {
      const z = deflate(mixed);
      for (const at of [2, 100, Math.floor(z.length / 2), z.length - 2]) {
        const bad = Buffer.from(z);
        bad[at]! ^= 0xff;
        const want = syncVerdict(algo, bad);
        if (want === 'ok') continue; // raw deflate has no checksum: a flip can still decode
        for (const chunk of [4096, bad.length]) expect(verdict(algo, bad, chunk), `byte ${at}, chunk ${chunk}`).toBe(want);
      }
    });

    it(`${name}: a stream cut short: "unexpected end of file" at end(), as inflateSync`, () => {
      const z = deflate(mixed);
      for (const cut of [1, 10, z.length >> 1, z.length - 1]) {
        const want = syncVerdict(algo, z.subarray(0, cut));
        expect(want).toMatch(/unexpected end of file/);
        expect(verdict(algo, z.subarray(0, cut), 4096), `cut at ${cut}`).toBe(want);
      }
    });

    it(`${name}: bytes after the end of the deflate stream are ignored, as inflateSync ignores them`, () => {
      const z = deflate(text);
      const trailing = Buffer.concat([z, Buffer.from('trailing junk')]);
      expect(syncVerdict(algo, trailing)).toBe('ok');
      expect(inflateAll(algo, trailing, 4096).equals(text)).toBe(true);
      // the stream ends exactly at a chunk boundary, the junk arrives in the next push
      expect(inflateAll(algo, trailing, z.length).equals(text)).toBe(true);
    });
  }

  it('one-byte input chunks: the outputs share buffers (memory held stays about the output size)', () => {
    // A stored (level 0) stream gives about one byte out per byte in: the worst case for per-call buffers.
    const data = randomBytes(200_000);
    const z = deflateSync(data, { level: 0 });
    const inflater = new SyncInflater(2, { outChunk: OUT, maxRatio: 1100 });
    const outs: Buffer[] = [];
    for (let i = 0; i < z.length; i++) for (const b of inflater.push(z.subarray(i, i + 1))) outs.push(b);
    for (const b of inflater.end()) outs.push(b);
    expect(Buffer.concat(outs).equals(data)).toBe(true);
    const held = [...new Set(outs.map((b) => b.buffer))].reduce((n, ab) => n + ab.byteLength, 0);
    expect(outs.length).toBeGreaterThan(10_000); // many small outputs...
    expect(held).toBeLessThanOrEqual(data.length + 2 * OUT); // ...in few buffers
  });

  it('after an error every later call fails the same way; after close a call throws instead of aborting', () => {
    const bad = Buffer.from(deflateSync(mixed));
    bad[100]! ^= 0xff;
    const z = new SyncInflater(2, { outChunk: OUT, maxRatio: 1100 });
    let first: unknown;
    try {
      for (const _ of z.push(bad)) void _;
    } catch (e) {
      first = e;
    }
    expect(first).toBeInstanceOf(Error);
    expect(() => [...z.push(Buffer.from('more'))]).toThrow((first as Error).message);
    expect(() => [...z.end()]).toThrow((first as Error).message);
    const closed = new SyncInflater(2, { outChunk: OUT, maxRatio: 1100 });
    closed.close();
    expect(() => [...closed.push(deflateSync(text))]).toThrow(/closed/);
  });

  it('a decompression bomb fails with PgpFormatError, lazily: memory stays at one output buffer', () => {
    const bomb = deflateSync(Buffer.alloc(64 * 1024 * 1024)); // ~64 KiB → 64 MiB, about 1000:1
    const z = new SyncInflater(2, { outChunk: OUT, maxRatio: 100 });
    const it = z.push(bomb);
    expect(it.next().value).toHaveLength(OUT); // one buffer produced, the rest not yet inflated
    let produced = OUT;
    expect(() => {
      for (const b of it) produced += b.length;
    }).toThrow(PgpFormatError);
    expect(produced).toBeLessThanOrEqual(100 * bomb.length + (1 << 20));
    z.close();
    z.close(); // idempotent
  });

  it('after the stream ended, further input is ignored; end() closes the handle', () => {
    const z = new SyncInflater(2, { outChunk: OUT, maxRatio: 1100 });
    const out = [...z.push(deflateSync(text)), ...z.push(Buffer.from('more')), ...z.end()];
    expect(Buffer.concat(out).equals(text)).toBe(true);
    expect(() => [...z.push(Buffer.from('x'))]).not.toThrow(); // ended: ignored
  });
});
