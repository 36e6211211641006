/**
 * InflateWorker (src/packet/inflate-offload.ts): large compressed bodies inflated on a worker thread.
 * It must give the bytes and errors of the main-thread SyncInflater, keep handed-out output intact
 * while its shared slots are reused, let a reader stop early, hand a body to the caller's own inflater
 * while busy or broken, and report a dead worker as InflateWorkerFailure (a local problem), never as
 * bad data.
 * The worker runs the built script (dist/packet/inflate-worker.js: `npm test` builds first), as the
 * daemon does.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { deflateRawSync, deflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import { decodePacket } from '../../src/packet/codec.js';
import { SyncInflater } from '../../src/packet/inflate.js';
import { InflateWorker, InflateWorkerFailure } from '../../src/packet/inflate-offload.js';
import { PgpFormatError, packetHeader } from '../../src/packet/pgpstream.js';
import { seipdV1EncryptSync } from '../../src/packet/seipd.js';
import { CollectSink, encodeToBuffer, makeHeader, makeKey, plaintextOf, type TestKey } from './packet-helpers.js';

const WORKER_URL = new URL('../../dist/packet/inflate-worker.js', import.meta.url);
const MAX_RATIO = 1100;

const text = Buffer.from(Array.from({ length: 150_000 }, (_, i) => `line ${i}: the ferry leaves at dawn\r\n`).join('')); // ~5.5 MiB
const mixed = Buffer.concat([text, randomBytes(700_000), text]);

async function* chunked(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

/** Inflates on the calling thread: the fallback, counted. */
function onThisThread(algo: 1 | 2, input: AsyncIterable<Uint8Array>, calls: { n: number } = { n: 0 }): () => AsyncGenerator<Uint8Array> {
  return async function* () {
    calls.n++;
    const z = new SyncInflater(algo, { outChunk: 16384, maxRatio: MAX_RATIO });
    try {
      for await (const c of input) yield* z.push(c);
      yield* z.end();
    } finally {
      z.close();
    }
  };
}

/** A job on the worker; fails the test if it fell back to the calling thread. */
function onWorker(w: InflateWorker, algo: 1 | 2, input: AsyncIterable<Uint8Array>, maxRatio = MAX_RATIO): AsyncGenerator<Uint8Array> {
  return w.inflate(algo, input, maxRatio, () => {
    throw new Error('fell back to the calling thread');
  });
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const b of gen) out.push(b); // kept, not copied: they must stay intact while slots are reused
  return Buffer.concat(out);
}

/** What the main-thread inflater says for the same input: 'ok' or message (code). */
function mainVerdict(algo: 1 | 2, input: Uint8Array, maxRatio = MAX_RATIO): string {
  const z = new SyncInflater(algo, { outChunk: 16384, maxRatio });
  try {
    for (const _ of z.push(input));
    for (const _ of z.end());
    return 'ok';
  } catch (e) {
    return verdictOf(e);
  } finally {
    z.close();
  }
}

function verdictOf(e: unknown): string {
  return `${e instanceof PgpFormatError ? 'PgpFormatError: ' : ''}${(e as Error).message} (${(e as NodeJS.ErrnoException).code})`;
}

async function workerVerdict(w: InflateWorker, algo: 1 | 2, input: Uint8Array, chunk = 65536, maxRatio = MAX_RATIO): Promise<string> {
  return collect(onWorker(w, algo, chunked(input, chunk), maxRatio)).then(
    () => 'ok',
    (e: unknown) => verdictOf(e),
  );
}

