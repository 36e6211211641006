// HashingFileReader (src/tree/hashing-reader.ts): the large receiver's file input. Its bytes and hash
// must be the file's exactly, whatever the chunk size; it must close the file however the decoder stops.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HashingFileReader } from '../../src/tree/hashing-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'fp-hreader-'));

function fileOf(bytes: Buffer, name = `f-${randomBytes(4).toString('hex')}`): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

/** How many of this process's descriptors are open on `path`. */
function fdsOn(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

/** Waits (up to 2 s, for a loaded machine) until `value()` is `want`; returns the last value seen. */
async function settlesTo<T>(value: () => T, want: T): Promise<T> {
  for (let i = 0; i < 200 && value() !== want; i++) await new Promise((res) => setTimeout(res, 10));
  return value();
}

describe('HashingFileReader', () => {
  it.each([
    ['a file of several chunks and a short last one', 10_000, 4096],
    ['a file of exactly two chunks', 8192, 4096],
    ['a file smaller than a chunk', 100, 4096],
    ['an empty file', 0, 4096],
  ])('yields %s in order, hashes it and counts it', async (_what, size, chunk) => {
    const bytes = randomBytes(size);
    const path = fileOf(bytes);
    const seen: number[] = [];
    const r = new HashingFileReader(path, { chunk, onBytes: (n) => seen.push(n) });
    const parts: Uint8Array[] = [];
    for await (const c of r) parts.push(Buffer.from(c));
    expect(Buffer.concat(parts).equals(bytes)).toBe(true);
    expect(parts.every((p) => p.length <= chunk && p.length > 0)).toBe(true);
    expect(seen.reduce((a, b) => a + b, 0)).toBe(size);
    const d = await r.digest();
    expect(d.size).toBe(size);
    expect(d.hash.equals(sha256(bytes))).toBe(true);
    expect(fdsOn(path)).toBe(0);
  });

  it('hashes the file in a pass of its own when the decoder stopped early (size -1), and has closed it', async () => {
    const bytes = randomBytes(50_000);
    const path = fileOf(bytes);
    const r = new HashingFileReader(path, { chunk: 4096 });
    const it = r[Symbol.asyncIterator]();
    await it.next();
    expect(fdsOn(path)).toBe(1);
    r.destroy();
    // The read ahead returns; after it the iterator ends and the file is closed.
    for (let n = await it.next(); !n.done; n = await it.next());
    expect(await settlesTo(() => fdsOn(path), 0)).toBe(0);
    const d = await r.digest();
    expect(d.size).toBe(-1);
    expect(d.hash.equals(sha256(bytes))).toBe(true);
  });

  it('closes the file when the reader leaves the loop early', async () => {
    const path = fileOf(randomBytes(50_000));
    const r = new HashingFileReader(path, { chunk: 4096 });
    for await (const c of r) {
      expect(c.length).toBe(4096);
      break;
    }
    expect(fdsOn(path)).toBe(0);
  });

  it('closes the file when destroyed while the iterator is idle between chunks, without a further next()', async () => {
    const path = fileOf(randomBytes(50_000));
    const r = new HashingFileReader(path, { chunk: 4096 });
    const it = r[Symbol.asyncIterator]();
    await it.next();
    r.destroy();
    expect(await settlesTo(() => fdsOn(path), 0)).toBe(0);
  });

  it('destroyed before it was read, it opens nothing', async () => {
    const path = fileOf(randomBytes(100));
    const r = new HashingFileReader(path, { chunk: 4096 });
    r.destroy();
    const it = r[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(true);
    expect(fdsOn(path)).toBe(0);
  });

  it("throws the file system's error for a file that is not there", async () => {
    const r = new HashingFileReader(join(dir, 'missing'), { chunk: 4096 });
    await expect(r[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('is read once', () => {
    const r = new HashingFileReader(fileOf(randomBytes(10)), { chunk: 4096 });
    r[Symbol.asyncIterator]();
    expect(() => r[Symbol.asyncIterator]()).toThrow(/read once/);
  });

  it('reads into lent buffers once lent, gives each back when the next chunk is asked for, and the rest on close', async () => {
    const bytes = randomBytes(40_000);
    const path = fileOf(bytes);
    const pool = [Buffer.alloc(4096), Buffer.alloc(4096), Buffer.alloc(4096)];
    const out = new Set<Uint8Array>();
    const lender = {
      borrow: async () => {
        const b = pool.find((p) => !out.has(p));
        if (b) out.add(b);
        return b; // undefined when all are out: the reader reads into its own buffer
      },
      giveBack: (b: Uint8Array) => {
        expect(out.has(b)).toBe(true);
        out.delete(b);
      },
    };
    const r = new HashingFileReader(path, { chunk: 4096 });
    const it = r[Symbol.asyncIterator]();
    const first = (await it.next()).value as Uint8Array; // read (and the one ahead) before lending
    expect(pool.some((p) => p.buffer === first.buffer)).toBe(false);
    r.lendFrom(lender);
    const parts: Buffer[] = [Buffer.from(first)];
    let lentChunks = 0;
    for (let n = await it.next(); !n.done; n = await it.next()) {
      const inPool = pool.some((p) => p.buffer === n.value.buffer && p.byteOffset === n.value.byteOffset);
      if (inPool) lentChunks++;
      // The chunk in hand is still out: it is given back only when the next one is asked for.
      if (inPool) expect([...out].some((b) => b.byteOffset === n.value.byteOffset && b.buffer === n.value.buffer)).toBe(true);
      parts.push(Buffer.from(n.value));
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true);
    expect(lentChunks).toBeGreaterThan(5);
    expect(out.size).toBe(0); // the end's empty read gave its buffer back too
    expect((await r.digest()).hash.equals(sha256(bytes))).toBe(true);

    // Destroyed part way: the chunk in hand and the read ahead are given back once that read returned.
    const r2 = new HashingFileReader(fileOf(randomBytes(40_000)), { chunk: 4096 });
    r2.lendFrom(lender);
    const it2 = r2[Symbol.asyncIterator]();
    await it2.next();
    await it2.next();
    expect(out.size).toBeGreaterThan(0);
    r2.destroy();
    expect(await settlesTo(() => out.size, 0)).toBe(0);
  });
});
