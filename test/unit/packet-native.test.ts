/**
 * The native encode/decode paths: adaptive compression (what the packet holds and how big it is), and
 * tampering that keeps a VALID MDC (an attacker can always encrypt to us): the decoder must still check
 * the signature over the decompressed literal data itself, and refuse broken inner framing.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { deflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import { chooseLevel } from '../../src/packet/encode.js';
import { ByteReader, packetBody, packetHeader, readPacketHead } from '../../src/packet/pgpstream.js';
import { seipdV1Decrypt, seipdV1EncryptSync } from '../../src/packet/seipd.js';
import { CollectSink, decodeBuffer, encodeToBuffer, makeHeader, makeKey, plaintextOf, sealedPacket, type TestKey } from './packet-helpers.js';
import { decodePacket } from '../../src/packet/codec.js';

let alice: TestKey;
let bob: TestKey;
beforeAll(async () => {
  [alice, bob] = await Promise.all([makeKey('alice'), makeKey('bob')]);
});

/** The decrypted inner packets of a packet (test-side decryption through the same primitives). */
async function innerOf(packet: Buffer, to: TestKey): Promise<Buffer> {
  const message = await openpgp.readMessage({ binaryMessage: packet });
  const [sk] = await openpgp.decryptSessionKeys({ message, decryptionKeys: to.priv });
  const r = new ByteReader([packet][Symbol.iterator]() as unknown as AsyncIterator<unknown>);
  for (let h = await readPacketHead(r); h; h = await readPacketHead(r)) {
    const body: Buffer[] = [];
    for await (const c of packetBody(r, h)) body.push(Buffer.from(c));
    if (h.tag !== 18) continue;
    const out: Buffer[] = [];
    for await (const c of seipdV1Decrypt(sk!.algorithm!, sk!.data, [Buffer.concat(body).subarray(1)], () => undefined)) out.push(Buffer.from(c));
    return Buffer.concat(out);
  }
  throw new Error('no SEIPD packet');
}


const compressed = (inner: Uint8Array): Buffer => {
  const z = deflateSync(inner);
  return Buffer.concat([packetHeader(8, z.length + 1), Uint8Array.of(2), z]);
};

describe('seipdV1Decrypt onConsumed', () => {
  it('a chunk may be overwritten as soon as onConsumed reports it: same plaintext, MDC intact, each chunk reported before its plaintext is handed out', async () => {
    const key = randomBytes(32);
    const plain = randomBytes(300_000);
    const body = seipdV1EncryptSync('aes256', key, plain).subarray(1);
    // Odd chunk sizes, so blocks and the held-back MDC straddle chunks.
    const chunks: Buffer[] = [];
    for (let p = 0, n = 1; p < body.length; p += n, n = (n * 7 + 13) % 40_000 + 1) chunks.push(Buffer.from(body.subarray(p, p + n)));
    let consumed = 0;
    let verified = false;
    const out: Buffer[] = [];
    const gen = seipdV1Decrypt('aes256', key, chunks, () => (verified = true), (ct) => {
      expect(ct).toBe(chunks[consumed]);
      consumed++;
      ct.fill(0xa5); // what the worker's reader does to a slot handed back: reads the next bytes into it
    });
    let seen = 0;
    for await (const part of gen) {
      seen += part.length;
      // The plaintext handed out so far lies within the chunks already reported (prefix 18 bytes, MDC 22 held back).
      const reportedBytes = chunks.slice(0, consumed).reduce((n, c) => n + c.length, 0);
      expect(seen).toBeLessThanOrEqual(reportedBytes);
      out.push(Buffer.from(part));
    }
    expect(consumed).toBe(chunks.length);
    expect(verified).toBe(true);
    expect(Buffer.concat(out).equals(plain)).toBe(true);
  });
});

