/** Node keys: generation, files (armored/binary, passphrase), passphrase sources, keyring checks. */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema, type Config } from '../../src/config/schema.js';
import { FerryError } from '../../src/errors/index.js';
import { writeSecretKeyFile } from '../../src/keys/files.js';
import { generateNodeKey, type GeneratedNodeKey } from '../../src/keys/generate.js';
import { loadKeyring } from '../../src/keys/keyring.js';
import { fingerprintOf, readPassphraseFile, readPrivateKeyFile, readPublicKeyFile, resolvePassphrase } from '../../src/keys/load.js';

let dir: string;
let home: GeneratedNodeKey;
let office: GeneratedNodeKey;
let locked: GeneratedNodeKey;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ferrypost-keys-'));
  [home, office, locked] = await Promise.all([
    generateNodeKey({ name: 'home' }),
    generateNodeKey({ name: 'office', email: 'postmaster@office.example' }),
    generateNodeKey({ name: 'locked', passphrase: 'correct horse' }),
  ]);
  await writeFile(path.join(dir, 'home.sec'), home.privateArmored);
  await writeFile(path.join(dir, 'home.pub'), home.publicArmored);
  await writeFile(path.join(dir, 'office.pub'), office.publicArmored);
  await writeFile(path.join(dir, 'locked.sec'), locked.privateArmored);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configError(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(FerryError);
  expect((e as FerryError).code).toBe('CONFIG');
  return (e as FerryError).message;
}

describe('generateNodeKey', () => {
  it('makes a v4 Ed25519 + Curve25519 key without expiry and the documented user id', async () => {
    expect(home.fingerprint).toMatch(/^[0-9a-f]{40}$/);
    const key = await openpgp.readPrivateKey({ armoredKey: home.privateArmored });
    expect(key.keyPacket.version).toBe(4);
    expect(key.getAlgorithmInfo().algorithm).toBe('eddsaLegacy');
    const sub = key.getSubkeys();
    expect(sub).toHaveLength(1);
    expect(sub[0]!.getAlgorithmInfo().algorithm).toBe('ecdh');
    expect(await key.getExpirationTime()).toBe(Infinity);
    expect(key.getUserIDs()).toEqual(['ferrypost node home <home@ferrypost.invalid>']);
    expect((await openpgp.readKey({ armoredKey: office.publicArmored })).getUserIDs()).toEqual([
      'ferrypost node office <postmaster@office.example>',
    ]);
    expect(fingerprintOf(key)).toBe(home.fingerprint);
    expect(home.publicArmored).toContain('BEGIN PGP PUBLIC KEY BLOCK');
  });
});

describe('reading key files', () => {
  it('reads armored and binary keys; a public key is not a node key', async () => {
    const priv = await readPrivateKeyFile(path.join(dir, 'home.sec'));
    expect(fingerprintOf(priv)).toBe(home.fingerprint);
    const bin = path.join(dir, 'home.pub.gpg');
    await writeFile(bin, (await openpgp.readKey({ armoredKey: home.publicArmored })).write());
    expect(fingerprintOf(await readPublicKeyFile(bin))).toBe(home.fingerprint);
    expect(fingerprintOf(await readPublicKeyFile(path.join(dir, 'home.sec')))).toBe(home.fingerprint);
    expect((await readPublicKeyFile(path.join(dir, 'home.sec'))).isPrivate()).toBe(false);
    expect(await configError(readPrivateKeyFile(path.join(dir, 'home.pub')))).toMatch(/is a public key/);
  });

  it('names missing and garbage files', async () => {
    expect(await configError(readPrivateKeyFile(path.join(dir, 'nope.sec')))).toMatch(/cannot read node key .*nope\.sec.*ENOENT/);
    await writeFile(path.join(dir, 'junk'), 'hello');
    expect(await configError(readPublicKeyFile(path.join(dir, 'junk')))).toMatch(/junk is not an OpenPGP key/);
  });

  it('a passphrase-protected key needs the right passphrase', async () => {
    const file = path.join(dir, 'locked.sec');
    expect(await configError(readPrivateKeyFile(file))).toMatch(/set node\.passphrase_file or node\.passphrase_env/);
    expect(await configError(readPrivateKeyFile(file, 'wrong'))).toMatch(/wrong passphrase/);
    const key = await readPrivateKeyFile(file, 'correct horse');
    expect(key.isDecrypted()).toBe(true);
    expect(fingerprintOf(key)).toBe(locked.fingerprint);
  });

  it('resolvePassphrase reads a file or an environment variable', async () => {
    const f = path.join(dir, 'pass');
    await writeFile(f, 'correct horse\n');
    expect(resolvePassphrase({ passphrase_file: f })).toBe('correct horse');
    expect(resolvePassphrase({ passphrase_env: 'FP_PASS' }, { FP_PASS: 's3cret' })).toBe('s3cret');
    expect(resolvePassphrase({}, {})).toBeUndefined();
    expect(() => resolvePassphrase({ passphrase_env: 'FP_PASS' }, {})).toThrow(/FP_PASS .* is not set/);
    expect(() => resolvePassphrase({ passphrase_file: path.join(dir, 'nofile') })).toThrow(/passphrase_file/);
  });

  it('readPassphraseFile strips one trailing newline and nothing else (init and the daemon share it)', async () => {
    const f = path.join(dir, 'pass-ws');
    for (const [text, want] of [['secret \n', 'secret '], ['secret\r\n', 'secret'], ['secret\n\n', 'secret\n'], [' two words', ' two words']] as const) {
      await writeFile(f, text);
      expect(readPassphraseFile(f)).toBe(want);
      expect(resolvePassphrase({ passphrase_file: f })).toBe(want);
    }
    expect(() => readPassphraseFile(path.join(dir, 'nofile'), '--passphrase-file')).toThrow(/cannot read --passphrase-file .*nofile/);
  });

  it('writeSecretKeyFile creates mode 0600 and never overwrites', async () => {
    const f = path.join(dir, 'new.sec');
    await writeSecretKeyFile(f, home.privateArmored);
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    expect(fingerprintOf(await readPrivateKeyFile(f))).toBe(home.fingerprint);
    await expect(writeSecretKeyFile(f, office.publicArmored)).rejects.toMatchObject({ code: 'EEXIST' });
  });
});

