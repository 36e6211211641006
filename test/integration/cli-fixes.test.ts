/**
 * The ferrypost command where a mistake costs mail or keys: every config form reaching sendmail, peer
 * add refusing what would overwrite or weaken keys, init creating nothing it cannot finish, listings
 * that write nothing. Real processes (node dist/cli/main.js), real files.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, initNode, tmpdir, type TestNode } from '../helpers/node.js';

const msg = 'From: x@cabin.test\nSubject: q\n\nbody\n';
let base: string;
let solo: TestNode; // the embedded default: routes all mail to itself

/** Packets this node has queued (outgoing, in the tree). */
const queued = (n: TestNode): number => (JSON.parse(cli(['queue', '--json'], { config: n.config }).stdout) as { outgoing: unknown[] }).outgoing.length;
const raw = (args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { input: opts.input ?? '', env: { ...process.env, ...opts.env }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

beforeAll(() => {
  base = tmpdir('fp-cli-fixes-');
  solo = initNode(path.join(base, 'solo'), 'solo');
});

describe('sendmail finds its config in every form', () => {
  it('--config F, --config=F, -c F, -cF before "sendmail" all queue (never exit 0 with nothing queued)', () => {
    const c = solo.config;
    let n = queued(solo);
    for (const form of [['--config', c], [`--config=${c}`], ['-c', c], [`-c${c}`]]) {
      const r = raw([...form, 'sendmail', '-f', 'x@cabin.test', '--', 'y@example.org'], { input: msg, env: { FERRYPOST_CONFIG: '/nonexistent.yaml' } });
      expect(r.stderr, form.join(' ')).toBe('');
      expect(r.status, form.join(' ')).toBe(0);
      expect(queued(solo), form.join(' ')).toBe(++n);
    }
  });

  it('sendmail -C F, -CF (anywhere) and --config=F after "sendmail" are honoured over $FERRYPOST_CONFIG', () => {
    const c = solo.config;
    let n = queued(solo);
    for (const args of [['-C', c, '-f', 'x@cabin.test', 'y@example.org'], [`-C${c}`, 'y@example.org'], ['-f', 'x@cabin.test', 'y@example.org', '-C', c], [`--config=${c}`, '-i', 'y@example.org'], ['--config', c, 'y@example.org']]) {
      const r = raw(['sendmail', ...args], { input: msg, env: { FERRYPOST_CONFIG: '/nonexistent.yaml' } });
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.status, args.join(' ')).toBe(0);
      expect(queued(solo), args.join(' ')).toBe(++n);
    }
  });

  it('two different configs are refused with 75 (the MTA retries), naming both', () => {
    const r = raw(['--config', solo.config, 'sendmail', '-C', path.join(base, 'other.yaml'), 'y@example.org'], { input: msg });
    expect(r.status).toBe(75);
    expect(r.stderr).toMatch(/two different configs given: .*solo.*ferrypost\.yaml and .*other\.yaml/);
  });

  it('sendmail --help prints the usage and exits 0, also after a global --config', () => {
    for (const args of [['sendmail', '--help'], ['--config', solo.config, 'sendmail', '--help'], ['-c', solo.config, 'sendmail', '-i', '--help']]) {
      const r = raw(args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^usage: ferrypost \[--config FILE\] sendmail/);
      expect(r.stdout).toMatch(/65 bad address syntax/);
    }
  });

  it('bad address syntax exits 65 (EX_DATAERR) as its help says; a quoted comma is not a separator', () => {
    const bad = cli(['sendmail', '-f', 'x@cabin.test', '--', 'not an address'], { config: solo.config, input: msg });
    expect(bad.status).toBe(65);
    expect(bad.stderr).toMatch(/bad address syntax/);
    const quoted = cli(['sendmail', '-f', 'x@cabin.test', '--', '"a,b"@example.net'], { config: solo.config, input: msg });
    expect(quoted.stderr).toBe('');
    expect(quoted.status).toBe(0);
  });
});

describe('peer add', () => {
  let node: TestNode;
  let other: TestNode;
  beforeAll(() => {
    node = initNode(path.join(base, 'pa'), 'pa', ['--no-self-peer']);
    other = initNode(path.join(base, 'pb'), 'pb', ['--no-self-peer']);
  });

  it('refuses a --name that is not a plain name before writing anything (no ../node, ../peers/x)', () => {
    const nodeKey = readFileSync(path.join(node.dir, 'keys', 'node.key'), 'utf8');
    const configBefore = readFileSync(node.config, 'utf8');
    const peersBefore = readdirSync(path.join(node.dir, 'keys', 'peers')); // other tests here add peers
    for (const name of ['../node', '../peers/home', '.hidden', 'a/b', '']) {
      const r = cli(['peer', 'add', other.publicKey, '--name', name], { config: node.config });
      expect(r.status, name).toBe(64);
      expect(r.stderr, name).toMatch(/--name .*must start with a letter or digit/);
    }
    expect(readFileSync(path.join(node.dir, 'keys', 'node.key'), 'utf8')).toBe(nodeKey);
    expect(readFileSync(node.config, 'utf8')).toBe(configBefore);
    expect(readdirSync(path.join(node.dir, 'keys', 'peers'))).toEqual(peersBefore);
  });

  it('refuses expired and revoked keys (78) and writes nothing', async () => {
    const day = 86_400_000;
    const expired = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'old', email: 'old@ferrypost.invalid' }], keyExpirationTime: 3600, date: new Date(Date.now() - 10 * day), format: 'armored' });
    const fresh = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'rev', email: 'rev@ferrypost.invalid' }], format: 'object' });
    const revoked = await openpgp.revokeKey({ key: fresh.privateKey, format: 'armored' });
    const files = { expired: path.join(base, 'expired.asc'), revoked: path.join(base, 'revoked.asc') };
    const peersBefore = readdirSync(path.join(node.dir, 'keys', 'peers'));
    const listBefore = cli(['peer', 'list'], { config: node.config }).stdout;
    writeFileSync(files.expired, expired.publicKey);
    writeFileSync(files.revoked, revoked.publicKey);
    const e = cli(['peer', 'add', files.expired, '--name', 'old'], { config: node.config });
    expect(e.status).toBe(78);
    expect(e.stderr).toMatch(/expired\.asc .* expired on \d{4}-/);
    const r = cli(['peer', 'add', files.revoked, '--name', 'rev'], { config: node.config });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/revoked\.asc .* is revoked/);
    expect(readdirSync(path.join(node.dir, 'keys', 'peers'))).toEqual(peersBefore);
    expect(cli(['peer', 'list'], { config: node.config }).stdout).toBe(listBefore);
    expect(listBefore).not.toMatch(/\b(old|rev)\b/);
  });

  it('stores only the public part of a secret key file, and says so', () => {
    const r = cli(['peer', 'add', path.join(other.dir, 'keys', 'node.key'), '--name', 'pb'], { config: node.config });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^warning: .*node\.key holds a SECRET key: only its public part was stored/);
    const stored = readFileSync(path.join(node.dir, 'keys', 'peers', 'pb.asc'), 'utf8');
    expect(stored).toMatch(/BEGIN PGP PUBLIC KEY BLOCK/);
    expect(stored).not.toMatch(/PRIVATE/);
    expect(cli(['check'], { config: node.config }).status).toBe(0);
  });

  it('never overwrites a key file left in keys/peers', () => {
    const third = initNode(path.join(base, 'pc'), 'pc', ['--no-self-peer']);
    writeFileSync(path.join(node.dir, 'keys', 'peers', 'pc.asc'), 'left over\n');
    const r = cli(['peer', 'add', third.publicKey, '--name', 'pc'], { config: node.config });
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/pc\.asc already exists/);
    expect(readFileSync(path.join(node.dir, 'keys', 'peers', 'pc.asc'), 'utf8')).toBe('left over\n');
  });

  it.skipIf(process.getuid?.() !== 0)('keeps the config file\'s mode, owner and group (root adding a peer to the daemon\'s config)', () => {
    const n = initNode(path.join(base, 'grp'), 'grp', ['--no-self-peer']);
    chownSync(n.config, 0, 65534);
    chmodSync(n.config, 0o640);
    expect(cli(['peer', 'add', other.publicKey, '--name', 'pb'], { config: n.config }).status).toBe(0);
    const st = statSync(n.config);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, 65534, 0o640]);
  });

  it('--default next to the self peer that init adds explains how to proceed', () => {
    const r = cli(['peer', 'add', other.publicKey, '--name', 'pb', '--default'], { config: solo.config });
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/"solo" is already the default peer.*this node itself.*--no-self-peer/);
  });
});

