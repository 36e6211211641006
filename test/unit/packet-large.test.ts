/** 100 MiB streaming round trip through encodePacket → decodePacket → temp file, with bounded RSS. */
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodePacket, encodePacket } from '../../src/packet/codec.js';
import { makeHeader, makeKey, type TestKey } from './packet-helpers.js';

const SIZE = 100 * 1024 * 1024;
const CHUNK = 1024 * 1024;

/** Deterministic incompressible bytes (AES-CTR keystream), generated chunk by chunk, never all at once. */
function* pseudoRandom(): Generator<Buffer> {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zero = Buffer.alloc(CHUNK);
  for (let done = 0; done < SIZE; done += CHUNK) yield cipher.update(zero);
}

let alice: TestKey;
let bob: TestKey;
let dir: string;
beforeAll(async () => {
  [alice, bob] = await Promise.all([makeKey('alice'), makeKey('bob')]);
  dir = await mkdtemp(path.join(tmpdir(), 'ferrypost-large-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('round trips 100 MiB with bounded memory', { timeout: 300_000 }, async () => {
  const h = createHash('sha256');
  for (const c of pseudoRandom()) h.update(c);
  const sha256 = h.digest('hex');
  const header = { ...makeHeader(alice, bob, new Uint8Array(0)), size: SIZE, sha256 };

  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const t0 = Date.now();
  try {
    const encoded = await encodePacket({
      header,
      payload: Readable.from(pseudoRandom()),
      signingKey: alice.priv,
      encryptionKey: bob.pub,
      compressionLevel: 6,
    });
    const out = path.join(dir, 'payload');
    const decoded = await decodePacket({
      input: encoded,
      decryptionKey: bob.priv,
      verificationKeys: [alice.pub],
      payloadSink: createWriteStream(out),
    });
    const secs = (Date.now() - t0) / 1000;
    peak = Math.max(peak, process.memoryUsage().rss);
    console.log(
      `100 MiB encode→decode (level 6 asked, incompressible: stored): ${secs.toFixed(1)} s (${(100 / secs).toFixed(0)} MiB/s), RSS before ${(base / 2 ** 20).toFixed(0)} MiB, peak ${(peak / 2 ** 20).toFixed(0)} MiB (+${((peak - base) / 2 ** 20).toFixed(0)} MiB)`,
    );
    expect(decoded.header).toEqual(header);
    expect(decoded.signer).toBe(alice.fpr);
    expect((await stat(out)).size).toBe(SIZE);
    const back = createHash('sha256');
    for await (const c of createReadStream(out)) back.update(c as Buffer);
    expect(back.digest('hex')).toBe(sha256);
    // Encoder and decoder run in this one process at the same time (plus vitest): each side alone
    // stays under 128 MiB (bench/codec-micro.mjs measures them separately).
    expect(peak - base).toBeLessThan(96 * 2 ** 20);
  } finally {
    clearInterval(timer);
  }
});