describe('loadKeyring', () => {
  function config(over: { key?: string; env?: string; peers?: Array<{ name: string; fingerprint: string; key: string }> }): Config {
    return configSchema.parse({
      node: {
        name: 'home',
        tree: path.join(dir, 'tree'),
        state_dir: path.join(dir, 'state'),
        key: over.key ?? path.join(dir, 'home.sec'),
        ...(over.env ? { passphrase_env: over.env } : {}),
      },
      peers: over.peers ?? [],
    });
  }

  it('loads self and peers by fingerprint and name; self may be a peer', async () => {
    const ring = await loadKeyring(
      config({
        peers: [
          { name: 'office', fingerprint: office.fingerprint.toUpperCase(), key: path.join(dir, 'office.pub') },
          { name: 'myself', fingerprint: home.fingerprint, key: path.join(dir, 'home.pub') },
        ],
      }),
    );
    expect(ring.self.fingerprint).toBe(home.fingerprint);
    expect(ring.self.privateKey.isDecrypted()).toBe(true);
    expect(ring.self.publicKey.isPrivate()).toBe(false);
    expect([...ring.peers.keys()].sort()).toEqual([home.fingerprint, office.fingerprint].sort());
    expect(ring.peerByName('office')?.fingerprint).toBe(office.fingerprint);
    expect(ring.peers.get(home.fingerprint)?.name).toBe('myself');
    expect(ring.peerByName('nobody')).toBeUndefined();
  });

  it('loads an expired and a revoked peer key with their problem (one aged peer does not stop the node)', async () => {
    const day = 86_400_000;
    const old = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'old' }], keyExpirationTime: 3600, date: new Date(Date.now() - 10 * day), format: 'object' });
    const gone = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'gone' }], format: 'object' });
    const { publicKey: revoked } = await openpgp.revokeKey({ key: gone.privateKey, format: 'armored' });
    await writeFile(path.join(dir, 'old.pub'), old.publicKey.armor());
    await writeFile(path.join(dir, 'gone.pub'), revoked);
    const fpr = (k: openpgp.Key) => k.getFingerprint().toLowerCase();
    const ring = await loadKeyring(config({
      peers: [
        { name: 'old', fingerprint: fpr(old.publicKey), key: path.join(dir, 'old.pub') },
        { name: 'gone', fingerprint: fpr(gone.publicKey), key: path.join(dir, 'gone.pub') },
        { name: 'office', fingerprint: office.fingerprint, key: path.join(dir, 'office.pub') },
      ],
    }));
    expect(ring.peers.get(fpr(old.publicKey))?.problemAtLoad).toMatch(/^expired on \d{4}-/);
    expect(ring.peerProblem(fpr(old.publicKey))).toMatch(/^expired on /);
    expect(ring.peerProblem(fpr(gone.publicKey))).toBe('is revoked');
    expect(ring.peerProblem(office.fingerprint)).toBeUndefined();
    expect(ring.peers.get(office.fingerprint)?.problemAtLoad).toBeUndefined();
  });

  it('loads a peer key whose encryption subkey is revoked with its problem (was: CONFIG, the whole node stopped)', async () => {
    const g = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'sub' }], format: 'object' });
    g.privateKey.subkeys[0] = await g.privateKey.subkeys[0]!.revoke(g.privateKey.keyPacket as openpgp.SecretKeyPacket);
    await writeFile(path.join(dir, 'subrev.pub'), g.privateKey.toPublic().armor());
    const fpr = g.publicKey.getFingerprint().toLowerCase();
    const ring = await loadKeyring(config({ peers: [{ name: 'subrev', fingerprint: fpr, key: path.join(dir, 'subrev.pub') }] }));
    expect(ring.peerProblem(fpr)).toMatch(/Subkey is revoked/);
  });

  /** A GnuPG key (primary `primary`, one subkey `sub`) exported into dir/NAME.pub; its fingerprint. */
  async function gnupgPeerKey(name: string, primary: [string, string], sub: [string, string]): Promise<string> {
    const gnupg = await mkdtemp(path.join(tmpdir(), 'ferrypost-gnupg-'));
    try {
      const gpg = (...args: string[]) => execFileSync('gpg', ['--homedir', gnupg, '--batch', '--quiet', '--passphrase', '', '--pinentry-mode', 'loopback', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      gpg('--quick-gen-key', `${name} <${name}@ferrypost.invalid>`, ...primary, 'never');
      const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(gpg('--with-colons', '--list-keys', `${name}@ferrypost.invalid`))![1]!;
      gpg('--quick-add-key', fpr, ...sub, 'never');
      await writeFile(path.join(dir, `${name}.pub`), gpg('--armor', '--export', fpr));
      return fpr;
    } finally {
      execFileSync('gpgconf', ['--homedir', gnupg, '--kill', 'all']);
      await rm(gnupg, { recursive: true, force: true });
    }
  }

  it('refuses a peer key that cannot sign (its packets could never be verified), as peer add does', async () => {
    // GnuPG makes one: a certify-only primary with an encryption subkey.
    const fpr = await gnupgPeerKey('nosign', ['ed25519', 'cert'], ['cv25519', 'encr']);
    const msg = await configError(loadKeyring(config({ peers: [{ name: 'nosign', fingerprint: fpr, key: path.join(dir, 'nosign.pub') }] })));
    expect(msg).toMatch(/peers\[0\] "nosign": key file .* has no usable signing or encryption key/);
  });

  it('refuses a peer key openpgp refuses at any date (RSA 1024: too weak), not only one without key flags', async () => {
    const fpr = await gnupgPeerKey('weak', ['rsa1024', 'sign,cert'], ['rsa1024', 'encr']);
    const msg = await configError(loadKeyring(config({ peers: [{ name: 'weak', fingerprint: fpr, key: path.join(dir, 'weak.pub') }] })));
    expect(msg).toMatch(/peers\[0\] "weak": key file .* has no usable signing or encryption key: .*too weak/);
  });

  it('refuses a peer key file whose fingerprint differs from the config', async () => {
    const msg = await configError(
      loadKeyring(
        config({
          peers: [{ name: 'home2', fingerprint: office.fingerprint, key: path.join(dir, 'home.pub') }],
        }),
      ),
    );
    expect(msg).toBe(
      `peers[0] "home2": key file ${path.join(dir, 'home.pub')} has fingerprint ${home.fingerprint}, config says ${office.fingerprint}`,
    );
    const dup = await configError(
      loadKeyring(
        config({
          peers: [
            { name: 'office', fingerprint: office.fingerprint, key: path.join(dir, 'office.pub') },
            { name: 'again', fingerprint: office.fingerprint, key: path.join(dir, 'office.pub') },
          ],
        }),
      ),
    );
    expect(dup).toMatch(/peers\[1\] "again": fingerprint .* already used by peer "office"/);
  });

  it('unlocks a protected node key from the environment', async () => {
    const key = path.join(dir, 'locked.sec');
    expect(await configError(loadKeyring(config({ key })))).toMatch(/passphrase/);
    const ring = await loadKeyring(config({ key, env: 'FP_NODE_PASS' }), { FP_NODE_PASS: 'correct horse' });
    expect(ring.self.fingerprint).toBe(locked.fingerprint);
  });
});
