/**
 * What the native path (PKESK + SEIPD v1 + AES) does not decode used to go to openpgp.decrypt, which
 * decrypts, inflates and parses the inner packets itself, without the native path's bounds: anyone with
 * a node's PUBLIC key could make it hold a 256 MiB "signature" from a 261 KB packet. Now no packet
 * reaches openpgp.decrypt: SEIPD v2 / AEAD and other ciphers are refused before any decryption
 * (ferrypost keys advertise SEIPD v1 and AES only: this node decodes nothing else), a password (SKESK) next to our PKESK is ignored
 * (the native path decodes, with its bounds), and what is not encrypted to us is PACKET_DECRYPT.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import { decodePacket } from '../../src/packet/codec.js';
import { MAX_SIGNATURE_PACKET_BYTES } from '../../src/packet/native/signature-verify.js';
import {
  codeOf,
  CollectSink,
  compressedPacket,
  decodeBuffer,
  encodeToBuffer,
  encryptedPacket,
  hugeSignatureMessage,
  makeHeader,
  makeKey,
  measured,
  pkt,
  plaintextOf,
  sha256hex,
  type TestKey,
} from './packet-helpers.js';

// Counts openpgp.decrypt calls (the decoder must make none); everything else is openpgp.js itself.
const calls = vi.hoisted(() => ({ decrypt: 0 }));
vi.mock('openpgp', async (importOriginal) => {
  const real = await importOriginal<typeof import('openpgp')>();
  return {
    ...real,
    decrypt: (...args: Parameters<typeof real.decrypt>) => {
      calls.decrypt++;
      return real.decrypt(...args);
    },
  };
});

const MiB = 1 << 20;
const V2_REFUSED = /^PACKET_MALFORMED: SEIPD v2 \(AEAD\) packets are not accepted: this node decodes SEIPD v1 only/;
let alice: TestKey;
let bob: TestKey;

beforeAll(async () => {
  [alice, bob] = await Promise.all([makeKey('alice'), makeKey('bob')]);
});
// After every test, whichever ran: the decoder called openpgp.decrypt for none of its packets.
afterEach(() => {
  expect(calls.decrypt).toBe(0);
});

/** As the receiver decodes: inputBytes is the file's size (openpgp.js's decompression limit was 1100 times it). */
function decodeAsReceiver(packet: Buffer): Promise<unknown> {
  return decodePacket({ input: Readable.from([packet]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: new CollectSink(), inputBytes: packet.length });
}

/** A correctly framed plaintext from alice to bob, signed by alice (one-pass, binary), as openpgp.sign writes it. */
async function signedPlaintext(payload: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, bob, payload), payload), format: 'binary' });
  return (await openpgp.sign({ message, signingKeys: alice.priv, format: 'binary' })) as Uint8Array;
}

/** 256 MiB of zeros as a "signature", deflated 1030:1 into ~261 KB: what openpgp.js would read whole into memory. */
const HUGE = 256 * MiB;

/** A packet plaintext from alice to `to`, signed and encrypted by openpgp.encrypt (which picks SEIPD v2 from the key or the session key). */
async function openpgpEncrypted(payload: Buffer, to: TestKey, sessionKey?: { data: Uint8Array; algorithm: 'aes256'; aeadAlgorithm: 'ocb' | 'gcm' | 'eax' }): Promise<Buffer> {
  const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, to, payload), payload), format: 'binary' });
  return Buffer.from((await openpgp.encrypt({ message, encryptionKeys: to.pub, signingKeys: alice.priv, format: 'binary', ...(sessionKey ? { sessionKey } : {}) })) as Uint8Array);
}

