/**
 * Crash leftovers on the sending side: removed at the daemon's start, also on a send-only node (no
 * delivery: no receiver), but never a spool file of a `ferrypost sendmail` that is still running.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, expect, it } from 'vitest';
import { removeLeftovers } from '../../src/send/leftovers.js';
import { initNode, startNode, tmpdir } from '../helpers/node.js';

const base = tmpdir('fp-leftovers-');
const sleeper = spawn('sleep', ['60']); // a live process, as a sendmail spooling right now
afterAll(() => {
  sleeper.kill();
});
const deadPid = (): number => spawnSync('true').pid!; // exited: its pid is free

function touchOld(file: string): void {
  const t = (Date.now() - 2 * 3_600_000) / 1000;
  utimesSync(file, t, t);
}

it('spool: files of gone processes and unnamed ones go; a live writer\'s files stay, old ones too; work/ is emptied', async () => {
  const state = path.join(base, 'unit-state');
  const tree = path.join(base, 'unit-tree');
  mkdirSync(path.join(state, 'spool'), { recursive: true });
  mkdirSync(path.join(state, 'work'), { recursive: true });
  mkdirSync(tree, { recursive: true });
  const f = (n: string) => path.join(state, 'spool', n);
  const dead = `${deadPid()}-a.msg`;
  writeFileSync(f(dead), 'x');
  writeFileSync(f(`${sleeper.pid}-b.msg`), 'x');
  writeFileSync(f(`${sleeper.pid}-c.msg`), 'x');
  touchOld(f(`${sleeper.pid}-c.msg`));
  writeFileSync(f('0123abcd.msg'), 'x'); // the name before writers were named: from an older ferrypost
  writeFileSync(path.join(state, 'work', 'w.msg'), 'x');
  await removeLeftovers(tree, state, pino({ level: 'silent' }));
  for (const kept of [`${sleeper.pid}-b.msg`, `${sleeper.pid}-c.msg`]) expect(existsSync(f(kept)), kept).toBe(true); // c: two hours old, its writer still runs
  for (const gone of [dead, '0123abcd.msg']) expect(existsSync(f(gone)), gone).toBe(false);
  expect(existsSync(path.join(state, 'work'))).toBe(false);
});

it('a send-only node (no delivery) removes its leftovers at start too', async () => {
  const n = initNode(path.join(base, 'sender'), 'sender');
  n.edit((d) => {
    d.deleteIn(['delivery']);
    d.deleteIn(['smtp']);
  });
  const spool = path.join(n.dir, 'state', 'spool');
  mkdirSync(spool, { recursive: true });
  const leftover = path.join(spool, `${deadPid()}-d.msg`);
  writeFileSync(leftover, 'partial message');
  const out = path.join(n.dir, 'tree', n.fingerprint, n.fingerprint);
  mkdirSync(out, { recursive: true });
  const temp = path.join(out, '.ferrypost.0123456789abcdef01234567.tmp');
  writeFileSync(temp, 'partial packet');
  touchOld(temp);
  const node = await startNode(n);
  try {
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(temp)).toBe(false);
  } finally {
    await node.stop();
  }
});
