// Small process/file helpers shared by the daemon harnesses: run a command (throwing with its
// output on failure), poll for a condition, wait for a pid to exit, list Maildir messages.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Runs a command to completion; throws with its output unless it exits 0 (or allowFail).
 * daemon: the command forks a daemon that keeps inherited fds open, so no pipes (no output).
 */
export function run(cmd: string, args: string[], opts: { input?: Buffer | string; allowFail?: boolean; daemon?: boolean } = {}): string {
  const r = spawnSync(cmd, args, {
    input: opts.input,
    encoding: 'utf8',
    timeout: 60_000,
    stdio: opts.daemon ? 'ignore' : 'pipe',
  });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stdout}${r.stderr}`);
  }
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | false, details?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms waiting for ${what}${details ? `\n${details()}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readPid(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export async function waitPidGone(pid: number, timeoutMs: number): Promise<void> {
  await waitFor(`pid ${pid} to exit`, timeoutMs, () => !pidAlive(pid) || isZombie(pid));
}

function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Message files in <maildir>/new and <maildir>/cur, sorted by name (delivery order for Postfix/Exim). */
export function maildirMessages(maildir: string): string[] {
  const out: string[] = [];
  for (const sub of ['new', 'cur']) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(maildir, sub));
    } catch {
      continue;
    }
    for (const n of names) if (!n.startsWith('.')) out.push(path.join(maildir, sub, n));
  }
  return out.sort((a, b) => path.basename(a).localeCompare(path.basename(b)));
}

export function readIfExists(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function chownR(dir: string, uid: number, gid: number): void {
  fs.chownSync(dir, uid, gid);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chownR(p, uid, gid);
    else fs.chownSync(p, uid, gid);
  }
}

/** uid and gid of a system user, from getent. */
export function userIds(name: string): { uid: number; gid: number } {
  const line = run('getent', ['passwd', name]).trim();
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Removes a harness temp dir after stop(), unless FERRYPOST_KEEP_STACK=1 (for post-mortems). */
export function removeTempDir(dir: string): void {
  if (process.env.FERRYPOST_KEEP_STACK === '1') return;
  fs.rmSync(dir, { recursive: true, force: true });
}