describe('SEIPD v2 (AEAD) is refused before anything is decrypted', () => {
  it('this node decodes SEIPD v1 only, and AES only (so no conforming sender writes anything else to a node)', async () => {
    const sig = (await bob.pub.getPrimaryUser()).selfCertification;
    expect(sig.features?.[0]).toBe(0x01); // modification detection (SEIPD v1) only, no seipdv2 (0x08)
    expect(sig.preferredSymmetricAlgorithms).toEqual([openpgp.enums.symmetric.aes256, openpgp.enums.symmetric.aes128]);
  });

  it('a well-formed, peer-signed SEIPD v2 packet (openpgp.encrypt; OCB, GCM, EAX): PACKET_MALFORMED, signature not checked', async () => {
    const payload = Buffer.from('Subject: v2\r\n\r\nhello\r\n');
    for (const aeadAlgorithm of ['ocb', 'gcm', 'eax'] as const) {
      const packet = await openpgpEncrypted(payload, bob, { data: randomBytes(32), algorithm: 'aes256', aeadAlgorithm });
      expect(packet.subarray(0, 4).toString('hex')).toMatch(/^c1..06/); // a v6 PKESK: openpgp.js wrote SEIPD v2
      const sink = new CollectSink();
      const err = await decodePacket({ input: Readable.from([packet]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: sink }).then(
        () => 'decoded',
        (e: unknown) => e,
      );
      expect(isFerryError(err) ? `${err.code}: ${err.message}` : String(err), aeadAlgorithm).toMatch(V2_REFUSED);
      expect(isFerryError(err) && err.detail).toMatchObject({ signatureChecked: false });
      expect(sink.chunks.length).toBe(0);
    }
  });

  it('also when the encryption key advertises SEIPD v2 (openpgp.js then writes it unasked)', async () => {
    const g = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'v2' }], format: 'object', config: { aeadProtect: true } });
    const v2Key: TestKey = { priv: g.privateKey, pub: g.publicKey, fpr: g.privateKey.getFingerprint() };
    const payload = Buffer.from('x');
    const packet = await openpgpEncrypted(payload, v2Key);
    expect(await codeOf(decodeBuffer(packet, v2Key, [alice]))).toMatch(V2_REFUSED);
  });

  it(`a hostile SEIPD v2 packet (a ${HUGE / MiB} MiB "signature" of zeros) is refused, in bounded memory (its time is logged)`, async () => {
    const packet = await encryptedPacket(compressedPacket(hugeSignatureMessage(alice, bob, 0, 1000, HUGE)), bob, { version: 2 });
    expect(packet.length).toBeLessThan(300_000);
    const { result, peakMiB, ms } = await measured(() => codeOf(decodeAsReceiver(packet)));
    console.log(`hostile SEIPD v2 (${packet.length} bytes, ${HUGE / MiB} MiB signature): ${ms.toFixed(0)} ms, RSS peak +${peakMiB.toFixed(0)} MiB: ${result}`);
    expect(result).toMatch(V2_REFUSED);
    expect(peakMiB).toBeLessThan(32);
  }, 60_000);

  it('an AEAD Encrypted Data packet (tag 20: LibrePGP OCB, what GnuPG 2.3+ writes to keys that advertise it): PACKET_MALFORMED', async () => {
    const esk = (await openpgp.encryptSessionKey({ data: randomBytes(32), algorithm: 'aes256', encryptionKeys: bob.pub, format: 'binary' })) as Uint8Array;
    const aead = pkt(20, Buffer.concat([Buffer.from([1, openpgp.enums.symmetric.aes256, openpgp.enums.aead.ocb, 6]), randomBytes(15 + 1000)]));
    expect(await codeOf(decodeAsReceiver(Buffer.concat([esk, aead])))).toMatch(/^PACKET_MALFORMED: AEAD Encrypted Data packets .*are not accepted: this node decodes SEIPD v1 only/);
  });
});

describe('a packet for another node is PACKET_DECRYPT whatever its container', () => {
  it('SEIPD v2 and tag 20 encrypted to carol, decoded by bob: "no session key for this node", not the container verdict', async () => {
    const carol = await makeKey('carol');
    const inner = compressedPacket(Buffer.from(await signedPlaintext(Buffer.from('x'))));
    const v2 = await encryptedPacket(inner, carol, { version: 2 });
    expect(await codeOf(decodeAsReceiver(v2))).toMatch(/^PACKET_DECRYPT: .*no session key for this node/);
    const esk = (await openpgp.encryptSessionKey({ data: randomBytes(32), algorithm: 'aes256', encryptionKeys: carol.pub, format: 'binary' })) as Uint8Array;
    const aead = pkt(20, Buffer.concat([Buffer.from([1, openpgp.enums.symmetric.aes256, openpgp.enums.aead.ocb, 6]), randomBytes(15 + 1000)]));
    expect(await codeOf(decodeAsReceiver(Buffer.concat([esk, aead])))).toMatch(/^PACKET_DECRYPT: .*no session key for this node/);
    // Addressed to bob, the same shapes get the container verdict.
    expect(await codeOf(decodeAsReceiver(await encryptedPacket(inner, bob, { version: 2 })))).toMatch(V2_REFUSED);
  });
});

