/**
 * Native PKESK (src/packet/native/): session keys we encrypt open with openpgp.js and GnuPG 2.2, theirs
 * open natively; anything wrong is refused natively and, through the openpgp fallback, by the decoder;
 * recipient keys of other kinds (RSA, NIST P-256, v6) go through openpgp as before.
 */
import { createCipheriv, createHash, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import { ecdhDecryptorsFor, ecdhRecipientFor, nativeScalar, x25519PublicKey, type EcdhDecryptor, type EcdhRecipient } from '../../src/packet/native/ecdh-keys.js';
import { decryptEcdhPkesk, encryptSessionKeyNative, openSessionKeyNative, parseEcdhPkesk } from '../../src/packet/native/pkesk.js';
import { ByteReader, packetBody, packetHeader, readPacketHead } from '../../src/packet/pgpstream.js';
import { seipdV1EncryptSync } from '../../src/packet/seipd.js';
import { gpgHome, type GpgHome } from '../helpers/gpg.js';
import { decodeBuffer, encodeToBuffer, makeKey, type TestKey } from './packet-helpers.js';

let alice: TestKey;
let bob: TestKey;
let bobRecipient: EcdhRecipient;
let bobDecryptor: EcdhDecryptor;
let aliceDecryptor: EcdhDecryptor;
let G: GpgHome;
const gpg = (args: string[], input?: Buffer) => G.gpg(args, input ? { input } : {});

beforeAll(async () => {
  [alice, bob] = await Promise.all([makeKey('alice'), makeKey('bob')]);
  bobRecipient = (await ecdhRecipientFor(bob.pub))!;
  bobDecryptor = (await ecdhDecryptorsFor(bob.priv))[0]!;
  aliceDecryptor = (await ecdhDecryptorsFor(alice.priv))[0]!;
  G = await gpgHome([bob.priv]);
});

afterAll(() => G.close());

/** A literal data packet ('b', no name, date 0) in a SEIPD v1 behind `pkesk`. */
function message(pkesk: Uint8Array, algorithm: string, key: Uint8Array, data: Uint8Array): Buffer {
  const lit = Buffer.concat([Buffer.from('b\0\0\0\0\0'), data]);
  const seipd = seipdV1EncryptSync(algorithm, key, Buffer.concat([packetHeader(11, lit.length), lit]));
  return Buffer.concat([pkesk, packetHeader(18, seipd.length), seipd]);
}

/** The bodies of the PKESK packets at the start of a binary message. */
async function pkeskBodies(msg: Uint8Array): Promise<Buffer[]> {
  const r = new ByteReader([msg][Symbol.iterator]() as unknown as AsyncIterator<unknown>);
  const out: Buffer[] = [];
  for (let h = await readPacketHead(r); h && h.tag === 1; h = await readPacketHead(r)) {
    const body: Buffer[] = [];
    for await (const c of packetBody(r, h)) body.push(Buffer.from(c));
    out.push(Buffer.concat(body));
  }
  return out;
}

/** A PKESK body wrapping `m` exactly as given (test-side KDF + key wrap, so m can be made wrong). */
function craftedBody(r: EcdhRecipient, m: Buffer): Buffer {
  const eph = generateKeyPairSync('x25519');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: r.publicKey });
  // u = X25519(d, 9), not x25519Raw(eph.publicKey): see pkesk.ts (export of a generated key can deadlock Node 20)
  const u = diffieHellman({ privateKey: eph.privateKey, publicKey: x25519PublicKey(Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 9 : 0))) });
  const kek = createHash(r.hash).update(Uint8Array.of(0, 0, 0, 1)).update(shared).update(r.param).digest().subarray(0, r.kek.keyLen);
  const c = createCipheriv(r.kek.wrap, kek, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'));
  const wrapped = Buffer.concat([c.update(m), c.final()]);
  return Buffer.concat([Uint8Array.of(3), r.keyId, Uint8Array.of(18, 1, 7, 0x40), u, Uint8Array.of(wrapped.length), wrapped]);
}

/** algo ‖ key ‖ checksum ‖ PKCS#5 padding, with optional damage. */
function encoded(algo: number, key: Buffer, opts: { checksumDelta?: number; pad?: number[] } = {}): Buffer {
  const sum = (key.reduce((s, b) => s + b, 0) + (opts.checksumDelta ?? 0)) & 0xffff;
  const m = Buffer.concat([Uint8Array.of(algo), key, Uint8Array.of(sum >> 8, sum & 0xff)]);
  const n = 8 - (m.length % 8);
  return Buffer.concat([m, Buffer.from(opts.pad ?? new Array<number>(n).fill(n))]);
}

