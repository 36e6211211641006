/**
 * Hostile packets that must be refused cheaply (bounded memory and CPU) with a PACKET_* code, and local
 * input errors that must NOT be turned into one (the receiver retries those): a signature packet
 * declaring a huge length (native and openpgp.verify paths), too many or too long PKESKs, and an input
 * that fails with an errno (EIO) part way.
 */
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import { decodePacket } from '../../src/packet/codec.js';
import { MAX_PKESK_BYTES, MAX_PKESKS } from '../../src/packet/decrypt-native.js';
import { MAX_SIGNATURE_PACKET_BYTES } from '../../src/packet/native/signature-verify.js';
import { codeOf, CollectSink, compressedPacket, decodeBuffer, encodeToBuffer, hugeSignatureMessage, makeHeader, makeKey, pkt, plaintextOf, sealedPacket, type TestKey } from './packet-helpers.js';

const MiB = 1 << 20;
let alice: TestKey;
let bob: TestKey;
let carol: TestKey;

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([makeKey('alice'), makeKey('bob'), makeKey('carol')]);
});

describe('a signature packet declaring more than MAX_SIGNATURE_PACKET_BYTES is refused before it is read', () => {
  const over = MAX_SIGNATURE_PACKET_BYTES + 1;

  it('the cap leaves room for any real signature (v4/v6, notations: < 2 KiB) and is small', () => {
    expect(MAX_SIGNATURE_PACKET_BYTES).toBeGreaterThanOrEqual(16 * 1024);
    expect(MAX_SIGNATURE_PACKET_BYTES).toBeLessThanOrEqual(64 * 1024);
  });

  it('native streamed path (binary OPS, > 1 MiB inflated): PACKET_DECRYPT naming the length', async () => {
    const packet = await sealedPacket(compressedPacket(hugeSignatureMessage(alice, bob, 0, Math.round(1.2 * MiB), over)), bob);
    expect(await codeOf(decodeBuffer(packet, bob, [alice]))).toMatch(new RegExp(`^PACKET_DECRYPT: .*signature packet of ${over} bytes`));
  });

  it('openpgp.verify path (text-mode OPS), streamed and in memory, and nested compression: PACKET_DECRYPT before openpgp buffers it', async () => {
    for (const payloadBytes of [Math.round(1.2 * MiB), 1000]) {
      const packet = await sealedPacket(compressedPacket(hugeSignatureMessage(alice, bob, 1, payloadBytes, over)), bob);
      expect(await codeOf(decodeBuffer(packet, bob, [alice]))).toMatch(/^PACKET_DECRYPT: .*packet \(tag 2\) of \d+ bytes/);
      // a Compressed Data packet inside the one inflated natively: openpgp would inflate it (1100:1) and buffer what is in it
      const nested = await sealedPacket(compressedPacket(compressedPacket(hugeSignatureMessage(alice, bob, 0, payloadBytes, over))), bob);
      expect(await codeOf(decodeBuffer(nested, bob, [alice]))).toMatch(/^PACKET_DECRYPT: .*compressed data inside/);
    }
  });

  it('controls: the shapes openpgp.verify is there for still decode (RSA signer, streamed partial-length literal; text mode; two signatures)', async () => {
    const rsa = await openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [{ name: 'rsa' }], format: 'object' });
    const rsaKey: TestKey = { priv: rsa.privateKey, pub: rsa.publicKey, fpr: rsa.privateKey.getFingerprint() };
    for (const size of [1000, 2 * MiB]) {
      const payload = randomBytes(size);
      const bytes = plaintextOf(makeHeader(alice, bob, payload), payload);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < bytes.length; i += 65536) c.enqueue(bytes.subarray(i, i + 65536));
          c.close();
        },
      });
      const signed = await openpgp.sign({ message: await openpgp.createMessage({ binary: stream, format: 'binary' }), signingKeys: rsa.privateKey, format: 'binary' });
      const r = await decodeBuffer(await sealedPacket(Buffer.from(await readAllWeb(signed)), bob), bob, [alice, rsaKey]);
      expect(r.payload.equals(payload)).toBe(true);
      expect(r.signer).toBe(rsaKey.fpr.toLowerCase());
      const two = await openpgp.sign({ message: await openpgp.createMessage({ binary: bytes }), signingKeys: [alice.priv, carol.priv], format: 'binary' });
      expect(await codeOf(decodeBuffer(await sealedPacket(two, bob), bob, [alice, carol]))).toMatch(/^PACKET_BAD_SIGNATURE: the packet has 2 signatures/);
    }
    const text = await openpgp.sign({ message: await openpgp.createMessage({ text: 'FERRYPOST-PACKET 1\r\n' }), signingKeys: alice.priv, format: 'binary' });
    expect(await codeOf(decodeBuffer(await sealedPacket(text, bob), bob, [alice]))).toMatch(/^PACKET_MALFORMED/); // verified, then malformed
  }, 20_000);
});

async function readAllWeb(s: Uint8Array | ReadableStream<Uint8Array>): Promise<Uint8Array> {
  if (s instanceof Uint8Array) return s;
  const out: Uint8Array[] = [];
  const r = s.getReader();
  for (let n = await r.read(); !n.done; n = await r.read()) out.push(n.value);
  return Buffer.concat(out);
}