describe('SEIPD v1 with a cipher other than AES is refused once the session key is known', () => {
  // openpgp.js's session key policy (aes256, aes128, 3DES, CAST5 and the key's preferences) already
  // refused Twofish, Blowfish and AES-192; CAST5 and 3DES went on to openpgp.decrypt.
  for (const algorithm of ['cast5', 'tripledes'] as const) {
    it(`${algorithm}: well-formed and hostile, PACKET_MALFORMED naming it, in bounded memory`, async () => {
      const payload = Buffer.from('Subject: cipher\r\n\r\nx\r\n');
      const good = await encryptedPacket(await signedPlaintext(payload), bob, { algorithm });
      expect(await codeOf(decodeBuffer(good, bob, [alice]))).toMatch(new RegExp(`^PACKET_MALFORMED: packets encrypted with ${algorithm} are not accepted: this node decodes AES only`));
      const hostile = await encryptedPacket(compressedPacket(hugeSignatureMessage(alice, bob, 0, 1000, HUGE)), bob, { algorithm });
      const { result, peakMiB, ms } = await measured(() => codeOf(decodeAsReceiver(hostile)));
      console.log(`hostile SEIPD v1 ${algorithm} (${hostile.length} bytes, ${HUGE / MiB} MiB signature): ${ms.toFixed(0)} ms, RSS peak +${peakMiB.toFixed(0)} MiB: ${result}`);
      expect(result).toMatch(new RegExp(`^PACKET_MALFORMED: packets encrypted with ${algorithm} are not accepted`));
      expect(peakMiB).toBeLessThan(32);
    }, 60_000);
  }

  it('twofish: refused by the session key policy, before any decryption (as before)', async () => {
    const hostile = await encryptedPacket(compressedPacket(hugeSignatureMessage(alice, bob, 0, 1000, HUGE)), bob, { algorithm: 'twofish' });
    const { result, peakMiB } = await measured(() => codeOf(decodeAsReceiver(hostile)));
    expect(result).toMatch(/^PACKET_DECRYPT: .*non-preferred symmetric algorithm/);
    expect(peakMiB).toBeLessThan(32);
  });
});

describe('a password (SKESK) next to our PKESK: the native path decodes it, with its bounds', () => {
  it('well-formed (as gpg --symmetric --encrypt writes): decodes', async () => {
    const payload = Buffer.from('Subject: skesk\r\n\r\nx\r\n');
    const packet = await encryptedPacket(await signedPlaintext(payload), bob, { passwords: ['hunter2'] });
    expect(packet[packet[1]! + 2]).toBe(0xc3); // PKESK, then an SKESK
    const r = await decodeBuffer(packet, bob, [alice]);
    expect(r.signer).toBe(alice.fpr);
    expect(r.payload.equals(payload)).toBe(true);
  });

  it(`hostile (a ${HUGE / MiB} MiB "signature"): the 64 KiB signature bound, in bounded memory`, async () => {
    const packet = await encryptedPacket(compressedPacket(hugeSignatureMessage(alice, bob, 0, 1000, HUGE)), bob, { passwords: ['hunter2'] });
    const { result, peakMiB, ms } = await measured(() => codeOf(decodeAsReceiver(packet)));
    console.log(`hostile PKESK+SKESK+SEIPD v1 (${packet.length} bytes): ${ms.toFixed(0)} ms, RSS peak +${peakMiB.toFixed(0)} MiB: ${result}`);
    expect(result).toMatch(new RegExp(`^PACKET_DECRYPT: .*signature packet of ${HUGE} bytes .*at most ${MAX_SIGNATURE_PACKET_BYTES}`));
    expect(peakMiB).toBeLessThan(32);
  }, 60_000);
});