const bodyOf = (packet: Buffer): Buffer => packet.subarray(2); // new-format header, length < 192

describe('keys', () => {
  it('builds a recipient and a decryptor for a cv25519 node key, once', async () => {
    expect(bobRecipient.keyId.toString('hex')).toBe(bob.pub.getSubkeys()[0]!.getKeyID().toHex());
    expect(bobRecipient.hash).toBe('sha256');
    expect(bobRecipient.kek.keyLen).toBeGreaterThanOrEqual(16);
    expect(await ecdhRecipientFor(bob.pub)).toBe(bobRecipient);
    expect(await ecdhDecryptorsFor(bob.priv)).toEqual([bobDecryptor]);
    expect(ecdhDecryptorsFor(bob.priv)).toBe(ecdhDecryptorsFor(bob.priv)); // one cached promise
  });

  it('a locked key has no native decryptor, and gets one once unlocked in place', async () => {
    const g = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'locked' }], passphrase: 'pw', format: 'armored' });
    const locked = await openpgp.readPrivateKey({ armoredKey: g.privateKey });
    expect(await ecdhDecryptorsFor(locked)).toEqual([]);
    for (const k of [locked, ...locked.subkeys]) await (k.keyPacket as openpgp.SecretKeyPacket).decrypt('pw');
    const [d] = await ecdhDecryptorsFor(locked);
    expect(d?.keyId.toString('hex')).toBe(locked.subkeys[0]!.getKeyID().toHex());
  });

  it('reads the OpenPGP secret as a big-endian MPI (short MPIs padded on the left)', () => {
    const d = Buffer.alloc(32);
    d[0] = 0x41;
    d[31] = 0x08;
    expect(nativeScalar(d)[0]).toBe(0x08);
    expect(nativeScalar(d)[31]).toBe(0x41);
    expect([...nativeScalar(Uint8Array.of(1, 2))]).toEqual([2, 1, ...new Array<number>(30).fill(0)]);
  });

  it('asks openpgp again after the TTL: a key that expired is refused', async () => {
    const g = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'short' }], keyExpirationTime: 3600, format: 'object' });
    const now = Date.now();
    const r = await ecdhRecipientFor(g.publicKey, now);
    expect(r).toBeDefined();
    expect(await ecdhRecipientFor(g.publicKey, now + 30_000)).toBe(r); // cached
    await expect(ecdhRecipientFor(g.publicKey, now + 2 * 3600_000)).rejects.toThrow(/expired|encryption key/i);
    await expect(ecdhRecipientFor(g.publicKey, now + 2 * 3600_000)).rejects.toThrow(); // failures are not cached as success
  });
});

