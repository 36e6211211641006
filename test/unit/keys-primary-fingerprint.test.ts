/**
 * The primary key's fingerprint read without openpgp.js (keys/primary-fingerprint.ts), against
 * openpgp.js and plain gpg on the same keys: every key kind ferrypost or gpg writes, armored and
 * binary, secret (locked or not) and public; and undefined, never a wrong answer, for what it does
 * not handle (v6 keys, damaged files), which loadIdentities then gives to openpgp.js.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { FerryError } from '../../src/errors/index.js';
import { loadIdentities } from '../../src/keys/identities.js';
import { primaryFingerprint } from '../../src/keys/primary-fingerprint.js';

const run = promisify(execFile);
const enc = (s: string) => Buffer.from(s);

interface Made {
  label: string;
  key: openpgp.PrivateKey;
}

let made: Made[];

beforeAll(async () => {
  type KindOptions = Pick<Parameters<typeof openpgp.generateKey>[0], 'type' | 'curve' | 'rsaBits'>;
  const gen = async (label: string, opts: KindOptions): Promise<Made> => {
    const { privateKey } = await openpgp.generateKey({ userIDs: [{ name: label, email: `${label}@x.invalid` }], format: 'object', ...opts });
    return { label, key: privateKey };
  };
  made = await Promise.all([
    gen('ecc-legacy', { type: 'ecc' }), // what ferrypost init writes: EdDSA (22) + ECDH (18)
    gen('nist-p256', { type: 'ecc', curve: 'nistP256' }), // ECDSA (19) + ECDH with another KDF
    gen('ed25519', { type: 'curve25519' }), // v4 with the RFC 9580 algorithms Ed25519 (27) / X25519 (25)
    gen('rsa', { type: 'rsa', rsaBits: 2048 }),
    gen('ed448', { type: 'curve448' }), // Ed448 (28)
  ]);
}, 60_000);

describe('primaryFingerprint', () => {
  it('equals openpgp.js for every v4 key kind, armored and binary, secret and public', async () => {
    for (const { label, key } of made) {
      const want = key.getFingerprint();
      const locked = await openpgp.encryptKey({ privateKey: key, passphrase: 'pw' });
      const forms: [string, Uint8Array][] = [
        ['armored secret', enc(key.armor())],
        ['armored locked secret', enc(locked.armor())],
        ['armored public', enc(key.toPublic().armor())],
        ['binary secret', key.write()],
        ['binary public', key.toPublic().write()],
        ['armored with CRLF lines', enc(key.toPublic().armor().replace(/\n/g, '\r\n'))],
        ['armored with trailing blanks on its lines', enc(key.toPublic().armor().replace(/\n/g, '  \n'))],
        ['armored with armor headers', enc(key.toPublic().armor().replace(/(-----\n)/, '$1Comment: made by a test\nVersion: x 1.0\n'))],
        ['old format, four-octet length', oldFormat4(key.toPublic().write(), 6)],
        ['new format, five-octet length', newFormat5(key.toPublic().write(), 6)],
      ];
      for (const [form, bytes] of forms) expect(`${label} ${form}: ${primaryFingerprint(bytes)}`).toBe(`${label} ${form}: ${want}`);
    }
  });

  it('equals the fingerprint plain gpg reports for keys gpg made and exported (old-format packet headers)', async () => {
    const home = await mkdtemp(path.join(tmpdir(), 'ferrypost-fpr-gpg-'));
    await chmod(home, 0o700);
    const gpg = (args: string[]) => run('/usr/bin/gpg', ['--batch', '--no-tty', '--homedir', home, ...args], { encoding: 'buffer', maxBuffer: 1 << 24 });
    try {
      for (const [uid, algo] of [['ed <ed@x.invalid>', 'ed25519'], ['rsa <rsa@x.invalid>', 'rsa2048'], ['nist <p@x.invalid>', 'nistp256'], ['dsa <d@x.invalid>', 'dsa2048']] as const) {
        await gpg(['--passphrase', '', '--quick-gen-key', uid, algo, 'default', 'never']);
        const colons = (await gpg(['--with-colons', '--list-keys', uid])).stdout.toString();
        const want = /^fpr:(?:[^:]*:){8}([0-9A-F]{40}):/m.exec(colons)![1]!.toLowerCase();
        const pub = (await gpg(['--export', uid])).stdout;
        const pubArmored = (await gpg(['--armor', '--export', uid])).stdout;
        const sec = (await gpg(['--pinentry-mode', 'loopback', '--passphrase', '', '--export-secret-keys', uid])).stdout;
        expect(pub[0]! & 0x40).toBe(0); // gpg writes the old packet format: the case to cover
        for (const [form, bytes] of [['binary public', pub], ['armored public', pubArmored], ['binary secret', sec]] as const) {
          expect(`${algo} ${form}: ${primaryFingerprint(bytes)}`).toBe(`${algo} ${form}: ${want}`);
        }
      }
    } finally {
      await run('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: home } }).catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    }
  }, 60_000);

  it('gives undefined, never a wrong fingerprint, for v6 keys and damaged or foreign files', async () => {
    const { privateKey: v6 } = await openpgp.generateKey({ userIDs: [{ email: 'v6@x.invalid' }], type: 'curve25519', format: 'object', config: { v6Keys: true } });
    expect(primaryFingerprint(enc(v6.armor()))).toBeUndefined();
    const good = made[0]!.key.toPublic();
    const armored = good.armor();
    const bin = good.write();
    // A flipped byte in the armored body: the CRC24 catches it.
    const lines = armored.split('\n');
    // The last full line of data: a later packet (a signature), so only the CRC24 can tell.
    const width = Math.max(...lines.map((l) => l.length));
    const body = lines.findLastIndex((l) => l.length === width);
    lines[body] = lines[body]!.slice(0, 10) + (lines[body]![10] === 'A' ? 'B' : 'A') + lines[body]!.slice(11);
    expect(primaryFingerprint(enc(lines.join('\n')))).toBeUndefined();
    const cases: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['text', enc('hello\n')],
      ['armor without END', enc(armored.split('-----END')[0]!)],
      ['armor with junk in the body', enc(armored.replace(/\n=/, '\n!!!\n='))],
      ['a signature block', enc(armored.replace(/PUBLIC KEY BLOCK/g, 'SIGNATURE'))],
      ['truncated packet', bin.subarray(0, 20)],
      ['a packet that is not a key (literal data)', Uint8Array.from([0xcb, 0x03, 0x62, 0x00, 0x00])],
      ['a public key packet with a byte too many', withExtraByte(bin)],
      ['an unknown algorithm', withAlgorithm(bin, 99)],
      ['an indeterminate old-format length', Uint8Array.from([0x9b, 4, 0, 0, 0, 0, 22])],
    ];
    expect(lines.join('\n')).not.toBe(armored);
    const other = made[1]!.key.toPublic();
    const cases2: [string, Uint8Array][] = [
      // Several keys: openpgp.js takes the first it can parse, so the choice is left to it.
      ['two keys in one file', Buffer.concat([bin, other.write()])],
      // A curve openpgp.js does not know: it skips that key and reads the next one.
      ['an unknown ECDSA curve, then another key', Buffer.concat([withOidByteFlipped(made[1]!.key.toPublic().write()), bin])],
      ['an unknown ECDSA curve alone', withOidByteFlipped(made[1]!.key.toPublic().write())],
      ['a subkey packet first (tag 14)', reTagged(bin, 14)],
      ['a whole key in an indeterminate old-format length', Buffer.concat([Buffer.from([0x80 | (6 << 2) | 3]), splitFirst(bin).body])],
      ['a signature armor block before the key block', enc(armored.replace(/PUBLIC KEY BLOCK/g, 'SIGNATURE') + armored)],
      ['armor headers without the blank line', enc(armored.replace(/-----\n\n/, '-----\nComment: x\n'))],
      ['data after the checksum line', enc(armored.replace(/\n(=[A-Za-z0-9+/]{4})\n/, '\n$1\nAAAA\n'))],
    ];
    for (const [what, bytes] of cases2) expect(`${what}: ${primaryFingerprint(bytes)}`).toBe(`${what}: undefined`);
    for (const [what, bytes] of cases) expect(`${what}: ${primaryFingerprint(bytes)}`).toBe(`${what}: undefined`);
  });
});

describe('primaryFingerprint and openpgp.js on keys they read differently', () => {
  it('MPIs not minimally encoded (openpgp.js re-encodes them before hashing): undefined, not another fingerprint', async () => {
    const rsa = made.find((m) => m.label === 'rsa')!.key.toPublic().write();
    const { head, body, rest } = splitFirst(rsa);
    // RSA: n (2048 bits) then e (17 bits, 0x010001); mark e as 24 bits: the same number, not minimal.
    const nLen = (((body[6]! << 8) | body[7]!) + 7) >> 3;
    const eAt = 8 + nLen;
    expect((body[eAt]! << 8) | body[eAt + 1]!).toBe(17);
    const nb = Buffer.from(body);
    nb[eAt + 1] = 24;
    const odd = Buffer.concat([head, nb, rest]);
    const theirs = (await openpgp.readKey({ binaryKey: odd })).getFingerprint();
    expect(theirs).toBe(made.find((m) => m.label === 'rsa')!.key.getFingerprint()); // openpgp.js: unchanged
    expect(primaryFingerprint(odd)).toBeUndefined();
    // EdDSA (legacy): the point's 263 bits marked as 264.
    const ed = splitFirst(made[0]!.key.toPublic().write());
    const eb = Buffer.from(ed.body);
    const qAt = 6 + 1 + eb[6]!;
    expect((eb[qAt]! << 8) | eb[qAt + 1]!).toBe(263);
    eb[qAt + 1] = 8; // 264
    expect(primaryFingerprint(Buffer.concat([ed.head, eb, ed.rest]))).toBeUndefined();
  });

  it('RSA primaries marked encrypt-only or sign-only (algorithms 2, 3): the same fingerprint as openpgp.js', async () => {
    const rsa = made.find((m) => m.label === 'rsa')!.key.toPublic().write();
    for (const algo of [2, 3]) {
      const bytes = withAlgorithm(rsa, algo);
      const theirs = (await openpgp.readKey({ binaryKey: bytes }).catch(() => undefined))?.getFingerprint();
      expect(theirs).toMatch(/^[0-9a-f]{40}$/);
      expect(primaryFingerprint(bytes)).toBe(theirs);
    }
  });
});

describe('loadIdentities', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ferrypost-ids-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const cfgFor = (key: string) =>
    configSchema.parse({ node: { name: 'n', key, tree: dir, state_dir: dir }, peers: [{ name: 'home', fingerprint: 'AB'.repeat(20), key: 'x.asc' }], delivery: { method: 'maildir', path: dir } });

  it('reads the node id natively, and through openpgp.js for a key it does not handle (v6)', async () => {
    const { privateKey: v6 } = await openpgp.generateKey({ userIDs: [{ email: 'v6@x.invalid' }], type: 'curve25519', format: 'object', config: { v6Keys: true } });
    for (const key of [made[0]!.key, v6]) {
      const file = path.join(dir, `${key.getFingerprint()}.key`);
      await writeFile(file, key.armor());
      const ids = await loadIdentities(cfgFor(file));
      expect(ids.self.fingerprint).toBe(key.getFingerprint());
      expect(ids.peers.get('ab'.repeat(20))?.name).toBe('home');
    }
  });

  it('fails with CONFIG naming the file for a missing or unreadable key', async () => {
    const missing = path.join(dir, 'nope.key');
    await expect(loadIdentities(cfgFor(missing))).rejects.toThrow(FerryError);
    await expect(loadIdentities(cfgFor(missing))).rejects.toThrow(`cannot read node key ${missing}`);
    const junk = path.join(dir, 'junk.key');
    await writeFile(junk, 'not a key\n');
    await expect(loadIdentities(cfgFor(junk))).rejects.toMatchObject({ code: 'CONFIG', message: expect.stringContaining(`node key ${junk} is not an OpenPGP key`) });
  });
});

/** The first packet re-framed (new format, 2-octet length) with one byte appended to its body. */
function withExtraByte(bin: Uint8Array): Uint8Array {
  const { body, rest } = splitFirst(bin);
  const nb = Buffer.concat([body, Buffer.from([0])]);
  return Buffer.concat([newHeader(6, nb.length), nb, rest]);
}