describe('not encrypted to us: PACKET_DECRYPT, without openpgp.js', () => {
  it('password only (SKESK, no PKESK); no session key packet; unencrypted (also hostile); no MDC (tag 9); only session keys', async () => {
    const inner = compressedPacket(hugeSignatureMessage(alice, bob, 0, 1000, HUGE));
    const v1 = await encryptedPacket(inner, bob);
    const seipd = v1.subarray(v1[1]! + 2); // our PKESK is a one-octet-length packet
    const cases: Array<[string, Buffer, RegExp]> = [
      ['password only', await encryptedPacket(inner, bob, { passwords: ['pw'], noPkesk: true }), /no public-key session key packet/],
      ['no session key packet', seipd, /no public-key session key packet/],
      ['unencrypted, hostile', inner, /not an encrypted message/],
      ['unencrypted, signed', Buffer.from(await signedPlaintext(Buffer.from('x'))), /not an encrypted message/],
      ['no MDC (tag 9)', Buffer.concat([v1.subarray(0, v1[1]! + 2), pkt(9, randomBytes(1000))]), /without integrity protection/],
      ['only session keys', v1.subarray(0, v1[1]! + 2), /no encrypted data/],
      ['empty', Buffer.alloc(0), /no encrypted data/],
    ];
    for (const [what, packet, message] of cases) {
      const { result, peakMiB } = await measured(() => codeOf(decodeAsReceiver(packet)));
      expect(result, what).toMatch(/^PACKET_DECRYPT: /);
      expect(result, what).toMatch(message);
      expect(peakMiB, what).toBeLessThan(32);
    }
  }, 60_000);

});

describe('controls: what ferrypost keys advertise still decodes natively', () => {
  it('PKESK + SEIPD v1 + AES-128/256 (what ferrypost keys advertise), built by openpgp.js packet by packet', async () => {
    const payload = randomBytes(2 * MiB);
    for (const algorithm of ['aes128', 'aes256'] as const) {
      const r = await decodeBuffer(await encryptedPacket(await signedPlaintext(payload), bob, { algorithm }), bob, [alice]);
      expect(sha256hex(r.payload)).toBe(sha256hex(payload));
    }
  });
});

describe('the encoder writes SEIPD v1 to every key, so ferrypost can read what ferrypost writes', () => {
  // openpgp.encrypt picks SEIPD v2 from a key's features; the decoder refuses v2. A node whose key was
  // made elsewhere (aeadProtect, a v6 key) must still receive from its ferrypost peers.
  for (const [what, opts] of [
    ['v4 key advertising SEIPD v2', { type: 'ecc', config: { aeadProtect: true } }],
    ['v6 key advertising SEIPD v2', { type: 'curve25519', config: { v6Keys: true, aeadProtect: true } }],
  ] as const) {
    it(what, async () => {
      const g = await openpgp.generateKey({ ...(opts as Partial<openpgp.KeyOptions>), userIDs: [{ name: 'other' }], format: 'object' });
      // (a v6 fingerprint has 64 hex digits; the header holds 40 and decoding does not compare it)
      const key: TestKey = { priv: g.privateKey, pub: g.publicKey, fpr: g.privateKey.getFingerprint().toLowerCase().slice(0, 40) };
      for (const size of [1000, 2 * MiB]) {
        const payload = randomBytes(size);
        const packet = await encodeToBuffer(alice, key, payload);
        const tags = (await openpgp.readMessage({ binaryMessage: packet })).packets.map((p) => `${(p.constructor as unknown as { tag: number }).tag}v${(p as unknown as { version: number }).version}`);
        expect(tags, `${what}, ${size} bytes`).toEqual(['1v3', '18v1']);
        const r = await decodeBuffer(packet, key, [alice]);
        expect(sha256hex(r.payload)).toBe(sha256hex(payload));
      }
    }, 60_000);
  }
});