describe('native encryption is read by others', () => {
  for (const algorithm of ['aes256', 'aes128'] as const) {
    it(`openpgp.decryptSessionKeys opens it (${algorithm})`, async () => {
      const key = randomBytes(algorithm === 'aes256' ? 32 : 16);
      const pkesk = encryptSessionKeyNative(algorithm, key, bobRecipient);
      expect(pkesk.length).toBe(algorithm === 'aes256' ? 2 + 94 : 2 + 78);
      const m = await openpgp.readMessage({ binaryMessage: message(pkesk, algorithm, key, Buffer.from('x')) });
      const [sk] = await openpgp.decryptSessionKeys({ message: m, decryptionKeys: bob.priv });
      expect(sk!.algorithm).toBe(algorithm);
      expect(Buffer.from(sk!.data).equals(key)).toBe(true);
    });
  }

  it('GnuPG 2.2 decrypts it', async () => {
    const key = randomBytes(32);
    const data = randomBytes(1000);
    const r = await gpg(['--show-session-key', '--decrypt'], message(encryptSessionKeyNative('aes256', key, bobRecipient), 'aes256', key, data));
    expect(r.stdoutBytes.equals(data)).toBe(true);
    expect(r.stderr).toContain(`session key: '9:${key.toString('hex').toUpperCase()}'`);
  });

  it('never exports the ephemeral key it generated (Node 20 deadlocks when a GC hits that export)', () => {
    // Node 20: export() of a key from generateKeyPairSync takes the key's mutex and allocates; a GC
    // then may destroy the key's generation job, whose destructor takes the same mutex: the main
    // thread hangs for good. A race, so tested by the call, not by waiting for the hang.
    const proto = Object.getPrototypeOf(generateKeyPairSync('x25519').publicKey) as { export: (...a: unknown[]) => unknown };
    const spy = vi.spyOn(proto, 'export');
    try {
      const key = randomBytes(32);
      const pkesk = encryptSessionKeyNative('aes256', key, bobRecipient);
      expect(spy).not.toHaveBeenCalled();
      // and the point it wrote is the public key of the secret it used: bob opens it
      const p = parseEcdhPkesk(pkesk.subarray(2))!;
      expect(decryptEcdhPkesk(p, bobDecryptor)?.data.equals(key)).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });

  it('rejects a session key of the wrong size or cipher', () => {
    expect(() => encryptSessionKeyNative('aes256', randomBytes(16), bobRecipient)).toThrow();
    expect(() => encryptSessionKeyNative('aes192', randomBytes(24), bobRecipient)).toThrow();
  });
});

describe('others are read natively', () => {
  it('openpgp.encryptSessionKey', async () => {
    for (let i = 0; i < 10; i++) {
      const key = randomBytes(32);
      const pkesk = (await openpgp.encryptSessionKey({ data: key, algorithm: 'aes256', encryptionKeys: bob.pub, format: 'binary' })) as Uint8Array;
      const sk = openSessionKeyNative(await pkeskBodies(pkesk), [bobDecryptor]);
      expect(sk).toEqual({ algorithm: 'aes256', data: key });
    }
  });

  it('GnuPG 2.2 (gpg --encrypt)', async () => {
    const enc = await gpg(['--trust-model', 'always', '-r', bob.fpr, '--encrypt'], Buffer.from('hello'));
    const shown = await gpg(['--show-session-key', '--decrypt'], enc.stdoutBytes);
    const [, algo, hex] = /session key: '(\d+):([0-9A-F]+)'/.exec(shown.stderr)!;
    const sk = openSessionKeyNative(await pkeskBodies(enc.stdoutBytes), [bobDecryptor]);
    expect(sk?.algorithm).toBe(algo === '9' ? 'aes256' : 'aes128');
    expect(sk?.data.toString('hex').toUpperCase()).toBe(hex);
  });
});

describe('refusals', () => {
  const key = randomBytes(32);

  it('a well-formed crafted packet opens (control for the cases below)', () => {
    const p = parseEcdhPkesk(craftedBody(bobRecipient, encoded(9, key)))!;
    expect(decryptEcdhPkesk(p, bobDecryptor)).toEqual({ algorithm: 'aes256', data: key });
  });

  it('the wrong key', () => {
    const p = parseEcdhPkesk(bodyOf(encryptSessionKeyNative('aes256', key, bobRecipient)))!;
    expect(decryptEcdhPkesk(p, aliceDecryptor)).toBeUndefined();
  });

  it('a flipped bit in the wrapped key or the ephemeral point', () => {
    const body = bodyOf(encryptSessionKeyNative('aes256', key, bobRecipient));
    for (const pos of [13, 30, 44, 46, 70, body.length - 1]) {
      const bad = Buffer.from(body);
      bad[pos]! ^= 0x01;
      expect(openSessionKeyNative([bad], [bobDecryptor]), `flip at ${pos}`).toBeUndefined();
    }
  });

  it('a low-order ephemeral point (all-zero shared secret) is refused, not thrown', () => {
    const body = bodyOf(encryptSessionKeyNative('aes256', key, bobRecipient));
    for (const u of [Buffer.alloc(32), Buffer.concat([Uint8Array.of(1), Buffer.alloc(31)])]) {
      const bad = Buffer.from(body);
      u.copy(bad, 13);
      expect(openSessionKeyNative([bad], [bobDecryptor])).toBeUndefined();
    }
  });

  it('a bad checksum, bad padding, a wrong length or a non-AES-128/256 cipher', () => {
    for (const [what, m] of [
      ['checksum', encoded(9, key, { checksumDelta: 1 })],
      ['padding', encoded(9, key, { pad: [5, 5, 5, 4, 5] })],
      ['padding 0', encoded(9, key, { pad: [0, 0, 0, 0, 0] })],
      ['short key', encoded(9, key.subarray(0, 16))],
      ['aes192 octet', encoded(8, key.subarray(0, 24))],
      ['unknown cipher', encoded(99, key)],
    ] as const) {
      const p = parseEcdhPkesk(craftedBody(bobRecipient, m))!;
      expect(p, what).toBeDefined();
      expect(decryptEcdhPkesk(p, bobDecryptor), what).toBeUndefined();
    }
  });

  it('another key id (the wildcard id is tried)', () => {
    const body = bodyOf(encryptSessionKeyNative('aes256', key, bobRecipient));
    const other = Buffer.from(body);
    other[8]! ^= 0x01;
    expect(openSessionKeyNative([other], [bobDecryptor])).toBeUndefined();
    const wildcard = Buffer.from(body);
    wildcard.fill(0, 1, 9);
    expect(openSessionKeyNative([wildcard], [bobDecryptor])).toEqual({ algorithm: 'aes256', data: key });
    // several PKESKs: the one for us is found
    expect(openSessionKeyNative([other, body], [aliceDecryptor, bobDecryptor])).toEqual({ algorithm: 'aes256', data: key });
  });

  it('truncated, padded, other versions and algorithms are not parsed', () => {
    const body = bodyOf(encryptSessionKeyNative('aes256', key, bobRecipient));
    for (const n of [0, 1, 12, 45, 46, body.length - 8, body.length - 1]) expect(parseEcdhPkesk(body.subarray(0, n)), `${n} bytes`).toBeUndefined();
    expect(parseEcdhPkesk(Buffer.concat([body, Uint8Array.of(0)]))).toBeUndefined();
    for (const [pos, v] of [
      [0, 6],
      [9, 25],
      [12, 0x41],
      [10, 0x02],
    ] as const) {
      const bad = Buffer.from(body);
      bad[pos] = v;
      expect(parseEcdhPkesk(bad), `byte ${pos} = ${v}`).toBeUndefined();
    }
  });

  it('the decoder rejects a damaged session key with PACKET_DECRYPT (native refusal, then openpgp fallback)', async () => {
    const good = await encodeToBuffer(alice, bob, Buffer.from('Subject: x\r\n\r\nhi\r\n'));
    expect((await decodeBuffer(good, bob, [alice])).signer).toBe(alice.fpr);
    for (const pos of [5, 20, 60, 2 + 93]) {
      const bad = Buffer.from(good);
      bad[pos]! ^= 0x01;
      const e = await decodeBuffer(bad, bob, [alice]).catch((x: unknown) => x);
      expect(e, `flip at ${pos}`).toBeInstanceOf(FerryError);
      expect((e as FerryError).code).toBe('PACKET_DECRYPT');
    }
    const e = await decodeBuffer(good, alice, [alice]).catch((x: unknown) => x);
    expect((e as FerryError).code).toBe('PACKET_DECRYPT'); // not for this key
  });
});

describe('which path the decoder takes', () => {
  it('native for our cv25519 key; openpgp only for what the native code refuses', async () => {
    const k = await openpgp.readPrivateKey({ armoredKey: bob.priv.armor() });
    expect(await ecdhDecryptorsFor(k)).toHaveLength(1); // cached now
    // openpgp.decryptSessionKeys asks the key for its decryption keys: make that visible
    k.getDecryptionKeys = () => Promise.reject(new Error('openpgp was asked'));
    const to = { ...bob, priv: k };
    const payload = Buffer.from('Subject: path\r\n\r\nx\r\n');
    const good = await encodeToBuffer(alice, bob, payload);
    expect((await decodeBuffer(good, to, [alice])).payload.equals(payload)).toBe(true);
    const bad = Buffer.from(good);
    bad[60]! ^= 0x01; // in the wrapped key
    const e = (await decodeBuffer(bad, to, [alice]).catch((x: unknown) => x)) as FerryError;
    expect(e.code).toBe('PACKET_DECRYPT');
    expect(e.message).toContain('openpgp was asked');
  });
});

describe('other recipient key kinds go through openpgp', () => {
  async function testKey(opts: Partial<openpgp.KeyOptions>): Promise<TestKey> {
    const g = await openpgp.generateKey({ ...opts, userIDs: [{ name: 'other' }], format: 'object' });
    // (a v6 fingerprint has 64 hex digits; the packet header holds 40, and decoding does not compare it)
    return { priv: g.privateKey, pub: g.publicKey, fpr: g.privateKey.getFingerprint().toLowerCase().slice(0, 40) };
  }

  for (const [what, opts] of [
    ['RSA 2048', { type: 'rsa', rsaBits: 2048 }],
    ['v4 ECDH NIST P-256', { type: 'ecc', curve: 'nistP256' }],
    ['v6 X25519', { type: 'curve25519', config: { v6Keys: true } }],
  ] as const) {
    it(what, async () => {
      const k = await testKey(opts as Partial<openpgp.KeyOptions>);
      expect(await ecdhRecipientFor(k.pub)).toBeUndefined();
      expect(await ecdhDecryptorsFor(k.priv)).toEqual([]);
      const payload = Buffer.from(`Subject: to ${what}\r\n\r\nbody\r\n`);
      const decoded = await decodeBuffer(await encodeToBuffer(alice, k, payload), k, [alice]);
      expect(decoded.payload.equals(payload)).toBe(true);
      expect(decoded.signer).toBe(alice.fpr);
    });
  }
});
