/**
 * A sender directory the receiver's user cannot read (Syncthing copies a peer's permission bits, and
 * ferrypost often runs as another user than Syncthing) hides only that directory: the other peers'
 * packets are still found, the unreadable part is reported, and start-up's stale-temp sweep does not
 * fail on another node's directory. Root is needed to make a directory unreadable to someone (root
 * itself reads everything): the scan runs in a child process as uid 65534, on the built code (dist/).
 */
import { chmodSync, chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packetNameForHash } from '../../src/tree/layout.js';
import { tmpdir } from '../helpers/node.js';

const NOBODY = 65534;
const SCAN = path.resolve('dist/tree/scan.js');
const node = (c: string) => c.repeat(40);
const SELF = node('a'), READABLE = node('b'), LOCKED = node('c'), OTHER = node('d');

let base: string;
afterEach(() => rmSync(base, { recursive: true, force: true }));

/** Runs `body` (ESM, with scanInbox / removeStaleTemps in scope) as uid 65534; its stdout as JSON. */
function asNobody(body: string): unknown {
  const script = `import { scanInbox, removeStaleTemps } from ${JSON.stringify(SCAN)};\n${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('scan: unreadable parts of the tree', () => {
  it.skipIf(process.getuid?.() !== 0)('an unreadable sender directory is reported and skipped; the other senders\' packets are found', () => {
    base = tmpdir('fp-scan-perm-');
    chmodSync(base, 0o755);
    const tree = path.join(base, 'tree');
    const name = packetNameForHash(randomBytes(32));
    for (const [from, owner, mode] of [[READABLE, NOBODY, 0o755], [LOCKED, 0, 0o700]] as const) {
      const dir = path.join(tree, SELF, from);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, name), 'x');
      chownSync(dir, owner, owner);
      chmodSync(dir, mode);
    }
    chmodSync(path.join(tree, SELF), 0o755);
    chmodSync(tree, 0o755);
    const out = asNobody(`
      const errors = [];
      const found = await scanInbox(${JSON.stringify(tree)}, ${JSON.stringify(SELF)}, { onError: (p, e) => errors.push([p, e.code]) });
      let thrown = null;
      try { await scanInbox(${JSON.stringify(tree)}, ${JSON.stringify(SELF)}); } catch (e) { thrown = e.code; }
      console.log(JSON.stringify({ found: found.map((e) => e.from), errors, thrown }));
    `);
    expect(out).toEqual({ found: [READABLE], errors: [[path.join(tree, SELF, LOCKED), 'EACCES']], thrown: 'EACCES' });
  });

  it.skipIf(process.getuid?.() !== 0)('the stale-temp sweep reports another node\'s unreadable directory and still removes our own stale temps', () => {
    base = tmpdir('fp-scan-perm-');
    chmodSync(base, 0o755);
    const tree = path.join(base, 'tree');
    const ours = path.join(tree, READABLE, SELF);
    const theirs = path.join(tree, OTHER, READABLE);
    mkdirSync(ours, { recursive: true });
    mkdirSync(theirs, { recursive: true });
    const stale = path.join(ours, '.ferrypost.0123456789abcdef01234567.tmp');
    writeFileSync(stale, 'partial');
    chownSync(ours, NOBODY, NOBODY);
    chownSync(stale, NOBODY, NOBODY);
    chmodSync(theirs, 0o700); // root's, unreadable to the receiver's user
    for (const d of [tree, path.join(tree, READABLE), path.join(tree, OTHER)]) chmodSync(d, 0o755);
    const out = asNobody(`
      const errors = [];
      const removed = await removeStaleTemps(${JSON.stringify(tree)}, 0, Date.now() + 1000, (p, e) => errors.push([p, e.code]));
      console.log(JSON.stringify({ removed, errors }));
    `);
    expect(out).toEqual({ removed: [stale], errors: [[theirs, 'EACCES']] });
  });
});
