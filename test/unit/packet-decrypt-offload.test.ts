/**
 * DecryptWorker (src/packet/decrypt-offload.ts): large SEIPD v1 bodies decrypted, MDC-checked and
 * inflated on a worker thread. It must give the bytes and errors of the main thread's own path
 * (seipdV1Decrypt + innerMessage), keep handed-out output intact while its shared slots are reused,
 * let a reader stop early, drain a refused packet for its MDC only, take one packet at a time (the
 * caller decrypts on its own thread meanwhile), and report a dead worker as DecryptWorkerFailure (a
 * local problem), never as bad data.
 * The worker runs the built script (dist/packet/decrypt-worker.js: `npm test` builds first), as the
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
import { DecryptWorker, DecryptWorkerFailure } from '../../src/packet/decrypt-offload.js';
import { innerMessage, mainThreadInflater, MAX_RATIO } from '../../src/packet/inner-message.js';
import { PgpFormatError, packetHeader } from '../../src/packet/pgpstream.js';
import { seipdV1Decrypt, seipdV1EncryptSync } from '../../src/packet/seipd.js';
import { CollectSink, encodeToBuffer, makeHeader, makeKey, plaintextOf, sealedPacket, type TestKey } from './packet-helpers.js';

const WORKER_URL = new URL('../../dist/packet/decrypt-worker.js', import.meta.url);

const text = Buffer.from(Array.from({ length: 150_000 }, (_, i) => `line ${i}: the ferry leaves at dawn\r\n`).join('')); // ~5.5 MiB
const mixed = Buffer.concat([text, randomBytes(700_000), text]);

async function* chunked(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

/** A Compressed Data packet (algo 1 = raw deflate, 2 = ZLIB, 0 = stored) around `z`. */
function compressedPacket(algo: 0 | 1 | 2, z: Uint8Array): Buffer {
  return Buffer.concat([packetHeader(8, z.length + 1), Uint8Array.of(algo), z]);
}

/** `inner` sealed as a SEIPD v1 body under a fresh AES-256 key; `ciphertext` is what open() takes (after the version octet). */
function seal(inner: Uint8Array): { key: Buffer; ciphertext: Buffer } {
  const key = randomBytes(32);
  return { key, ciphertext: seipdV1EncryptSync('aes256', key, inner).subarray(1) };
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const b of gen) out.push(b); // kept, not copied: they must stay intact while slots are reused
  return Buffer.concat(out);
}

/** A job on the worker; fails the test if the worker was busy or broken. */
function onWorker(w: DecryptWorker, sealed: { key: Buffer; ciphertext: Buffer }, chunk = 65536, maxRatio = MAX_RATIO) {
  const job = w.open('aes256', sealed.key, chunked(sealed.ciphertext, chunk), maxRatio);
  if (!job) throw new Error('the worker was busy or broken');
  return job;
}

function verdictOf(e: unknown): string {
  return `${e instanceof PgpFormatError ? 'PgpFormatError: ' : ''}${(e as Error).message} (${(e as NodeJS.ErrnoException).code})`;
}

/** What this thread's path says for the same body: 'ok <sha of output>' or the error. */
async function mainVerdict(sealed: { key: Buffer; ciphertext: Buffer }, chunk = 65536): Promise<string> {
  const plain = seipdV1Decrypt('aes256', sealed.key, chunked(sealed.ciphertext, chunk), () => undefined);
  return collect(innerMessage(plain, mainThreadInflater)).then((b) => `ok ${b.length}`, verdictOf);
}

async function workerVerdict(w: DecryptWorker, sealed: { key: Buffer; ciphertext: Buffer }, chunk = 65536, maxRatio = MAX_RATIO): Promise<string> {
  const job = onWorker(w, sealed, chunk, maxRatio);
  return collect(job.signed).then((b) => {
    expect(job.integrityChecked()).toBe(true);
    return `ok ${b.length}`;
  }, verdictOf);
}

