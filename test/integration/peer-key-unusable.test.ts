/**
 * A peer whose key expired or was revoked does not stop the node (it made `run` fail with CONFIG):
 * `check` and `run` warn, mail for that peer is deferred 450 4.7.5 (SMTP) / 75 (sendmail) while mail
 * for the other peers flows, a packet it signed while its key was valid is delivered, and a packet of
 * the revoked key is quarantined. Real daemon (dist/cli/main.js), real tree and Maildir.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { enqueueFor, type NodeKeys } from '../helpers/inproc.js';
import { addPeer, cli, initNode, startNode, tmpdir, type RunningNode, type TestNode } from '../helpers/node.js';
import { freePort } from '../helpers/ports.js';
import { rawSmtp } from '../helpers/smtp-raw.js';
import { waitUntil } from '../helpers/mail.js';

const MSG = (from: string) => Buffer.from(`From: ${from}\r\nTo: u@home.test\r\nSubject: before\r\n\r\nsigned while the key was valid\r\n`);
const EXPIRES_S = 8;

let base: string;
let tree: string;
let home: TestNode;
let far: TestNode;
let port: number;
let running: RunningNode | undefined;
let oldKeyExpires: number;

async function nodeKeysFromOpenpgp(name: string, expirySeconds: number): Promise<{ keys: NodeKeys; file: string; revoke(installed: string): Promise<void> }> {
  const g = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name, email: `${name}@ferrypost.invalid` }], keyExpirationTime: expirySeconds, format: 'object' });
  const file = path.join(base, `${name}.asc`);
  writeFileSync(file, g.publicKey.armor());
  const keys: NodeKeys = { name, fingerprint: g.privateKey.getFingerprint().toLowerCase(), privateKey: g.privateKey, publicKey: g.publicKey };
  return {
    keys,
    file,
    async revoke(installed) {
      const r = await openpgp.revokeKey({ key: g.privateKey, format: 'armored' });
      writeFileSync(installed, r.publicKey); // what an admin does with a peer's revocation: the same fingerprint, now revoked
    },
  };
}

beforeAll(async () => {
  base = tmpdir('fp-peer-key-');
  tree = path.join(base, 'tree');
  home = initNode(path.join(base, 'home'), 'home', ['--tree', tree, '--no-self-peer']);
  far = initNode(path.join(base, 'far'), 'far', ['--tree', tree, '--no-self-peer']);
  addPeer(home, far, ['--default']);
  const homeKeys: NodeKeys = {
    name: 'home',
    fingerprint: home.fingerprint,
    publicKey: await openpgp.readKey({ armoredKey: readFileSync(home.publicKey, 'utf8') }),
  } as NodeKeys; // only encrypted to: no private key needed

  const old = await nodeKeysFromOpenpgp('old', EXPIRES_S);
  oldKeyExpires = ((await old.keys.publicKey.getExpirationTime()) as Date).getTime();
  const gone = await nodeKeysFromOpenpgp('gone', 0);
  // Both keys are usable now: `peer add` accepts them, and each peer writes a packet for home.
  for (const [p, domain] of [[old, 'old.example'], [gone, 'gone.example']] as const) {
    const r = cli(['peer', 'add', p.file, '--name', p.keys.name, '--mail', domain], { config: home.config });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    await enqueueFor(p.keys, homeKeys, tree, path.join(base, `${p.keys.name}-state`)).submit({ from: `a@${domain}`, to: ['u@home.test'] }, MSG(`a@${domain}`));
  }
  expect(Date.now()).toBeLessThan(oldKeyExpires); // else the packet above was signed by an expired key
  await gone.revoke(path.join(home.dir, 'keys', 'peers', 'gone.asc')); // where `peer add` put it
  port = await freePort();
  home.edit((d) => {
    d.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]);
    d.setIn(['receive', 'rescan_interval'], '1s');
  });
  await new Promise((r) => setTimeout(r, Math.max(0, oldKeyExpires - Date.now() + 200)));
}, 60_000);

afterAll(async () => {
  await running?.stop();
});

it('check warns about both peers and exits 0 (the node is usable)', () => {
  const r = cli(['check'], { config: home.config });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/config ok: node home .*3 peer\(s\)/);
  expect(r.stderr).toMatch(/warning: peer old: its key expired on \d{4}-\d\d-\d\dT.*deferred \(450 4\.7\.5\) until its renewed key is installed \("ferrypost peer update old FILE"/);
  expect(r.stderr).toMatch(/warning: peer gone: its key is revoked; mail for it is deferred \(450 4\.7\.5\) until it is replaced: a revocation is final \("ferrypost peer remove gone", then "peer add"/);
});

it('run starts, logs each unusable peer, delivers the packet signed before expiry and quarantines the revoked key\'s', async () => {
  running = await startNode(home);
  const warned = running.events('keys.peer-unusable');
  expect(warned.map((l) => l.peer).sort()).toEqual(['gone', 'old']);
  expect(warned.find((l) => l.peer === 'old')?.problem).toMatch(/^expired on /);
  const q = await running.waitForEvent('rx.quarantined', 20_000);
  expect(String(q.reason ?? q.msg ?? JSON.stringify(q))).toMatch(/revoked/i);
  await waitUntil(() => existsSync(path.join(home.dir, 'Maildir', 'new')) && readdirSync(path.join(home.dir, 'Maildir', 'new')).length === 1, 20_000, 'delivery of the packet from old');
  const [file] = readdirSync(path.join(home.dir, 'Maildir', 'new'));
  expect(readFileSync(path.join(home.dir, 'Maildir', 'new', file!), 'latin1')).toContain('From: a@old.example');
});

it('SMTP: RCPT for the unusable peers gets 450 4.7.5 with the reason; mail for another peer is accepted in the same transaction', async () => {
  const s = await rawSmtp(port); // has read the 220 greeting
  try {
    expect(await s.cmd('EHLO client.test')).toMatch(/^250[ -]/);
    expect(await s.cmd('MAIL FROM:<me@home.test>')).toMatch(/^250 /);
    expect(await s.cmd('RCPT TO:<x@old.example>')).toMatch(/^450 4\.7\.5 <x@old\.example>: Recipient address rejected: the key of node old expired on \d{4}-/);
    expect(await s.cmd('RCPT TO:<z@gone.example>')).toMatch(/^450 4\.7\.5 <z@gone\.example>: .*node gone is revoked/);
    expect(await s.cmd('RCPT TO:<y@far.example>')).toMatch(/^250 /);
    expect(await s.cmd('DATA')).toMatch(/^354 /);
    expect(await s.cmd('Subject: to far\r\n\r\nhi\r\n.')).toMatch(/^250 /);
    await s.cmd('QUIT');
  } finally {
    s.end();
  }
  expect(readdirSync(path.join(tree, far.fingerprint, home.fingerprint)).filter((n) => !n.startsWith('.'))).toHaveLength(1);
});

it('sendmail to the expired peer exits 75 (the MTA retries) and says why', () => {
  const r = cli(['sendmail', '-f', 'me@home.test', '--', 'x@old.example'], { config: home.config, input: 'Subject: s\n\nbody\n' });
  expect(r.status).toBe(75);
  expect(r.stderr).toMatch(/node old's key expired on .*renewed key/);
});