describe('adaptive compression', () => {
  const text = Buffer.from(
    'Subject: weekly report\r\nFrom: a@example.org\r\n\r\n' +
      Array.from({ length: 4000 }, (_, i) => `Line ${i}: the quick brown fox jumps over the lazy dog, item ${i * 7}.\r\n`).join(''),
  );
  for (const [what, size] of [
    ['4 KiB (in memory)', 4096],
    ['3 MiB (streamed)', 3 * 1024 * 1024],
  ] as const) {
    it(`random ${what}: no compressed packet, at most 1.01x raw`, async () => {
      const payload = randomBytes(size);
      const packet = await encodeToBuffer(alice, bob, payload, 6);
      expect(packet.length).toBeLessThanOrEqual(Math.ceil(payload.length * 1.01) + 800); // + fixed overhead: session key, header line, signature
      expect((await innerOf(packet, bob))[0]! & 0x3f, 'first inner packet is the one-pass signature (tag 4)').toBe(4);
      expect((await decodeBuffer(packet, bob, [alice])).payload.equals(payload)).toBe(true);
    });
  }
  it('random 3 MiB: the packet is at most 1.01x raw, header and signature included', async () => {
    const payload = randomBytes(3 * 1024 * 1024);
    expect((await encodeToBuffer(alice, bob, payload, 9)).length).toBeLessThanOrEqual(payload.length * 1.01);
  });
  for (const [what, payload] of [
    ['4 KiB', text.subarray(0, 4096)],
    ['300 KiB', text],
  ] as const) {
    it(`text ${what}: compressed (tag 8), at most 0.4x raw`, async () => {
      const packet = await encodeToBuffer(alice, bob, payload, 6);
      const inner = await innerOf(packet, bob);
      expect(inner[0]! & 0x3f).toBe(8);
      expect(packet.length).toBeLessThanOrEqual(payload.length * 0.4);
      expect((await decodeBuffer(packet, bob, [alice])).payload.equals(payload)).toBe(true);
    });
  }
  it('a text start then random bytes: decided on the sample, still round trips', async () => {
    const payload = Buffer.concat([text, randomBytes(2 * 1024 * 1024)]);
    const packet = await encodeToBuffer(alice, bob, payload, 6);
    expect(packet.length).toBeLessThanOrEqual(payload.length * 1.01);
    expect((await decodeBuffer(packet, bob, [alice])).payload.equals(payload)).toBe(true);
  });
  it('chooseLevel: 0 stays 0, random stores, text keeps the level', () => {
    expect(chooseLevel(text, 0)).toBe(0);
    expect(chooseLevel(randomBytes(65536), 6)).toBe(0);
    expect(chooseLevel(text, 6)).toBe(6);
  });
});

