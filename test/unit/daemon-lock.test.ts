import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import { acquireDaemonLock, PID_FILE } from '../../src/store/daemon-lock.js';

const dirs: string[] = [];
const stateDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'ferry-lock-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The error acquireDaemonLock throws, or undefined if it took the lock (then released). */
function tryLock(dir: string, pid?: number): unknown {
  try {
    acquireDaemonLock(dir, pid).release();
    return undefined;
  } catch (e) {
    return e;
  }
}

describe('daemon lock', () => {
  it('is held once per state directory: a second holder is refused, naming the first by pid, until it releases', () => {
    const dir = stateDir();
    const first = acquireDaemonLock(dir, 4242);
    expect(readFileSync(path.join(dir, PID_FILE), 'utf8')).toBe('4242\n');
    const err = tryLock(dir);
    expect(isFerryError(err, 'ALREADY_RUNNING')).toBe(true);
    expect((err as Error).message).toContain(`for the state directory ${dir} (pid 4242, from daemon.pid)`);
    expect(existsSync(path.join(dir, 'daemon.lock-journal'))).toBe(false);
    expect(tryLock(stateDir())).toBeUndefined(); // another node's state directory is not locked
    first.release();
    first.release(); // idempotent
    expect(existsSync(path.join(dir, PID_FILE))).toBe(false);
    const again = acquireDaemonLock(dir);
    again.release();
  });

  it('is held across processes and freed by the kernel when the holder is killed (kill -9: nothing stale)', async () => {
    const dir = stateDir();
    // Another process takes the lock the same way, with the BUILT module (dist/): `npm test` builds
    // first; running this file alone tests whatever was built last.
    const mod = path.resolve('dist/store/daemon-lock.js');
    const child = spawn(process.execPath, ['--input-type=module', '-e', `const { acquireDaemonLock } = await import(${JSON.stringify(mod)}); globalThis.held = acquireDaemonLock(${JSON.stringify(dir)}); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
        child.once('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
      });
      const err = tryLock(dir);
      expect(isFerryError(err, 'ALREADY_RUNNING')).toBe(true);
      expect((err as Error).message).toContain(`(pid ${child.pid}, from daemon.pid)`);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(undefined)));
    }
    expect(tryLock(dir)).toBeUndefined(); // the stale pid file is no obstacle
  });

  it('a state directory that cannot hold the lock file is a STORE_FAILED error naming the file', () => {
    const err = tryLock(path.join(stateDir(), 'missing', 'deeper'));
    expect(isFerryError(err, 'STORE_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/daemon\.lock/);
  });
});