describe('InflateWorker', () => {
  let w: InflateWorker;
  beforeAll(() => {
    w = new InflateWorker({ workerUrl: WORKER_URL });
    w.warm();
  });
  afterAll(async () => {
    await w.close();
  });

  for (const [name, algo, deflate] of [['ZLIB', 2, deflateSync], ['raw deflate (ZIP)', 1, deflateRawSync]] as const) {
    it(`${name}: the same bytes as the input, in chunks of 1 KiB, 64 KiB, 1 MiB and whole`, async () => {
      const z = deflate(mixed, { level: 6 });
      for (const chunk of [1024, 65536, 1 << 20, z.length]) {
        expect((await collect(onWorker(w, algo, chunked(z, chunk)))).equals(mixed), `chunk ${chunk}`).toBe(true);
      }
    });
  }

  it('corrupt, truncated and over-ratio input: the errors the main-thread inflater gives', async () => {
    const z = deflateSync(mixed);
    const corrupt = Buffer.from(z);
    corrupt.fill(0xff, z.length >> 1, (z.length >> 1) + 64);
    const badCheck = Buffer.from(z);
    badCheck[z.length - 1]! ^= 1;
    const bomb = deflateSync(Buffer.alloc(8 << 20, 'all the same '));
    const cases: [string, Uint8Array][] = [
      ['corrupt', corrupt],
      ['bad adler32', badCheck],
      ['truncated', z.subarray(0, z.length - 1000)],
      ['empty', new Uint8Array(0)],
      ['not deflate', randomBytes(300_000)],
    ];
    for (const [what, input] of cases) {
      const expected = mainVerdict(2, input);
      expect(expected, what).not.toBe('ok');
      expect(await workerVerdict(w, 2, input), what).toBe(expected);
    }
    // Over the ratio limit (here 20:1, plus 1 MiB): PgpFormatError on both threads.
    expect(mainVerdict(2, bomb, 20)).toMatch(/^PgpFormatError: compressed data expands more than 20:1/);
    expect(await workerVerdict(w, 2, bomb, 1024, 20)).toBe(mainVerdict(2, bomb, 20));
    expect((await workerVerdict(w, 2, deflateSync(text))) === 'ok').toBe(true); // still usable after errors
  });

  it('one job at a time: a body that comes while the worker is busy is inflated by the caller', async () => {
    const z = deflateSync(mixed);
    const it1 = onWorker(w, 2, chunked(z, 65536))[Symbol.asyncIterator]();
    const firstPiece = await it1.next(); // running now
    const calls = { n: 0 };
    const second = await collect(w.inflate(2, chunked(z, 65536), MAX_RATIO, onThisThread(2, chunked(z, 65536), calls)));
    expect(calls.n).toBe(1);
    expect(second.equals(mixed)).toBe(true);
    const rest = await collect({ [Symbol.asyncIterator]: () => it1 });
    expect(Buffer.concat([firstPiece.value as Uint8Array, rest]).equals(mixed)).toBe(true);
    const calls2 = { n: 0 };
    expect((await collect(w.inflate(2, chunked(z, 65536), MAX_RATIO, onThisThread(2, chunked(z, 65536), calls2)))).equals(mixed)).toBe(true);
    expect(calls2.n).toBe(0); // free again
  });

  it('a reader that stops early (the worker blocked on full slots) frees the worker for the next job', async () => {
    const big = deflateSync(Buffer.alloc(40 << 20, 'x')); // far more output than the slots hold
    for (let round = 0; round < 3; round++) {
      const it1 = onWorker(w, 2, chunked(big, 65536))[Symbol.asyncIterator]();
      for (let i = 0; i < 5; i++) expect((await it1.next()).done).toBe(false);
      await new Promise((r) => setTimeout(r, 50)); // let the worker fill every slot and block
      await it1.return(undefined);
    }
    const z = deflateSync(mixed);
    expect((await collect(onWorker(w, 2, chunked(z, 65536)))).equals(mixed)).toBe(true);
  });

  it('an input that fails part way: its error reaches the reader, and the worker stays usable', async () => {
    const z = deflateSync(mixed);
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield z.subarray(0, 300_000);
      throw new PgpFormatError('modification detected: the integrity check (MDC) does not match');
    }
    await expect(collect(onWorker(w, 2, failing()))).rejects.toThrow('modification detected');
    expect((await collect(onWorker(w, 2, chunked(z, 65536)))).equals(mixed)).toBe(true);
  });
});