describe('DecryptWorker', () => {
  let w: DecryptWorker;
  beforeAll(() => {
    w = new DecryptWorker({ workerUrl: WORKER_URL });
    w.warm();
  });
  afterAll(async () => {
    await w.close();
  });

  for (const [name, algo, deflate] of [['ZLIB', 2, deflateSync], ['raw deflate (ZIP)', 1, deflateRawSync]] as const) {
    it(`${name}: the same bytes as the message, ciphertext in chunks of 1 KiB, 64 KiB, 1 MiB and whole`, async () => {
      const sealed = seal(compressedPacket(algo, deflate(mixed, { level: 6 })));
      for (const chunk of [1024, 65536, 1 << 20, sealed.ciphertext.length]) {
        const job = onWorker(w, sealed, chunk);
        expect((await collect(job.signed)).equals(mixed), `chunk ${chunk}`).toBe(true);
        expect(job.integrityChecked()).toBe(true);
      }
    });
  }

  it('stored (algo 0), no compressed packet, and a small compressed body: the bytes of this thread', async () => {
    const literal = Buffer.concat([packetHeader(11, mixed.length), mixed]);
    for (const inner of [compressedPacket(0, mixed), literal, compressedPacket(2, deflateSync(text.subarray(0, 100_000)))]) {
      const sealed = seal(inner);
      const job = onWorker(w, sealed);
      const out = await collect(job.signed);
      const plain = seipdV1Decrypt('aes256', sealed.key, [sealed.ciphertext], () => undefined);
      expect(out.equals(await collect(innerMessage(plain, mainThreadInflater)))).toBe(true);
      expect(job.integrityChecked()).toBe(true);
    }
  });

  it('bad inner data under a valid MDC: the errors this thread gives', async () => {
    const z = deflateSync(mixed);
    const corrupt = Buffer.from(z);
    corrupt.fill(0xff, z.length >> 1, (z.length >> 1) + 64);
    const badCheck = Buffer.from(z);
    badCheck[z.length - 1]! ^= 1;
    const cases: [string, Uint8Array][] = [
      ['corrupt deflate', compressedPacket(2, corrupt)],
      ['bad adler32', compressedPacket(2, badCheck)],
      ['deflate cut short', compressedPacket(2, z.subarray(0, z.length - 1000))],
      ['not deflate', compressedPacket(2, randomBytes(300_000))],
      ['unknown algorithm', compressedPacket(3 as 2, z)],
      ['data after the compressed packet', Buffer.concat([compressedPacket(2, z), packetHeader(11, 5), Buffer.from('extra')])],
      ['empty', new Uint8Array(0)],
    ];
    for (const [what, inner] of cases) {
      const sealed = seal(inner);
      const expected = await mainVerdict(sealed);
      expect(expected, what).not.toMatch(/^ok/);
      expect(await workerVerdict(w, sealed), what).toBe(expected);
    }
    // Over the ratio limit (here 20:1, plus 1 MiB): PgpFormatError on both.
    const bomb = seal(compressedPacket(2, deflateSync(Buffer.alloc(8 << 20, 'all the same '))));
    expect(await workerVerdict(w, bomb, 1024, 20)).toMatch(/^PgpFormatError: compressed data expands more than 20:1/);
    expect(await workerVerdict(w, seal(compressedPacket(2, deflateSync(text))))).toBe(`ok ${text.length}`); // still usable after errors
  });

  it('a broken MDC, or tampered ciphertext: the integrity check wins over whatever the inner data became', async () => {
    const sealed = seal(compressedPacket(2, deflateSync(mixed)));
    const badMdc = { key: sealed.key, ciphertext: Buffer.from(sealed.ciphertext) };
    badMdc.ciphertext[badMdc.ciphertext.length - 3]! ^= 1;
    expect(await workerVerdict(w, badMdc)).toBe(await mainVerdict(badMdc));
    expect(await workerVerdict(w, badMdc)).toMatch(/modification detected/);
    // A bit flipped in the middle garbles the deflate data: this thread stops at zlib's error, the
    // worker decrypts on to the MDC, which fails.
    const tampered = { key: sealed.key, ciphertext: Buffer.from(sealed.ciphertext) };
    tampered.ciphertext[tampered.ciphertext.length >> 1]! ^= 0x40;
    expect(await workerVerdict(w, tampered)).toMatch(/^PgpFormatError: modification detected: the integrity check \(MDC\) does not match/);
    const wrongKey = { key: randomBytes(32), ciphertext: sealed.ciphertext };
    expect(await workerVerdict(w, wrongKey)).toMatch(/modification detected/);
  });

  it('one packet at a time: open() while the worker is busy returns undefined; free again once the job ended', async () => {
    const sealed = seal(compressedPacket(2, deflateSync(mixed)));
    const job = onWorker(w, sealed);
    const it1 = job.signed[Symbol.asyncIterator]();
    const firstPiece = await it1.next(); // running now
    expect(w.open('aes256', sealed.key, chunked(sealed.ciphertext, 65536), MAX_RATIO)).toBeUndefined();
    const rest = await collect({ [Symbol.asyncIterator]: () => it1 });
    expect(Buffer.concat([firstPiece.value as Uint8Array, rest]).equals(mixed)).toBe(true);
    await job.close();
    await expectWorkerFree(w);
  });

  it('a reader that stops early (the worker blocked on full slots) and closes frees the worker for the next job', async () => {
    const sealed = seal(compressedPacket(2, deflateSync(Buffer.alloc(40 << 20, 'x')))); // far more output than the slots hold
    for (let round = 0; round < 3; round++) {
      const job = onWorker(w, sealed);
      const it1 = job.signed[Symbol.asyncIterator]();
      for (let i = 0; i < 5; i++) expect((await it1.next()).done).toBe(false);
      await new Promise((r) => setTimeout(r, 50)); // let the worker fill every slot and block
      await it1.return(undefined);
      await job.close();
    }
    await expectWorkerFree(w);
  });

  it('drain: stops the output, decrypts the rest for the MDC only; rejects only for the decryption', async () => {
    const sealed = seal(compressedPacket(2, deflateSync(Buffer.alloc(40 << 20, 'x'))));
    const badMdc = { key: sealed.key, ciphertext: Buffer.from(sealed.ciphertext) };
    badMdc.ciphertext[badMdc.ciphertext.length - 3]! ^= 1;
    const corruptAt = (at: number) => {
      const z = deflateSync(mixed);
      z.fill(0xff, Math.floor(z.length * at), Math.floor(z.length * at) + 64);
      return seal(compressedPacket(2, z));
    };
    const corruptDeflate = corruptAt(0.5);
    const drained = async (s: { key: Buffer; ciphertext: Buffer }, pieces: number): Promise<string> => {
      const job = onWorker(w, s);
      const it1 = job.signed[Symbol.asyncIterator]();
      for (let i = 0; i < pieces; i++) await it1.next();
      return job.drain().then(() => `drained, integrity ${job.integrityChecked()}`, verdictOf);
    };
    expect(await drained(sealed, 3)).toBe('drained, integrity true');
    expect(await drained(badMdc, 3)).toMatch(/^PgpFormatError: modification detected/);
    // The inner data fails after the drain began, or before: not the drain's business (the MDC is good).
    expect(await drained(corruptDeflate, 1)).toBe('drained, integrity true'); // the worker blocks on full slots long before the damage
    const early = corruptAt(0.05); // damaged within the first MiB of output: the slots hold it all
    const job = onWorker(w, early);
    await job.signed.next();
    await new Promise((r) => setTimeout(r, 300)); // the worker meets zlib's error, decrypts on to the MDC, and ends
    await job.drain();
    expect(job.integrityChecked()).toBe(true);
    await expect(collect(onWorker(w, early).signed)).rejects.toThrow(); // read, the same packet fails
    await expectWorkerFree(w);
  });

  it('the next job waits until the reader has copied out everything: a worker that finished first must not hand its slots on', async () => {
    // Less output than the slots hold: the worker ends the job while all of it is still unread.
    const small = mixed.subarray(0, 1_500_000);
    const a = seal(compressedPacket(2, deflateSync(small)));
    const b = seal(compressedPacket(2, deflateSync(text)));
    const jobA = onWorker(w, a);
    const it1 = jobA.signed[Symbol.asyncIterator]();
    const first = await it1.next();
    await new Promise((r) => setTimeout(r, 300)); // the worker has sent its last message
    expect(w.open('aes256', b.key, chunked(b.ciphertext, 65536), MAX_RATIO), 'slots handed on while unread').toBeUndefined();
    const rest = await collect({ [Symbol.asyncIterator]: () => it1 });
    expect(Buffer.concat([first.value as Uint8Array, rest]).equals(small)).toBe(true);
    expect((await collect(onWorker(w, b).signed)).equals(text)).toBe(true);
  });

  it('close() with the ciphertext source stalled in a read: resolves, frees the worker, and the late chunk touches no slot', async () => {
    const sealed = seal(compressedPacket(2, deflateSync(mixed)));
    let unstall!: () => void;
    const stalled = new Promise<void>((r) => (unstall = r));
    async function* stalling(): AsyncGenerator<Uint8Array> {
      yield sealed.ciphertext.subarray(0, 600_000);
      await stalled;
      yield Buffer.alloc(600_000, 0xee); // would corrupt the next job's input if written into a slot
    }
    const job = w.open('aes256', sealed.key, stalling(), MAX_RATIO)!;
    await job.signed.next();
    await job.close(); // hung before: the job waited for the pump
    const next = seal(compressedPacket(2, deflateSync(mixed)));
    const job2 = onWorker(w, next, 4096); // small chunks: the job is still feeding when the stalled read returns
    const it2 = job2.signed[Symbol.asyncIterator]();
    const first = await it2.next();
    unstall();
    const rest = await collect({ [Symbol.asyncIterator]: () => it2 });
    expect(Buffer.concat([first.value as Uint8Array, rest]).equals(mixed)).toBe(true);
    await expectWorkerFree(w);
  });

  it('ciphertext that fails part way (truncation, trailing bytes): its error reaches the reader and the drain; the worker stays usable', async () => {
    const sealed = seal(compressedPacket(2, deflateSync(mixed)));
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield sealed.ciphertext.subarray(0, 600_000);
      throw new PgpFormatError('packet body is truncated');
    }
    const job = w.open('aes256', sealed.key, failing(), MAX_RATIO)!;
    await expect(collect(job.signed)).rejects.toThrow('truncated');
    await job.close();
    const job2 = w.open('aes256', sealed.key, failing(), MAX_RATIO)!;
    await expect(job2.drain()).rejects.toThrow('truncated');
    await expectWorkerFree(w);
  });
});