describe('tampering under a valid MDC', () => {
  let payload: Buffer;
  let signed: Buffer; // one-pass signed message over the framed plaintext
  beforeAll(async () => {
    payload = Buffer.from('Subject: hi\r\n\r\n' + 'pay 100 EUR to alice\r\n'.repeat(50));
    const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, bob, payload), payload), format: 'binary', filename: '' });
    signed = Buffer.from(await openpgp.sign({ message, signingKeys: alice.priv, format: 'binary' }));
  });
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'resolved',
      (e: unknown) => (e instanceof FerryError ? e.code : `not a FerryError: ${String(e)}`),
    );

  it('the untampered control decodes, compressed or not', async () => {
    for (const inner of [signed, compressed(signed)]) expect((await decodeBuffer(await sealedPacket(inner, bob), bob, [alice])).payload.equals(payload)).toBe(true);
  });
  it('literal data changed after signing (plain and compressed): PACKET_BAD_SIGNATURE', async () => {
    const changed = Buffer.from(signed);
    const at = changed.indexOf('100 EUR');
    changed.write('900', at);
    expect(await code(decodeBuffer(await sealedPacket(changed, bob), bob, [alice]))).toBe('PACKET_BAD_SIGNATURE');
    expect(await code(decodeBuffer(await sealedPacket(compressed(changed), bob), bob, [alice]))).toBe('PACKET_BAD_SIGNATURE');
  });
  it('signature packet removed: PACKET_BAD_SIGNATURE or PACKET_DECRYPT, never resolved', async () => {
    const msg = await openpgp.readMessage({ binaryMessage: signed });
    const list = new openpgp.PacketList<openpgp.AnyPacket>();
    for (const p of msg.packets) if (!(p instanceof openpgp.SignaturePacket)) list.push(p);
    const noSig = Buffer.from(list.write() as Uint8Array);
    expect(noSig.length).toBeLessThan(signed.length);
    expect(['PACKET_BAD_SIGNATURE', 'PACKET_DECRYPT']).toContain(await code(decodeBuffer(await sealedPacket(compressed(noSig), bob), bob, [alice])));
  });
  it('truncated zlib stream, data after the compressed packet, unknown algorithm: PACKET_DECRYPT', async () => {
    const c = compressed(signed);
    const z = deflateSync(signed);
    const cut = Buffer.concat([packetHeader(8, z.length - 9), Uint8Array.of(2), z.subarray(0, z.length - 10)]);
    expect(await code(decodeBuffer(await sealedPacket(cut, bob), bob, [alice]))).toBe('PACKET_DECRYPT');
    expect(await code(decodeBuffer(await sealedPacket(Buffer.concat([c, signed]), bob), bob, [alice]))).toBe('PACKET_DECRYPT');
    const bzip = Buffer.from(c);
    bzip[packetHeader(8, z.length + 1).length] = 3;
    expect(await code(decodeBuffer(await sealedPacket(bzip, bob), bob, [alice]))).toBe('PACKET_DECRYPT');
  });
  it('a compressed body large enough to be inflated in slices (> 256 KiB): control decodes; truncated or corrupt deflate data under a valid MDC is PACKET_DECRYPT', async () => {
    const big = Buffer.from(randomBytes(450 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n'));
    const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, bob, big), big), format: 'binary', filename: '' });
    const bigSigned = Buffer.from(await openpgp.sign({ message, signingKeys: alice.priv, format: 'binary' }));
    const z = deflateSync(bigSigned);
    expect(z.length).toBeGreaterThan(256 * 1024); // over the one-call limit in decrypt-native.ts
    const pack = (zz: Uint8Array): Buffer => Buffer.concat([packetHeader(8, zz.length + 1), Uint8Array.of(2), zz]);
    expect((await decodeBuffer(await sealedPacket(pack(z), bob), bob, [alice])).payload.equals(big)).toBe(true);
    expect(await code(decodeBuffer(await sealedPacket(pack(z.subarray(0, z.length - 1000)), bob), bob, [alice]))).toBe('PACKET_DECRYPT');
    const corrupt = Buffer.from(z);
    corrupt[z.length >> 1]! ^= 0xff;
    expect(await code(decodeBuffer(await sealedPacket(pack(corrupt), bob), bob, [alice]))).toBe('PACKET_DECRYPT');
    // The same body in partial lengths: 512-byte parts (the smallest accepted) decode to the same
    // payload; 16-byte parts are refused (RFC 4880's minimum for the first part, applied to all).
    const body = Buffer.concat([Uint8Array.of(2), z]);
    const inParts = (bits: number): Buffer => {
      const size = 1 << bits;
      const parts: Uint8Array[] = [Uint8Array.of(0xc0 | 8)];
      let at = 0;
      for (; body.length - at > size; at += size) parts.push(Uint8Array.of(224 + bits), body.subarray(at, at + size));
      parts.push(packetHeader(8, body.length - at).subarray(1), body.subarray(at));
      return Buffer.concat(parts);
    };
    expect((await decodeBuffer(await sealedPacket(inParts(9), bob), bob, [alice])).payload.equals(big)).toBe(true);
    expect(await code(decodeBuffer(await sealedPacket(inParts(4), bob), bob, [alice]))).toBe('PACKET_DECRYPT');
  });
  it('an encrypted body in partial lengths under 512 bytes is PACKET_DECRYPT; 512 decodes', async () => {
    const key = randomBytes(32);
    const pkesk = (await openpgp.encryptSessionKey({ data: key, algorithm: 'aes256', encryptionKeys: bob.pub, format: 'binary' })) as Uint8Array;
    const body = seipdV1EncryptSync('aes256', key, compressed(signed));
    const inParts = (bits: number): Buffer => {
      const size = 1 << bits;
      const parts: Uint8Array[] = [pkesk, Uint8Array.of(0xc0 | 18)];
      let at = 0;
      for (; body.length - at > size; at += size) parts.push(Uint8Array.of(224 + bits), body.subarray(at, at + size));
      parts.push(packetHeader(18, body.length - at).subarray(1), body.subarray(at));
      return Buffer.concat(parts);
    };
    expect(body.length).toBeGreaterThan(512);
    expect((await decodeBuffer(inParts(9), bob, [alice])).payload.equals(payload)).toBe(true);
    for (const bits of [0, 4, 8]) expect(await code(decodeBuffer(inParts(bits), bob, [alice])), `2^${bits}`).toBe('PACKET_DECRYPT');
  });
  it('an empty encrypted body and a missing MDC: PACKET_DECRYPT', async () => {
    expect(await code(decodeBuffer(await sealedPacket(new Uint8Array(0), bob), bob, [alice]))).toBe('PACKET_DECRYPT');
    const good = await sealedPacket(signed, bob);
    const cutMdc = Buffer.from(good.subarray(0, good.length - 22));
    expect(await code(decodeBuffer(cutMdc, bob, [alice]))).toBe('PACKET_DECRYPT');
  });
});