describe('InflateWorker that fails', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-inflate-worker-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a worker that dies: InflateWorkerFailure (not bad data); later bodies are inflated by the caller', async () => {
    const script = path.join(dir, 'dies.mjs');
    writeFileSync(script, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (m) => { if (m.t === 'in') process.exit(3); });\n");
    const w = new InflateWorker({ workerUrl: new URL(`file://${script}`) });
    const z = deflateSync(mixed);
    const err = await collect(w.inflate(2, chunked(z, 65536), MAX_RATIO, onThisThread(2, chunked(z, 65536)))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InflateWorkerFailure);
    const calls = { n: 0 };
    expect((await collect(w.inflate(2, chunked(z, 65536), MAX_RATIO, onThisThread(2, chunked(z, 65536), calls)))).equals(mixed)).toBe(true);
    expect(calls.n).toBe(1);
    await w.close();
  });

  it('a worker script that cannot load: InflateWorkerFailure; later bodies are inflated by the caller', async () => {
    const w = new InflateWorker({ workerUrl: new URL(`file://${path.join(dir, 'missing.mjs')}`) });
    const z = deflateSync(mixed);
    expect(await collect(w.inflate(2, chunked(z, 65536), MAX_RATIO, onThisThread(2, chunked(z, 65536)))).catch((e: unknown) => e)).toBeInstanceOf(InflateWorkerFailure);
    const calls = { n: 0 };
    expect((await collect(w.inflate(2, chunked(z, 65536), MAX_RATIO, onThisThread(2, chunked(z, 65536), calls)))).equals(mixed)).toBe(true);
    expect(calls.n).toBe(1);
    await w.close();
  });
});