describe('DecryptWorker that fails', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-decrypt-worker-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const sealed = seal(compressedPacket(2, deflateSync(mixed)));

  it('a worker that dies: DecryptWorkerFailure (not bad data), in reading and in draining; then open() declines', async () => {
    const script = path.join(dir, 'dies.mjs');
    writeFileSync(script, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (m) => { if (m.t === 'in') process.exit(3); });\n");
    const w = new DecryptWorker({ workerUrl: new URL(`file://${script}`) });
    const err = await collect(onWorker(w, sealed).signed).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecryptWorkerFailure);
    expect(w.open('aes256', sealed.key, chunked(sealed.ciphertext, 65536), MAX_RATIO)).toBeUndefined();
    await w.close();
    const w2 = new DecryptWorker({ workerUrl: new URL(`file://${script}`) });
    await expect(onWorker(w2, sealed).drain()).rejects.toBeInstanceOf(DecryptWorkerFailure);
    await w2.close();
  });

  it('a worker script that cannot load: DecryptWorkerFailure; then open() declines', async () => {
    const w = new DecryptWorker({ workerUrl: new URL(`file://${path.join(dir, 'missing.mjs')}`) });
    expect(await collect(onWorker(w, sealed).signed).catch((e: unknown) => e)).toBeInstanceOf(DecryptWorkerFailure);
    expect(w.open('aes256', sealed.key, chunked(sealed.ciphertext, 65536), MAX_RATIO)).toBeUndefined();
    await w.close();
  });
});

