/**
 * The flush request between `ferrypost flush` and the daemon (receive/flush-request.ts): taken once per
 * request, temp files ignored and cleaned, a request left waiting taken at start, nothing after stop.
 */
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlDir, requestFlush, watchFlushRequests } from '../../src/receive/flush-request.js';
import { tmpdir } from '../helpers/node.js';

const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));
let stop: (() => void) | undefined;
const dirs: string[] = [];
const stateDir = () => {
  const d = tmpdir('fp-flushreq-');
  dirs.push(d);
  return d;
};
afterEach(() => {
  stop?.();
  stop = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('flush requests', () => {
  it('a request is taken (removed) and acted on once; the command hears it', async () => {
    const state = stateDir();
    let flushes = 0;
    stop = watchFlushRequests(state, () => void flushes++, (err) => { throw err; });
    expect(await requestFlush(state, 3000)).toBe('taken');
    await settle();
    expect(flushes).toBe(1);
    expect(readdirSync(controlDir(state))).toEqual([]);
    expect(await requestFlush(state, 3000)).toBe('taken');
    await settle();
    expect(flushes).toBe(2);
  });

  it('without a watcher the request waits, and the next start takes it and removes a dead command\'s temp file', async () => {
    const state = stateDir();
    expect(await requestFlush(state, 200)).toBe('not-taken');
    writeFileSync(path.join(controlDir(state), '.flush.12345'), 'half-written');
    let flushes = 0;
    stop = watchFlushRequests(state, () => void flushes++, (err) => { throw err; });
    expect(flushes).toBe(1);
    expect(readdirSync(controlDir(state))).toEqual([]);
  });

  it('after stop a request is not taken; other files in the directory are ignored', async () => {
    const state = stateDir();
    let flushes = 0;
    stop = watchFlushRequests(state, () => void flushes++, (err) => { throw err; });
    writeFileSync(path.join(controlDir(state), 'other'), 'x');
    await settle();
    expect(flushes).toBe(0);
    stop();
    stop = undefined;
    expect(await requestFlush(state, 300)).toBe('not-taken');
    expect(flushes).toBe(0);
    expect(existsSync(path.join(controlDir(state), 'flush'))).toBe(true);
  });

  it('a directory that cannot be made is reported, not thrown', () => {
    const state = stateDir();
    writeFileSync(path.join(state, 'control'), 'a file where the directory should be');
    const errors: unknown[] = [];
    stop = watchFlushRequests(state, () => undefined, (err) => void errors.push(err));
    expect(errors).toHaveLength(1);
  });
});
