/**
 * `ferrypost peer remove` and `peer update` through the real CLI on nodes made by init: what each
 * writes (config, key files), what each refuses without writing, and what remove warns about.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, initNode, nodePair, tmpdir, type TestNode } from '../helpers/node.js';

let base: string;
let a: TestNode;
let b: TestNode;

afterEach(() => rmSync(base, { recursive: true, force: true }));
beforeEach(() => {
  base = tmpdir('fp-peerchg-');
  ({ a, b } = nodePair(base, { offlineDomain: 'cabin.test' }));
});

const peerNames = (n: TestNode) => cli(['peer', 'list'], { config: n.config }).stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]);
const peersDir = (n: TestNode) => path.join(n.dir, 'keys', 'peers');

/** b's key with new self-signatures (same key material, so the same fingerprint), made at `date`, expiring `seconds` after the key's creation. */
async function renewedKeyOfB(seconds: number, date?: Date): Promise<string> {
  // Self-signatures carry whole seconds: a renewal must be later than init's to be the one in force.
  if (!date) await new Promise((r) => setTimeout(r, 1100));
  date ??= new Date();
  const privateKey = await openpgp.readPrivateKey({ armoredKey: readFileSync(path.join(b.dir, 'keys', 'node.key'), 'utf8') });
  const { publicKey } = await openpgp.reformatKey({ privateKey, userIDs: [{ name: 'ferrypost node b', email: 'b@ferrypost.invalid' }], keyExpirationTime: seconds, date, format: 'armored' });
  const file = path.join(base, `b-renewed-${seconds}.asc`);
  writeFileSync(file, publicKey);
  return file;
}

describe('peer remove', () => {
  it('removes the entry, keeps the key file under another name, warns about the default route and packets in flight', () => {
    expect(cli(['sendmail', '-f', 'x@cabin.test', '--', 'friend@example.org'], { config: a.config, input: 'Subject: s\r\n\r\nx\r\n' }).status).toBe(0);
    const r = cli(['peer', 'remove', 'b'], { config: a.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^peer "b" \([0-9A-F ]+\) removed; its key is kept as .*\/keys\/peers\/b\.asc\.removed-\d{8}T\d{9}Z\nrestart the daemon/);
    expect(r.stderr).toContain('warning: "b" was the default route');
    expect(r.stderr).toContain(`warning: 1 outgoing packet(s) to it stay in the tree until carried; "ferrypost queue delete --to ${b.fingerprint}" removes them`);
    expect(peerNames(a)).toEqual([]);
    expect(readdirSync(peersDir(a))).toEqual([expect.stringMatching(/^b\.asc\.removed-/)]);
    expect(cli(['route', 'friend@example.org'], { config: a.config }).status).toBe(67);
    // the name is free again, and the packet can still be removed by fingerprint
    expect(cli(['peer', 'add', b.publicKey, '--name', 'b'], { config: a.config }).status).toBe(0);
    expect(cli(['queue', 'delete', '--to', b.fingerprint], { config: a.config }).stdout).toMatch(/-- 1 packet\(s\) deleted here/);
  });

  it('an unknown name is 64 and changes nothing; the node listed as its own peer keeps its key file', () => {
    const before = readFileSync(a.config, 'utf8');
    const r = cli(['peer', 'remove', 'nobody'], { config: a.config });
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/no peer named "nobody" in .*ferrypost\.yaml \(see "ferrypost peer list"\)/);
    expect(readFileSync(a.config, 'utf8')).toBe(before);

    const solo = initNode(path.join(base, 'solo'), 'solo'); // the embedded default: itself as its peer
    const s = cli(['peer', 'remove', 'solo'], { config: solo.config });
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).not.toContain('kept as');
    expect(existsSync(path.join(solo.dir, 'keys', 'node.asc'))).toBe(true);
    expect(cli(['check'], { config: solo.config }).status).toBe(0);
  });
});