describe('PKESKs are bounded in number and size', () => {
  let good: Buffer;
  let pkesk: Buffer;
  const payload = Buffer.from('Subject: pkesk\r\n\r\nx\r\n');

  beforeAll(async () => {
    good = await encodeToBuffer(alice, bob, payload);
    expect(good[0]).toBe(0xc1); // new-format PKESK with a one-octet length
    pkesk = good.subarray(0, 2 + good[1]!);
  });

  it(`up to MAX_PKESKS decode; one more is PACKET_DECRYPT, even with ours first`, async () => {
    expect(MAX_PKESKS).toBeGreaterThanOrEqual(4);
    expect(MAX_PKESKS).toBeLessThanOrEqual(32);
    const rest = good.subarray(pkesk.length);
    const atCap = Buffer.concat([...Array<Buffer>(MAX_PKESKS).fill(pkesk), rest]);
    expect((await decodeBuffer(atCap, bob, [alice])).payload.equals(payload)).toBe(true);
    const over = Buffer.concat([...Array<Buffer>(MAX_PKESKS + 1).fill(pkesk), rest]);
    expect(await codeOf(decodeBuffer(over, bob, [alice]))).toMatch(/^PACKET_DECRYPT: .*more than \d+ PKESK/);
  });

  it('a PKESK longer than MAX_PKESK_BYTES is PACKET_DECRYPT, even after ours', async () => {
    const long = Buffer.concat([Buffer.from([3]), Buffer.from(bob.priv.getKeyID().toHex(), 'hex'), randomBytes(MAX_PKESK_BYTES - 8)]);
    const packet = Buffer.concat([pkesk, pkt(1, long), good.subarray(pkesk.length)]);
    expect(await codeOf(decodeBuffer(packet, bob, [alice]))).toMatch(/^PACKET_DECRYPT: .*PKESK of \d+ bytes/);
  });

  it('openpgp.decryptSessionKeys is given only PKESKs for our key ids or the wildcard id', async () => {
    const k = await openpgp.readPrivateKey({ armoredKey: bob.priv.armor() });
    const asked: string[] = [];
    const real = k.getDecryptionKeys.bind(k);
    k.getDecryptionKeys = (id, ...rest) => {
      asked.push(id!.toHex());
      return real(id, ...rest);
    };
    const damaged = Buffer.from(pkesk);
    damaged[60]! ^= 1; // in the wrapped key: the native code refuses it, openpgp is asked
    const foreign = Buffer.from(pkesk);
    Buffer.from(carol.priv.getSubkeys()[0]!.getKeyID().toHex(), 'hex').copy(foreign, 3);
    const wildcard = Buffer.from(damaged);
    wildcard.fill(0, 3, 11);
    const packet = Buffer.concat([foreign, damaged, wildcard, good.subarray(pkesk.length)]);
    expect(await codeOf(decodeBuffer(packet, { ...bob, priv: k }, [alice]))).toMatch(/^PACKET_DECRYPT/);
    expect(asked.sort()).toEqual([bob.priv.getSubkeys()[0]!.getKeyID().toHex(), '0000000000000000'].sort());
  });
});

describe('an input that fails with an errno is a local problem: the error passes through, never PACKET_*', () => {
  /** The packet's bytes in 64 KiB chunks, then `err` after `failAt` bytes. */
  function failingInput(packet: Buffer, failAt: number, err: Error) {
    let destroyed = false;
    return {
      destroy: () => (destroyed = true),
      get destroyed() {
        return destroyed;
      },
      async *[Symbol.asyncIterator]() {
        for (let i = 0; i < failAt; i += 65536) yield packet.subarray(i, Math.min(i + 65536, failAt));
        throw err;
      },
    };
  }

  function eio(): NodeJS.ErrnoException {
    return Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', errno: -5, syscall: 'read' });
  }

  async function decodeFailing(packet: Buffer, failAt: number, err: Error, peers: TestKey[]): Promise<unknown> {
    const input = failingInput(packet, failAt, err);
    const e = await decodePacket({ input, decryptionKey: bob.priv, verificationKeys: peers.map((p) => p.pub), payloadSink: new CollectSink() }).catch((x: unknown) => x);
    expect(input.destroyed).toBe(true);
    return e;
  }

  it('while opening (in the PKESK), while streaming the payload, while draining a refused packet', async () => {
    const big = randomBytes(3 * MiB);
    const byAlice = await encodeToBuffer(alice, bob, big);
    const byCarol = await encodeToBuffer(carol, bob, big); // unknown signer: refused part way, then drained
    for (const [packet, failAt, peers] of [
      [byAlice, 10, [alice]],
      [byAlice, 2 * MiB, [alice]],
      [byCarol, 2 * MiB, [alice]],
    ] as const) {
      const err = eio();
      expect(await decodeFailing(packet, failAt, err, [...peers])).toBe(err);
    }
  });

  it('controls: a truncated packet (no error, just an end) and an error without an errno are still PACKET_DECRYPT', async () => {
    const packet = await encodeToBuffer(alice, bob, randomBytes(3 * MiB));
    expect(await codeOf(decodeBuffer(packet.subarray(0, 2 * MiB), bob, [alice]))).toMatch(/^PACKET_DECRYPT/);
    const e = await decodeFailing(packet, 2 * MiB, new Error('no errno'), [alice]);
    expect(isFerryError(e, 'PACKET_DECRYPT')).toBe(true);
    const zlibLike = Object.assign(new Error('incorrect header check'), { code: 'Z_DATA_ERROR', errno: -3 });
    expect(isFerryError(await decodeFailing(packet, 2 * MiB, zlibLike, [alice]), 'PACKET_DECRYPT')).toBe(true);
  });
});
