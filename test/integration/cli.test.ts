/** The ferrypost command as an admin uses it: real processes, real files, exit codes and messages. */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, initNode, tmpdir, type TestNode } from '../helpers/node.js';

let base: string;
let a: TestNode;
let b: TestNode;

beforeAll(() => {
  base = tmpdir('fp-cli-');
  a = initNode(path.join(base, 'a'), 'cabin', ['--no-self-peer']);
  b = initNode(path.join(base, 'b'), 'home', ['--no-self-peer', '--smtp', '127.0.0.1:25']);
});

describe('ferrypost CLI', () => {
  it('init creates key (0600), config, tree with .stignore, state, and the Maildir whole (tmp/ new/ cur/)', () => {
    expect(statSync(path.join(a.dir, 'keys', 'node.key')).mode & 0o777).toBe(0o600);
    // large messages are staged only into an existing Maildir: the node's own exists from the start
    for (const sub of ['tmp', 'new', 'cur']) expect(statSync(path.join(a.dir, 'Maildir', sub)).isDirectory()).toBe(true);
    expect(readFileSync(path.join(a.dir, 'tree', '.stignore'), 'utf8')).toContain('.ferrypost.*.tmp');
    expect(existsSync(path.join(a.dir, 'state'))).toBe(true);
    expect(a.fingerprint).toMatch(/^[0-9a-f]{40}$/);
    const r = cli(['check'], { config: a.config });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`node cabin ${a.fingerprint}, 0 peer(s), delivery maildir`);
    expect(readFileSync(b.config, 'utf8')).toMatch(/method: smtp\n  host: 127.0.0.1\n  port: 25/);
  });

  it('runs as an installed command through its interpreter line, with its V8 flags', () => {
    chmodSync(CLI, 0o755); // what npm does for a package's bin
    expect(readFileSync(CLI, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env -S node --max-semi-space-size=4 --expose-gc');
    const r = spawnSync(CLI, ['check'], { env: { ...process.env, FERRYPOST_CONFIG: a.config }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('--version prints the package version and exits 0, like postconf mail_version', () => {
    const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
    for (const flag of ['--version', '-V']) {
      const r = cli([flag]);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
  });

  it('init refuses to overwrite a node', () => {
    const r = cli(['init', '--dir', a.dir]);
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/already exists/);
  });

  it('key export prints the armored public key with the node fingerprint', () => {
    const r = cli(['key', 'export'], { config: a.config });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(r.stdout).not.toMatch(/PRIVATE/);
  });

  it('peer add shows the fingerprint, writes the config, and refuses duplicates and bad patterns', () => {
    const keyFile = path.join(base, 'home.asc');
    writeFileSync(keyFile, cli(['key', 'export'], { config: b.config }).stdout);
    const r = cli(['peer', 'add', keyFile, '--name', 'home', '--default', '--mail', 'example.org'], { config: a.config });
    expect(r.status).toBe(0);
    expect(r.stdout.replace(/\s/g, '').toLowerCase()).toContain(b.fingerprint);
    const list = cli(['peer', 'list'], { config: a.config });
    expect(list.stdout).toMatch(/^home\s+[0-9A-F ]+\s+example.org \(default\)/m);
    expect(cli(['peer', 'add', keyFile, '--name', 'home2'], { config: a.config }).stderr).toMatch(/already the peer "home"/);
    const bad = cli(['peer', 'add', keyFile, '--name', 'x', '--mail', 'not a domain'], { config: a.config });
    expect(bad.status).toBe(64);
    expect(bad.stderr).toMatch(/--mail "not a domain"/);
    expect(cli(['check'], { config: a.config }).stdout).toContain('1 peer(s)');
    // the comments of the config survive the edit
    expect(readFileSync(a.config, 'utf8')).toContain('# The Syncthing-shared folder');
  });

  it('a broken config names the key and exits 78 (EX_CONFIG)', () => {
    const dir = tmpdir('fp-cli-bad-');
    const file = path.join(dir, 'ferrypost.yaml');
    writeFileSync(file, 'node: { name: x, tree: t, state_dir: s, key: k }\nreceive: { concurrency: 0 }\n');
    const r = cli(['check'], { config: file });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/receive\.concurrency: .*got 0/);
    const missing = cli(['check'], { config: path.join(dir, 'nope.yaml') });
    expect(missing.status).toBe(78);
    expect(missing.stderr).toMatch(/cannot read config .*nope.yaml.*ferrypost init/);
  });

  it('FERRYPOST_CONFIG is the default config', () => {
    const r = cli(['check'], { env: { FERRYPOST_CONFIG: a.config } });
    expect(r.status).toBe(0);
  });

  it('sendmail: sysexits for usage, no route, success; queue shows the packet', () => {
    const msg = 'From: x@cabin.test\nSubject: q\n\nbody\n';
    expect(cli(['sendmail', '-f', 'x@cabin.test'], { config: a.config, input: msg }).status).toBe(64);
    expect(cli(['sendmail', '-t'], { config: a.config, input: msg }).status).toBe(64);
    // b has no peers at all: no route → EX_NOUSER
    const noRoute = cli(['sendmail', '-f', 'x@home.test', '--', 'y@cabin.test'], { config: b.config, input: msg });
    expect(noRoute.status).toBe(67);
    expect(noRoute.stderr).toMatch(/no route/);
    const ok = cli(['sendmail', '-f', 'x@cabin.test', '--', 'friend@example.org', 'other@elsewhere.test'], { config: a.config, input: msg });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    const q = cli(['queue'], { config: a.config });
    expect(q.status).toBe(0);
    expect(q.stdout).toMatch(/Outgoing: 1 packet/);
    expect(q.stdout).toMatch(/-- to home/);
    expect(q.stdout).toContain('friend@example.org');
    expect(q.stdout).toContain('<x@cabin.test>');
    const j = JSON.parse(cli(['queue', '--json'], { config: a.config }).stdout);
    expect(j.outgoing[0].recipients).toEqual(['friend@example.org', 'other@elsewhere.test']);
    // The peer took the packet: queue is empty and forgets the packet's index row.
    rmSync(path.join(a.dir, 'tree', b.fingerprint, a.fingerprint, j.outgoing[0].name));
    expect(cli(['queue'], { config: a.config }).stdout).toBe('ferrypost queue is empty\n');
    const db = new Database(path.join(a.dir, 'state', 'outbox.sqlite'), { readonly: true });
    expect(db.prepare('SELECT count(*) FROM outbox').pluck().get()).toBe(0);
    db.close();
  });

  it('queue lists without unlocking the secret key (like mailq); check needs the passphrase', () => {
    const dir = path.join(base, 'locked');
    const pass = path.join(base, 'locked.pass');
    writeFileSync(pass, 'correct horse\n', { mode: 0o600 });
    const n = initNode(dir, 'locked', ['--no-self-peer', '--passphrase-file', pass]);
    expect(cli(['check'], { config: n.config }).status).toBe(0);
    writeFileSync(pass, 'wrong\n');
    const check = cli(['check'], { config: n.config });
    expect(check.status).toBe(78);
    expect(check.stderr).toMatch(/cannot unlock node key .*wrong passphrase/);
    const q = cli(['queue'], { config: n.config });
    expect(q.stderr).toBe('');
    expect(q.status).toBe(0);
    expect(q.stdout).toBe('ferrypost queue is empty\n');
  });

  it('sendmail with a missing config asks the MTA to retry (75)', () => {
    const r = cli(['sendmail', '-f', 'x@y.test', '--', 'z@y.test'], { config: path.join(base, 'missing.yaml'), input: 'x\n' });
    expect(r.status).toBe(75);
  });

  it('quarantine list on an empty quarantine', () => {
    const r = cli(['quarantine', 'list'], { config: a.config });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('quarantine is empty\n');
  });

  it('the README two-site sequence works when followed literally (paths moved into a temp dir)', () => {
    const readme = readFileSync('README.md', 'utf8');
    const block = /## Two sites[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const root = tmpdir('fp-cli-readme-');
    const exchange = path.join(root, 'exchange'); // the "any channel" the public keys travel by
    mkdirSync(exchange);
    const ran: string[] = [];
    for (const line of block!.split('\n')) {
      if (!line.startsWith('ferrypost ')) continue; // useradd, chown, systemctl: root-only setup, not ferrypost's
      const site = /--name (cabin|home)\b.*\binit\b|\binit\b.*--name (cabin|home)\b/.exec(line)?.slice(1).find(Boolean) ?? (/# on the cabin/.test(line) ? 'cabin' : /# at home/.test(line) ? 'home' : undefined);
      expect(site, line).toBeDefined();
      const command = line.replace(/\s+#.*$/, '').replaceAll('/etc/ferrypost', path.join(root, site!, 'etc')).replaceAll('/var/lib/ferrypost', path.join(root, site!, 'var')).replaceAll('/srv/ferrypost', path.join(root, site!, 'srv'));
      const [argv, out] = command.split(' > ') as [string, string | undefined];
      const r = spawnSync(process.execPath, [CLI, ...argv.split(/\s+/).slice(1)], { cwd: exchange, encoding: 'utf8' });
      expect(r.stderr, line).toBe('');
      expect(r.status, line).toBe(0);
      if (out) writeFileSync(path.join(exchange, out), r.stdout);
      ran.push(line);
    }
    expect(ran.filter((l) => / init /.test(l))).toHaveLength(2);
    expect(ran.filter((l) => / peer add /.test(l))).toHaveLength(2);
    for (const [site, peer] of [['cabin', 'home'], ['home', 'cabin']] as const) {
      const config = path.join(root, site, 'etc', 'ferrypost.yaml');
      expect(cli(['check'], { config }).stdout).toContain(`node ${site} `);
      expect(cli(['peer', 'list'], { config }).stdout).toMatch(new RegExp(`^${peer}\\s`));
    }
  });

  it('unknown command and bad option exit 64 with a hint', () => {
    const r = cli(['frobnicate']);
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/unknown command/);
  });
});
