// Starts the Exim test instance from deploy/exim/exim.conf (rendered, never copied). Exim keeps
// root with -C only for paths in /etc/exim4/trusted_configs, so the config is always
// EXIM_INSTANCE_DIR/exim.conf and only ONE Exim instance can run at a time: startExim takes a
// lock directory (waiting for it, breaking it if its owner pid is dead) and stop() releases it.
// Throws if the binary is missing, the config check fails or the daemon does not answer.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, waitForPort } from '../ports.js';
import { renderTemplate } from './render.js';
import { maildirMessages, pidAlive, readIfExists, readPid, removeTempDir, run, userIds, waitFor, waitPidGone } from './proc.js';

export const EXIM_BIN = '/opt/ferrypost-stack/exim/usr/sbin/exim4';
/** The one directory whose exim.conf is listed in /etc/exim4/trusted_configs (see .ci/install-stack.sh). */
export const EXIM_INSTANCE_DIR = '/var/tmp/ferrypost-exim';

export interface EximOptions {
  localDomain: string;
  users?: string[];
  ferrypostPort: number;
  /** daemon port; a free one if omitted. */
  port?: number;
  hostname?: string;
  /** How long to wait for another test's Exim to release the lock. */
  lockTimeoutMs?: number;
}

export interface EximInstance {
  conf: string;
  port: number;
  mailDir: string;
  /** argv for sendmail-style injection (deliver before exit); append "-i -f SENDER -- RCPT...". */
  eximArgv: string[];
  mainlog(): string;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  maildirFiles(user: string): string[];
  waitForMail(user: string, count: number, timeoutMs?: number): Promise<string[]>;
  /** Number of messages in the queue (exim -bpc). */
  queueCount(): number;
  /** Stops the daemon, removes the Maildir root (unless FERRYPOST_KEEP_STACK=1), releases the lock. */
  stop(): Promise<void>;
}

async function takeLock(lockDir: string, timeoutMs: number): Promise<void> {
  const owner = path.join(lockDir, 'pid');
  await waitFor(`Exim test lock ${lockDir}`, timeoutMs, () => {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(owner, String(process.pid));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = readPid(owner);
      // A dead owner (or one that died between mkdir and write, after a grace period) leaves a stale lock.
      const stale = pid !== undefined ? !pidAlive(pid) : Date.now() - fs.statSync(lockDir).mtimeMs > 5_000;
      if (stale) fs.rmSync(lockDir, { recursive: true, force: true });
      return false;
    }
  });
}

/** Kills an Exim daemon a crashed earlier test left behind (only if the pid really is exim). */
async function killLeftover(pidFile: string): Promise<void> {
  const pid = readPid(pidFile);
  if (pid === undefined || !pidAlive(pid)) return;
  if (!readIfExists(`/proc/${pid}/cmdline`).includes('exim')) return;
  process.kill(pid, 'SIGTERM');
  await waitPidGone(pid, 10_000);
}

export async function startExim(opts: EximOptions): Promise<EximInstance> {
  if (!fs.existsSync(EXIM_BIN)) throw new Error(`${EXIM_BIN} missing: run .ci/install-stack.sh`);
  const dir = EXIM_INSTANCE_DIR;
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const lockDir = path.join(dir, 'lock');
  await takeLock(lockDir, opts.lockTimeoutMs ?? 90_000);
  const release = (): void => fs.rmSync(lockDir, { recursive: true, force: true });

  const conf = path.join(dir, 'exim.conf');
  const pidFile = path.join(dir, 'exim.pid');
  let mailRoot: string | undefined;
  const logDir = path.join(dir, 'log');
  let daemonPid: number | undefined;
  const stopDaemon = async (): Promise<void> => {
    const pid = daemonPid ?? readPid(pidFile);
    if (pid !== undefined && pidAlive(pid)) {
      process.kill(pid, 'SIGTERM');
      await waitPidGone(pid, 10_000);
    }
    if (mailRoot) removeTempDir(mailRoot);
  };
  try {
    await killLeftover(pidFile);
    // Fresh spool and log every time: a queued message from an earlier run must not be delivered now.
    for (const d of ['spool', 'log']) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
    fs.rmSync(pidFile, { force: true });
    const ex = userIds('Debian-exim');
    for (const d of ['spool', 'log']) {
      fs.mkdirSync(path.join(dir, d), { mode: 0o750 });
      fs.chownSync(path.join(dir, d), ex.uid, ex.gid);
    }
    mailRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-exim-'));
    fs.chmodSync(mailRoot, 0o755);
    const mailDir = path.join(mailRoot, 'mail');
    fs.mkdirSync(mailDir);
    const vmail = userIds('vmail');
    fs.chownSync(mailDir, vmail.uid, vmail.gid);

    const port = opts.port ?? (await freePort());
    renderTemplate('exim/exim.conf', conf, {
      EXIM_PATH: EXIM_BIN,
      INSTANCE_DIR: dir,
      HOSTNAME: opts.hostname ?? `exim.${opts.localDomain}`,
      LOCAL_DOMAIN: opts.localDomain,
      LOCAL_USERS: (opts.users ?? ['alice', 'bob']).join(' : '),
      MAIL_DIR: mailDir,
      SMTPD_PORT: port,
      FERRYPOST_PORT: opts.ferrypostPort,
    });
    fs.chownSync(conf, 0, 0); // trusted config: root-owned, not writable by others

    const mainlog = (): string => readIfExists(path.join(logDir, 'mainlog')) + readIfExists(path.join(logDir, 'paniclog'));
    run(EXIM_BIN, ['-C', conf, '-bV']);
    run(EXIM_BIN, ['-C', conf, '-bd', '-q10s']);
    daemonPid = await waitFor('exim.pid', 10_000, () => readPid(pidFile), mainlog);
    await waitForPort(port, 10_000);

    const maildirFiles = (user: string): string[] => maildirMessages(path.join(mailDir, user, 'Maildir'));
    let stopped = false;
    return {
      conf,
      port,
      mailDir,
      eximArgv: [EXIM_BIN, '-C', conf, '-odi'],
      mainlog,
      waitForLog: (re, timeoutMs = 15_000) =>
        waitFor(`${re} in exim mainlog`, timeoutMs, () => mainlog().match(re)?.[0], () => mainlog().slice(-4000)),
      maildirFiles,
      waitForMail: (user, count, timeoutMs = 15_000) =>
        waitFor(`${count} message(s) for ${user} in exim Maildir`, timeoutMs, () => {
          const f = maildirFiles(user);
          return f.length >= count ? f : undefined;
        }, () => mainlog().slice(-4000)),
      queueCount: () => Number(spawnSync(EXIM_BIN, ['-C', conf, '-bpc'], { encoding: 'utf8' }).stdout.trim()),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        try {
          await stopDaemon();
        } finally {
          release();
        }
      },
    };
  } catch (err) {
    await stopDaemon().catch(() => undefined);
    release();
    const log = readIfExists(path.join(logDir, 'mainlog')) + readIfExists(path.join(logDir, 'paniclog'));
    throw new Error(`exim did not start: ${(err as Error).message}\n--- mainlog ---\n${log.slice(-4000)}`);
  }
}