function newHeader(tag: number, n: number): Buffer {
  return n < 192 ? Buffer.from([0xc0 | tag, n]) : Buffer.from([0xc0 | tag, 192 + ((n - 192) >> 8), (n - 192) & 0xff]);
}

/** The first packet re-framed in the old format with a four-octet length (valid, rarely written). */
function oldFormat4(bin: Uint8Array, tag: number): Uint8Array {
  const { body, rest } = splitFirst(bin);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([Buffer.from([0x80 | (tag << 2) | 2]), len, body, rest]);
}

function newFormat5(bin: Uint8Array, tag: number): Uint8Array {
  const { body, rest } = splitFirst(bin);
  const head = Buffer.from([0xc0 | tag, 0xff, 0, 0, 0, 0]);
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body, rest]);
}

/** The first packet with its curve OID's last octet changed (an ECDSA or EdDSA key). */
function withOidByteFlipped(bin: Uint8Array): Uint8Array {
  const { head, body, rest } = splitFirst(bin);
  const nb = Buffer.from(body);
  nb[6 + nb[6]!]! ^= 1;
  return Buffer.concat([head, nb, rest]);
}

function reTagged(bin: Uint8Array, tag: number): Uint8Array {
  const { body, rest } = splitFirst(bin);
  return Buffer.concat([newHeader(tag, body.length), body, rest]);
}

function withAlgorithm(bin: Uint8Array, algo: number): Uint8Array {
  const { head, body, rest } = splitFirst(bin);
  const nb = Buffer.from(body);
  nb[5] = algo;
  return Buffer.concat([head, nb, rest]);
}

/** openpgp.js writes new-format headers with a one- or two-octet length for these small packets. */
function splitFirst(bin: Uint8Array): { head: Buffer; body: Buffer; rest: Buffer } {
  const b = Buffer.from(bin);
  const l0 = b[1]!;
  const [len, p] = l0 < 192 ? [l0, 2] : [((l0 - 192) << 8) + b[2]! + 192, 3];
  return { head: b.subarray(0, p), body: b.subarray(p, p + len), rest: b.subarray(p + len) };
}