describe('decodePacket with a DecryptWorker', () => {
  let alice: TestKey;
  let bob: TestKey;
  let w: DecryptWorker;
  /** Jobs the worker took: the decodes below must run on it, not on the main thread. */
  let jobs = 0;
  beforeAll(async () => {
    [alice, bob] = await Promise.all([makeKey('alice'), makeKey('bob')]);
    w = new DecryptWorker({ workerUrl: WORKER_URL });
    const open = w.open.bind(w);
    w.open = (...args) => {
      const job = open(...args);
      if (job) jobs++;
      return job;
    };
  });
  afterAll(async () => {
    await w.close();
  });
  const decode = (packet: Buffer, worker: DecryptWorker = w) => {
    const sink = new CollectSink();
    return decodePacket({ input: Readable.from([packet]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: sink, decryptWorker: worker }).then(
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
    return { good, corrupt: await sealedPacket(compressedPacket(2, z), bob) };
  }

  it('a large packet decodes to the same bytes; corrupt deflate data under a valid MDC is PACKET_DECRYPT', async () => {
    const payload = Buffer.concat([text, Buffer.from(randomBytes(1 << 20).toString('base64'))]);
    const { good, corrupt } = await packets(payload);
    const before = jobs;
    const r = await decode(good);
    expect(r.payload.equals(payload)).toBe(true);
    expect(r.header.size).toBe(payload.length);
    expect(await codeOf(decode(corrupt))).toBe('PACKET_DECRYPT');
    expect(await codeOf(decode(good.subarray(0, good.length - 100)))).toBe('PACKET_DECRYPT');
    expect(jobs - before).toBe(3);
  });

  it('a dead worker fails the decode with DecryptWorkerFailure, never a PACKET_ error; the next decode runs on the main thread', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-decrypt-worker-'));
    try {
      const script = path.join(dir, 'dies.mjs');
      writeFileSync(script, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (m) => { if (m.t === 'in') process.exit(3); });\n");
      const dying = new DecryptWorker({ workerUrl: new URL(`file://${script}`) });
      const payload = Buffer.concat([text, text]);
      const { good } = await packets(payload);
      const err = await decode(good, dying).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DecryptWorkerFailure);
      expect((await decode(good, dying)).payload.equals(payload)).toBe(true);
      await dying.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a decode that gives up (failing sink, inner data that is not OpenPGP) ends its job: the next packet goes to the worker', async () => {
    const payload = Buffer.concat([text, Buffer.from(randomBytes(1 << 20).toString('base64'))]);
    const { good } = await packets(payload);
    const enospc = new (await import('node:stream')).Writable({
      write(_c, _e, cb) {
        cb(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
      },
    });
    const err = await decodePacket({ input: Readable.from([good]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: enospc, decryptWorker: w }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    await expectWorkerFree(w);
    // Decrypts and inflates (on the worker) to something that is not a signed message: open() fails after reading 1 MiB.
    const junk = deflateSync(Buffer.from(randomBytes(3 << 20).toString('base64')));
    expect(await codeOf(decode(await sealedPacket(compressedPacket(2, junk), bob)))).toBe('PACKET_DECRYPT');
    await expectWorkerFree(w);
  });

  it('two decodes at once, the first with a sink that stalls near its end: both deliver their bytes', async () => {
    // The worker finishes the first packet while its sink stalls with output unread in the slots; the
    // second decode must not get the slots before the first reader copied its output out.
    const payloadA = Buffer.concat([text, Buffer.from(randomBytes(1 << 20).toString('base64'))]);
    const payloadB = Buffer.from(randomBytes(4 << 20).toString('base64'));
    const [pa, pb] = await Promise.all([encodeToBuffer(alice, bob, payloadA, 6), encodeToBuffer(alice, bob, payloadB, 6)]);
    const heldA: Buffer[] = [];
    let stalledAt!: () => void;
    const stalled = new Promise<void>((r) => (stalledAt = r));
    let written = 0;
    const slowSink = new (await import('node:stream')).Writable({
      write(c: Buffer, _e, cb) {
        heldA.push(Buffer.from(c));
        written += c.length;
        if (written > payloadA.length - 700_000 && written - c.length <= payloadA.length - 700_000) {
          stalledAt();
          setTimeout(cb, 800);
          return;
        }
        cb();
      },
    });
    const a = decodePacket({ input: Readable.from([pa]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: slowSink, decryptWorker: w });
    await stalled;
    await new Promise((r) => setTimeout(r, 300)); // the worker has finished A
    const b = decode(pb);
    await a;
    expect(Buffer.concat(heldA).equals(payloadA)).toBe(true);
    expect((await b).payload.equals(payloadB)).toBe(true);
    await expectWorkerFree(w);
  });

  it('a packet refused part way, drained with the worker: the errors of the main thread (truncation, trailing bytes, MDC), and the worker free after', async () => {
    const payload = Buffer.from(randomBytes(3 << 20).toString('base64'));
    const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, bob, payload, { size: payload.length - 300_000 }), payload), format: 'binary', filename: '' });
    const z = deflateSync(Buffer.from(await openpgp.sign({ message, signingKeys: alice.priv, format: 'binary' })));
    const packet = await sealedPacket(compressedPacket(2, z), bob);
    const badMdc = Buffer.from(packet);
    badMdc[badMdc.length - 3]! ^= 1;
    const cases: [string, Buffer, RegExp][] = [
      ['refused', packet, /^PACKET_MALFORMED: payload is longer than header.size \d+ \(signature not checked/],
      ...[5000, 50_000, 100_000, 150_000].map((cut): [string, Buffer, RegExp] => [`truncated by ${cut}`, packet.subarray(0, packet.length - cut), /^PACKET_DECRYPT: .*truncated/]),
      ['trailing bytes', Buffer.concat([packet, Buffer.from('x')]), /^PACKET_DECRYPT: .*trailing bytes/],
      ['bad MDC', badMdc, /^PACKET_DECRYPT: .*modification detected/],
    ];
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-drain-worker-'));
    const before = jobs;
    for (const [what, bytes, expected] of cases) {
      // From a file, as the receiver reads: the pump then runs ahead of the reader, and may be the
      // one to meet the truncation (the error it met must still be the one reported).
      writeFileSync(path.join(dir, 'p'), bytes);
      const input = createReadStream(path.join(dir, 'p'), { highWaterMark: 256 * 1024 });
      const err = await decodePacket({ input, decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: new CollectSink(), decryptWorker: w }).then(
        () => 'resolved',
        (e: unknown) => (e instanceof FerryError ? `${e.code}: ${e.message}` : String(e)),
      );
      expect(err, what).toMatch(expected);
      await expectWorkerFree(w);
    }
    expect(jobs - before).toBe(2 * cases.length); // each decode, and each check that the worker is free
    rmSync(dir, { recursive: true, force: true });
  });
});

/** The worker takes the next packet (open() does not decline) and decodes it. */
async function expectWorkerFree(w: DecryptWorker): Promise<void> {
  const sealed = seal(compressedPacket(2, deflateSync(text)));
  const job = w.open('aes256', sealed.key, chunked(sealed.ciphertext, 65536), MAX_RATIO);
  expect(job, 'the worker was still busy with an abandoned job').toBeDefined();
  expect((await collect(job!.signed)).equals(text)).toBe(true);
}