describe('peer update', () => {
  it('installs a renewed key of the same node: the file changes, the config does not', async () => {
    const renewed = await renewedKeyOfB(400 * 86_400);
    const config = readFileSync(a.config, 'utf8');
    const keyFile = path.join(peersDir(a), 'b.asc');
    const old = readFileSync(keyFile, 'utf8');
    const r = cli(['peer', 'update', 'b', renewed], { config: a.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^peer "b" \([0-9A-F ]+\): key replaced in .*\/keys\/peers\/b\.asc, valid until 20\d\d-/);
    expect(readFileSync(keyFile, 'utf8')).not.toBe(old);
    expect(readFileSync(a.config, 'utf8')).toBe(config);
    expect(cli(['check'], { config: a.config }).status).toBe(0);
  });

  it('refuses, writing nothing: another node\'s key (64), an expired renewal (78), this node itself (64), an unknown peer (64)', async () => {
    const keyFile = path.join(peersDir(a), 'b.asc');
    const old = readFileSync(keyFile, 'utf8');
    const c = initNode(path.join(base, 'c'), 'c', ['--no-self-peer']);
    const other = cli(['peer', 'update', 'b', c.publicKey], { config: a.config });
    expect(other.status).toBe(64);
    expect(other.stderr).toMatch(new RegExp(`holds the key ${c.fingerprint}, but peer "b" is ${b.fingerprint}: a different key is a different node`));
    // b's key was made seconds ago by init: expiring 1 s after its creation, the renewal is expired by now.
    const stale = await renewedKeyOfB(1);
    const expired = cli(['peer', 'update', 'b', stale], { config: a.config });
    expect(expired.status).toBe(78);
    expect(expired.stderr).toMatch(/expired/);
    expect(readFileSync(keyFile, 'utf8')).toBe(old);

    const solo = initNode(path.join(base, 'solo'), 'solo');
    const own = readFileSync(path.join(solo.dir, 'keys', 'node.key'), 'utf8');
    const self = cli(['peer', 'update', 'solo', solo.publicKey], { config: solo.config });
    expect(self.status).toBe(64);
    expect(self.stderr).toMatch(/is this node itself/);
    expect(readFileSync(path.join(solo.dir, 'keys', 'node.key'), 'utf8')).toBe(own);
    expect(cli(['peer', 'update', 'nobody', c.publicKey], { config: a.config }).status).toBe(64);
  });

  it('merges into the installed key: an older copy takes back neither a renewal nor a revocation', async () => {
    const keyFile = path.join(peersDir(a), 'b.asc');
    expect(cli(['peer', 'update', 'b', await renewedKeyOfB(400 * 86_400)], { config: a.config }).status).toBe(0);
    // The copy `peer add` was given (no expiry, older self-signature): the renewal stays in force.
    const again = cli(['peer', 'update', 'b', b.publicKey], { config: a.config });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/valid until 20\d\d-/);

    const privateKey = await openpgp.readPrivateKey({ armoredKey: readFileSync(path.join(b.dir, 'keys', 'node.key'), 'utf8') });
    const { publicKey } = await openpgp.revokeKey({ key: privateKey, reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyCompromised }, format: 'armored' });
    writeFileSync(keyFile, publicKey);
    const r = cli(['peer', 'update', 'b', b.publicKey], { config: a.config });
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/installed key is revoked, and a revocation is final: "ferrypost peer remove b", then "peer add"/);
    expect(readFileSync(keyFile, 'utf8')).toBe(publicKey);
    expect(cli(['check'], { config: a.config }).stderr).toMatch(/its key is revoked; .*a revocation is final/);
  });

  it('a secret key file: only its public part is stored, with a warning', () => {
    const r = cli(['peer', 'update', 'b', path.join(b.dir, 'keys', 'node.key')], { config: a.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/holds a SECRET key: only its public part was stored/);
    expect(readFileSync(path.join(peersDir(a), 'b.asc'), 'utf8')).toMatch(/BEGIN PGP PUBLIC KEY BLOCK/);
  });
});