describe('init', () => {
  it('a passphrase with trailing spaces unlocks the key it made (init and the daemon read the file alike)', () => {
    const pass = path.join(base, 'pass-ws');
    writeFileSync(pass, 'secret \n', { mode: 0o600 });
    const n = initNode(path.join(base, 'pw'), 'pw', ['--no-self-peer', '--passphrase-file', pass]);
    const r = cli(['check'], { config: n.config });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.each([
    [['--name', '_cabin'], /--name "_cabin": must start with a letter or digit/],
    [['--name', 'my cabin'], /--name "my cabin": must start/],
    [['--listen', 'bogus'], /smtp\.listen\.0: "bogus" is not host:port.*\[--listen\]/],
    [['--smtp', '127.0.0.1:99999'], /delivery\.port: .*65535.*\[--smtp\/--lmtp\]/],
    [['--tree', '.'], /node\.tree .* contains node\.state_dir.*\[--tree\]/],
  ])('%j: refused (64) and nothing is created; a retry with good options works', (args, message) => {
    const dir = path.join(tmpdir('fp-cli-init-'), 'node');
    const r = cli(['init', '--dir', dir, ...args]);
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/nothing was created/);
    expect(existsSync(dir)).toBe(false);
    expect(cli(['init', '--dir', dir, '--name', 'ok']).status).toBe(0);
  });

  it('a step failing half way removes what this init created, so a retry starts clean', () => {
    const dir = path.join(base, 'halfway');
    const file = path.join(base, 'a-file');
    writeFileSync(file, '');
    const r = cli(['init', '--dir', dir, '--tree', path.join(file, 'tree')]); // keys are written, then the tree cannot be (ENOTDIR)
    expect(r.stderr).toMatch(/ENOTDIR/);
    expect(r.status).not.toBe(0);
    expect(existsSync(dir)).toBe(false);
    expect(cli(['init', '--dir', dir]).status).toBe(0);
  });

  it('names a key left over from an earlier init instead of a bare EEXIST', () => {
    const dir = path.join(base, 'leftover');
    mkdirSync(path.join(dir, 'keys'), { recursive: true });
    writeFileSync(path.join(dir, 'keys', 'node.key'), 'x');
    const r = cli(['init', '--dir', dir]);
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/node\.key already exists, but .*ferrypost\.yaml does not: left over from an earlier init\?/);
  });

  it('honours a global --config: the config goes there, the node in --dir (paths absolute)', () => {
    const config = path.join(base, 'etc', 'ferrypost.yaml');
    const dir = path.join(base, 'var');
    const r = cli(['init', '--dir', dir, '--name', 'split', '--tree', path.join(base, 'srv', 'tree')], { config });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`node created: ${config}`);
    expect(readFileSync(config, 'utf8')).toContain(`state_dir: "${path.join(dir, 'state')}"`);
    expect(existsSync(path.join(dir, 'keys', 'node.key'))).toBe(true);
    expect(cli(['check'], { config }).status).toBe(0);
  });

  it('honours $FERRYPOST_CONFIG the same way, as the README offers instead of --config on every line', () => {
    const config = path.join(base, 'etc2', 'ferrypost.yaml');
    const dir = path.join(base, 'var2');
    const env = { FERRYPOST_CONFIG: config };
    const r = raw(['init', '--dir', dir, '--name', 'envnode', '--tree', path.join(base, 'srv2', 'tree')], { env });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`node created: ${config}`);
    expect(existsSync(path.join(dir, 'ferrypost.yaml'))).toBe(false);
    expect(raw(['check'], { env }).status).toBe(0);
  });
});