describe('a packet refused part way is not inflated to its end', () => {
  // A refused packet used to be read to its end so that the MDC and the signature decided the error
  // code: up to 1100 times its size in inflation. Now the rest goes through decryption and the MDC
  // only. The deflate data below is corrupt near its end: had it been inflated there, the error would
  // be PACKET_DECRYPT. Messages over 1 MiB, so the decoder streams them (decode.ts).
  let mallory: TestKey;
  let big: Buffer;
  beforeAll(async () => {
    mallory = await makeKey('mallory');
    big = Buffer.from(randomBytes(2304 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n')); // 3 MiB
  });
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'resolved',
      (e: unknown) => (e instanceof FerryError ? `${e.code}: ${e.message}` : `not a FerryError: ${String(e)}`),
    );
  /** The signed message as a Compressed Data packet whose deflate stream is broken 4 KiB before its end (or intact, or not compressed). */
  async function build(signer: TestKey, header: ReturnType<typeof makeHeader>, breakTail: boolean, magic?: string, compress = true): Promise<Buffer> {
    const message = await openpgp.createMessage({ binary: plaintextOf(header, big, magic), format: 'binary', filename: '' });
    const signedMsg = Buffer.from(await openpgp.sign({ message, signingKeys: signer.priv, format: 'binary' }));
    if (!compress) return sealedPacket(signedMsg, bob);
    const z = deflateSync(signedMsg);
    if (breakTail) z.fill(0xff, z.length - 4096, z.length - 4000);
    return sealedPacket(Buffer.concat([packetHeader(8, z.length + 1), Uint8Array.of(2), z]), bob);
  }
  const decodeWithSink = (packet: Buffer, onSink: () => void) =>
    decodePacket({
      input: Readable.from([packet]),
      decryptionKey: bob.priv,
      verificationKeys: [alice.pub],
      payloadSink: () => {
        onSink();
        return new CollectSink();
      },
    });

  it('controls: intact, it decodes; a broken tail alone is PACKET_DECRYPT', async () => {
    expect((await decodeBuffer(await build(alice, makeHeader(alice, bob, big), false), bob, [alice])).payload.equals(big)).toBe(true);
    expect(await code(decodeBuffer(await build(alice, makeHeader(alice, bob, big), true), bob, [alice]))).toMatch(/^PACKET_DECRYPT: /);
  });

  it('a payload longer than its header says: PACKET_MALFORMED without inflating the rest; a broken MDC still wins', async () => {
    const packet = await build(alice, makeHeader(alice, bob, big, { size: 1000 }), true);
    expect(await code(decodeBuffer(packet, bob, [alice]))).toBe('PACKET_MALFORMED: payload is longer than header.size 1000 (signature not checked: refused part way through)');
    const badMdc = Buffer.from(packet);
    badMdc[badMdc.length - 1]! ^= 1;
    expect(await code(decodeBuffer(badMdc, bob, [alice]))).toMatch(/^PACKET_DECRYPT: .*modification detected/);
  });

  it('a signer that is not a peer: PACKET_UNKNOWN_SIGNER before any payload reaches a sink, without inflating the rest; a broken MDC still wins', async () => {
    let sinks = 0;
    const packet = await build(mallory, makeHeader(alice, bob, big), true);
    const err = await code(decodeWithSink(packet, () => sinks++));
    expect(err).toBe(`PACKET_UNKNOWN_SIGNER: packet is signed by key id ${mallory.priv.getKeyID().toHex()}, which is not a configured peer key`);
    expect(sinks).toBe(0);
    const badMdc = Buffer.from(packet);
    badMdc[badMdc.length - 5]! ^= 1;
    expect(await code(decodeWithSink(badMdc, () => sinks++))).toMatch(/^PACKET_DECRYPT: .*modification detected/);
    expect(sinks).toBe(0);
  });

  it('while draining: a truncated packet or trailing bytes are PACKET_DECRYPT; a version 2 magic is PACKET_VERSION; uncompressed too', async () => {
    const packet = await build(alice, makeHeader(alice, bob, big, { size: 1000 }), false);
    for (const cut of [10, 200_000]) expect(await code(decodeBuffer(packet.subarray(0, packet.length - cut), bob, [alice]))).toMatch(/^PACKET_DECRYPT: .*truncated/);
    expect(await code(decodeBuffer(Buffer.concat([packet, Buffer.from('x')]), bob, [alice]))).toMatch(/^PACKET_DECRYPT: .*trailing bytes/);
    const v2 = await build(alice, { ...makeHeader(alice, bob, big), v: 2 } as unknown as ReturnType<typeof makeHeader>, true, 'FERRYPOST-PACKET 2');
    expect(await code(decodeBuffer(v2, bob, [alice]))).toBe('PACKET_VERSION: packet format version 2 is not supported by this ferrypost (supports 1) (signature not checked: refused part way through)');
    const plain = await build(alice, makeHeader(alice, bob, big, { size: 1000 }), false, undefined, false);
    expect(await code(decodeBuffer(plain, bob, [alice]))).toBe('PACKET_MALFORMED: payload is longer than header.size 1000 (signature not checked: refused part way through)');
  });

  it('the file it reads is closed after a drain, refused or truncated', async () => {
    const { mkdtempSync, writeFileSync, createReadStream, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-drain-'));
    try {
      const packet = await build(alice, makeHeader(alice, bob, big, { size: 1000 }), false);
      for (const bytes of [packet, packet.subarray(0, packet.length - 10)]) {
        const file = path.join(dir, 'p');
        writeFileSync(file, bytes);
        const input = createReadStream(file, { highWaterMark: 256 * 1024 });
        const closed = new Promise<void>((r) => input.once('close', () => r()));
        expect(await code(decodePacket({ input, decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: new CollectSink() }))).toMatch(/^PACKET_(MALFORMED|DECRYPT)/);
        await closed;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
