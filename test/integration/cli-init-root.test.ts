/**
 * init and the commands that write, where an admin's slip costs: a numeric node name, the node
 * directory's mode (the tree and Maildir under it are for Syncthing and Dovecot too), a path that
 * cannot be made, an empty $FERRYPOST_CONFIG, and root writing into a node another user owns.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { CLI, cli, initNode, tmpdir } from '../helpers/node.js';

let base: string;
beforeAll(() => {
  base = tmpdir('fp-cli-init-');
});

it('init --name 123 makes a node whose config loads (the name is quoted in YAML)', () => {
  const n = initNode(path.join(base, 'digits'), '123');
  const r = cli(['check'], { config: n.config });
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/^config ok: node 123 /);
});

it('init makes the node directory with the default mode; only keys/ and state/ are private', () => {
  const n = initNode(path.join(base, 'modes'), 'modes');
  const mode = (p: string) => statSync(path.join(n.dir, p)).mode & 0o777;
  expect(mode('.')).toBe(0o777 & ~process.umask());
  expect(mode('tree')).toBe(0o777 & ~process.umask());
  expect(mode('keys')).toBe(0o700);
  expect(mode('state')).toBe(0o700);
});

it('init with a path that cannot be made says which and exits 78, creating nothing', () => {
  writeFileSync(path.join(base, 'plain'), 'a file');
  const dir = path.join(base, 'bad');
  const r = cli(['init', '--dir', dir, '--name', 'bad', '--maildir', path.join(base, 'plain', 'Maildir')]);
  expect(r.status).toBe(78);
  expect(r.stderr).toBe(`ferrypost: cannot init: ${path.join(base, 'plain', 'Maildir')}: ENOTDIR (check --dir, --tree, --maildir and --config; nothing was created)\n`);
  expect(existsSync(dir)).toBe(false);
});

it('FERRYPOST_CONFIG set but empty means unset: ./ferrypost.yaml, as for init', () => {
  const n = initNode(path.join(base, 'cwd'), 'cwd');
  const r = spawnSync(process.execPath, [CLI, 'check'], { cwd: n.dir, env: { ...process.env, FERRYPOST_CONFIG: '' }, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

it.skipIf(process.getuid?.() !== 0)('root does not write into a node another user owns: sendmail 75, quarantine release 78, flush 78, run 78, each naming the fix', () => {
  const n = initNode(path.join(base, 'owned'), 'owned');
  chmodSync(base, 0o755);
  spawnSync('chown', ['-R', '65534:65534', n.dir]);
  mkdirSync(path.join(n.dir, 'state', 'quarantine'), { recursive: true });
  const fix = /belongs to uid 65534, and this command runs as root: .*sudo -u '#65534' ferrypost/;
  const send = cli(['sendmail', '-f', 'a@x.org', '--', 'b@y.org'], { config: n.config, input: 'Subject: s\n\nx\n' });
  expect(send.status).toBe(75);
  expect(send.stderr).toMatch(fix);
  const rel = cli(['quarantine', 'release', 'x'], { config: n.config });
  expect(rel.status).toBe(78);
  expect(rel.stderr).toMatch(fix);
  const flush = cli(['flush'], { config: n.config });
  expect(flush.status).toBe(78);
  expect(flush.stderr).toMatch(fix);
  expect(existsSync(path.join(n.dir, 'state', 'control'))).toBe(false);
  const run = cli(['run'], { config: n.config });
  expect(run.status).toBe(78);
  expect(run.stderr).toMatch(fix);
  expect(existsSync(path.join(n.dir, 'state', 'outbox.sqlite'))).toBe(false); // nothing root-owned left behind
});

it('check reads smtp.tls as run will: a certificate that is not one is 78 naming smtp.tls (was "config ok")', () => {
  const n = initNode(path.join(base, 'tls'), 'tls');
  writeFileSync(path.join(n.dir, 'cert.pem'), 'not a certificate\n');
  writeFileSync(path.join(n.dir, 'key.pem'), 'not a key\n');
  n.edit((d) => d.setIn(['smtp', 'tls'], { key: path.join(n.dir, 'key.pem'), cert: path.join(n.dir, 'cert.pem') }));
  const r = cli(['check'], { config: n.config });
  expect(r.status).toBe(78);
  expect(r.stderr).toMatch(/^ferrypost: smtp\.tls: key .*key\.pem and certificate .*cert\.pem are not a usable pair: /);
});

it.skipIf(process.getuid?.() !== 0)('root editing peers of a node another user owns leaves that user\'s files: peer add, update, remove', () => {
  const n = initNode(path.join(base, 'peers-owned'), 'owned2', ['--no-self-peer']);
  const other = initNode(path.join(base, 'other'), 'other', ['--no-self-peer']);
  chmodSync(base, 0o755);
  spawnSync('chown', ['-R', '65534:65534', n.dir]);
  const keyFile = path.join(n.dir, 'keys', 'peers', 'other.asc');
  expect(cli(['peer', 'add', other.publicKey, '--name', 'other'], { config: n.config }).status).toBe(0);
  expect([statSync(keyFile).uid, statSync(keyFile).gid]).toEqual([65534, 65534]);
  expect(statSync(n.config).uid).toBe(65534);
  expect(cli(['peer', 'update', 'other', other.publicKey], { config: n.config }).status).toBe(0);
  expect(statSync(keyFile).uid).toBe(65534);
  const removed = cli(['peer', 'remove', 'other'], { config: n.config });
  expect(removed.status, removed.stderr).toBe(0);
  const kept = readdirSync(path.join(n.dir, 'keys', 'peers')).filter((f) => f.startsWith('other.asc.removed-'));
  expect(kept).toHaveLength(1);
  expect(statSync(path.join(n.dir, 'keys', 'peers', kept[0]!)).uid).toBe(65534);
  expect(statSync(n.config).uid).toBe(65534);
});