describe('checks and listings', () => {
  it('check reports what run would refuse: timer bounds, expiry, max_size 0, a bad CIDR, a tree around the keys', () => {
    const n = initNode(path.join(base, 'ck'), 'ck', ['--no-self-peer']);
    const original = readFileSync(n.config, 'utf8');
    for (const [key, value, message] of [
      [['receive', 'rescan_interval'], 0, /receive\.rescan_interval: must be at least/],
      [['receive', 'rescan_interval'], '30d', /receive\.rescan_interval: must be at most/],
      [['packets', 'expiry'], 0, /packets\.expiry: must be at least 1h/],
      [['smtp', 'max_size'], 0, /smtp\.max_size: .*0 does not mean "no limit"/],
      [['smtp', 'allowed_networks'], ['10.0.0.0/33'], /smtp\.allowed_networks\.0: not an address or CIDR/],
      [['node', 'tree'], '.', /node\.tree .* contains node\.state_dir/],
    ] as const) {
      writeFileSync(n.config, original);
      n.edit((d) => d.setIn([...key], value));
      const r = cli(['check'], { config: n.config });
      expect(r.status, key.join('.')).toBe(78);
      expect(r.stderr, key.join('.')).toMatch(message);
    }
    writeFileSync(n.config, original);
  });

  it('queue and quarantine list on a new node create no databases', () => {
    const n = initNode(path.join(base, 'ro'), 'ro', ['--no-self-peer']);
    expect(cli(['queue'], { config: n.config }).stdout).toBe('ferrypost queue is empty\n');
    expect(cli(['queue', '--json'], { config: n.config }).status).toBe(0);
    expect(cli(['quarantine', 'list'], { config: n.config }).stdout).toBe('quarantine is empty\n');
    expect(readdirSync(path.join(n.dir, 'state'))).toEqual([]);
  });

  // Needs root to hand the node to another user (uid 65534) and leave a root-owned file behind.
  it.skipIf(process.getuid?.() !== 0)('a state file another user owns is named with the fix, not "attempt to write a readonly database"; an outbox index alone does not stop mail', () => {
    const n = initNode(path.join(base, 'own'), 'own');
    chmodSync(base, 0o755);
    spawnSync('chown', ['-R', '65534:65534', n.dir]);
    writeFileSync(path.join(n.dir, 'state', 'outbox.sqlite'), '');
    chownSync(path.join(n.dir, 'state', 'outbox.sqlite'), 0, 0);
    const send = () => spawnSync(process.execPath, [CLI, '--config', n.config, 'sendmail', '-f', 'x@cabin.test', 'y@example.org'], { input: msg, uid: 65534, gid: 65534, encoding: 'utf8' });
    let r = send();
    expect(r.stderr).toMatch(/outbox\.sqlite is not writable by user .* \(uid 65534; the file's owner is uid 0\).*chown -R/);
    expect(r.stderr).toMatch(/mail goes on/);
    expect(r.status).toBe(0); // queued: the index is not the queue
    // A corrupt index: the same.
    rmSync(path.join(n.dir, 'state', 'outbox.sqlite'));
    writeFileSync(path.join(n.dir, 'state', 'outbox.sqlite'), 'not a database, just bytes'.repeat(200));
    chownSync(path.join(n.dir, 'state', 'outbox.sqlite'), 65534, 65534);
    r = send();
    expect(r.stderr).toMatch(/outbox index .*outbox\.sqlite cannot be opened/);
    expect(r.status).toBe(0);
    // The journal is not an index: run refuses, naming the file and the fix.
    writeFileSync(path.join(n.dir, 'state', 'journal.sqlite'), '');
    chownSync(path.join(n.dir, 'state', 'journal.sqlite'), 0, 0);
    const run = spawnSync(process.execPath, [CLI, '--config', n.config, 'run'], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toMatch(/journal\.sqlite is not writable by user .*chown -R/);
    expect(run.status).toBe(78);
  });

  it('run --log-level bogus says which levels exist (64)', () => {
    const r = cli(['run', '--log-level', 'bogus'], { config: solo.config });
    expect(r.status).toBe(64);
    expect(r.stderr).toBe('ferrypost: --log-level "bogus": must be one of fatal, error, warn, info, debug, trace\n');
  });

  it('a closed pipe on stdout (quarantine list | true) ends quietly', () => {
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI}" --config "${solo.config}" quarantine list | true; echo "status \${PIPESTATUS[0]}" >&2`], { encoding: 'utf8' });
    expect(r.stderr).toBe('status 0\n');
  });
});