describe('decodePacket with an InflateWorker', () => {
  let alice: TestKey;
  let bob: TestKey;
  let w: InflateWorker;
  beforeAll(async () => {
    [alice, bob] = await Promise.all([makeKey('alice'), makeKey('bob')]);
    w = new InflateWorker({ workerUrl: WORKER_URL });
  });
  afterAll(async () => {
    await w.close();
  });
  const decode = (packet: Buffer, worker: InflateWorker = w) => {
    const sink = new CollectSink();
    return decodePacket({ input: Readable.from([packet]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: sink, inflateWorker: worker }).then(
      (r) => ({ ...r, payload: sink.bytes }),
    );
  };
  const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof FerryError ? e.code : `not a FerryError: ${String(e)}`));
  /** Our own packet, and the same signed message sealed under a valid MDC with its deflate data corrupt. */
  async function packets(payload: Buffer): Promise<{ good: Buffer; corrupt: Buffer }> {
    const good = await encodeToBuffer(alice, bob, payload, 6);
    const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, bob, payload), payload), format: 'binary', filename: '' });
    const z = deflateSync(Buffer.from(await openpgp.sign({ message, signingKeys: alice.priv, format: 'binary' })));
    z.fill(0xff, z.length >> 1, (z.length >> 1) + 64);
    const key = randomBytes(32);
    const pkesk = (await openpgp.encryptSessionKey({ data: key, algorithm: 'aes256', encryptionKeys: bob.pub, format: 'binary' })) as Uint8Array;
    const body = seipdV1EncryptSync('aes256', key, Buffer.concat([packetHeader(8, z.length + 1), Uint8Array.of(2), z]));
    return { good, corrupt: Buffer.concat([pkesk, packetHeader(18, body.length), body]) };
  }

  it('a large packet decodes to the same bytes; corrupt deflate data under a valid MDC is PACKET_DECRYPT', async () => {
    const payload = Buffer.concat([text, Buffer.from(randomBytes(1 << 20).toString('base64'))]);
    const { good, corrupt } = await packets(payload);
    const r = await decode(good);
    expect(r.payload.equals(payload)).toBe(true);
    expect(r.header.size).toBe(payload.length);
    expect(await codeOf(decode(corrupt))).toBe('PACKET_DECRYPT');
    expect(await codeOf(decode(good.subarray(0, good.length - 100)))).toBe('PACKET_DECRYPT');
  });

  it('a dead worker fails the decode with InflateWorkerFailure, never a PACKET_ error; the next decode inflates on the main thread', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-inflate-worker-'));
    try {
      const script = path.join(dir, 'dies.mjs');
      writeFileSync(script, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (m) => { if (m.t === 'in') process.exit(3); });\n");
      const dying = new InflateWorker({ workerUrl: new URL(`file://${script}`) });
      const payload = Buffer.concat([text, text]);
      const { good } = await packets(payload);
      const err = await decode(good, dying).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InflateWorkerFailure);
      expect((await decode(good, dying)).payload.equals(payload)).toBe(true);
      await dying.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a decode that gives up (failing sink, inner data that is not OpenPGP) ends its job: the next body inflates on the worker', async () => {
    const payload = Buffer.concat([text, Buffer.from(randomBytes(1 << 20).toString('base64'))]);
    const { good } = await packets(payload);
    const enospc = new (await import('node:stream')).Writable({
      write(_c, _e, cb) {
        cb(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
      },
    });
    const err = await decodePacket({ input: Readable.from([good]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: enospc, inflateWorker: w }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    await expectWorkerFree(w);
    // Decrypts and inflates (on the worker) to something that is not a signed message: open() fails after reading 1 MiB.
    const junk = deflateSync(Buffer.from(randomBytes(3 << 20).toString('base64')));
    const key = randomBytes(32);
    const pkesk = (await openpgp.encryptSessionKey({ data: key, algorithm: 'aes256', encryptionKeys: bob.pub, format: 'binary' })) as Uint8Array;
    const body = seipdV1EncryptSync('aes256', key, Buffer.concat([packetHeader(8, junk.length + 1), Uint8Array.of(2), junk]));
    expect(await codeOf(decode(Buffer.concat([pkesk, packetHeader(18, body.length), body])))).toBe('PACKET_DECRYPT');
    await expectWorkerFree(w);
  });

  it('a packet refused part way, drained with the worker: the errors of the main thread (truncation, trailing bytes, MDC), and the worker free after', async () => {
    const payload = Buffer.from(randomBytes(3 << 20).toString('base64'));
    const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, bob, payload, { size: payload.length - 300_000 }), payload), format: 'binary', filename: '' });
    const z = deflateSync(Buffer.from(await openpgp.sign({ message, signingKeys: alice.priv, format: 'binary' })));
    const key = randomBytes(32);
    const pkesk = (await openpgp.encryptSessionKey({ data: key, algorithm: 'aes256', encryptionKeys: bob.pub, format: 'binary' })) as Uint8Array;
    const body = seipdV1EncryptSync('aes256', key, Buffer.concat([packetHeader(8, z.length + 1), Uint8Array.of(2), z]));
    const packet = Buffer.concat([pkesk, packetHeader(18, body.length), body]);
    const badMdc = Buffer.from(packet);
    badMdc[badMdc.length - 3]! ^= 1;
    const cases: [string, Buffer, RegExp][] = [
      ['refused', packet, /^PACKET_MALFORMED: payload is longer than header.size \d+ \(signature not checked/],
      ...[5000, 50_000, 100_000, 150_000].map((cut): [string, Buffer, RegExp] => [`truncated by ${cut}`, packet.subarray(0, packet.length - cut), /^PACKET_DECRYPT: .*truncated/]),
      ['trailing bytes', Buffer.concat([packet, Buffer.from('x')]), /^PACKET_DECRYPT: .*trailing bytes/],
      ['bad MDC', badMdc, /^PACKET_DECRYPT: .*modification detected/],
    ];
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-drain-worker-'));
    for (const [what, bytes, expected] of cases) {
      // From a file, as the receiver reads: the pump then runs ahead of the reader, and may be the
      // one to meet the truncation (the error it met must still be the one reported).
      writeFileSync(path.join(dir, 'p'), bytes);
      const input = createReadStream(path.join(dir, 'p'), { highWaterMark: 256 * 1024 });
      const err = await decodePacket({ input, decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: new CollectSink(), inflateWorker: w }).then(
        () => 'resolved',
        (e: unknown) => (e instanceof FerryError ? `${e.code}: ${e.message}` : String(e)),
      );
      expect(err, what).toMatch(expected);
      await expectWorkerFree(w);
    }
    rmSync(dir, { recursive: true, force: true });
  });
});

/** The worker takes the next body (the fallback is not called). */
async function expectWorkerFree(w: InflateWorker): Promise<void> {
  const calls = { n: 0 };
  const z = deflateSync(text);
  expect((await collect(w.inflate(2, chunked(z, 65536), MAX_RATIO, onThisThread(2, chunked(z, 65536), calls)))).equals(text)).toBe(true);
  expect(calls.n, 'the worker was still busy with an abandoned job').toBe(0);
}
