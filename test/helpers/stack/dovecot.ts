// Starts a throwaway Dovecot IMAP instance from deploy/dovecot/dovecot.conf (rendered) over an
// existing Maildir root, plus imapList(): a tiny raw-socket IMAP client (LOGIN, SELECT, FETCH
// Subject/Message-ID, LOGOUT). Start throws with dovecot.log if the config or listener fails;
// imapList rejects on a NO/BAD reply, a closed connection or after 10 s.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from '../ports.js';
import { renderTemplate } from './render.js';
import { readIfExists, readPid, removeTempDir, run, waitPidGone } from './proc.js';

export interface DovecotInstance {
  dir: string;
  port: number;
  log(): string;
  stop(): Promise<void>;
}

export async function startDovecot(opts: { mailDir: string; users: Record<string, string>; port?: number }): Promise<DovecotInstance> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-dovecot-'));
  fs.chmodSync(dir, 0o755);
  const port = opts.port ?? (await freePort());
  const usersFile = path.join(dir, 'users');
  fs.writeFileSync(usersFile, Object.entries(opts.users).map(([u, p]) => `${u}:{PLAIN}${p}\n`).join(''), { mode: 0o644 });
  const conf = path.join(dir, 'dovecot.conf');
  renderTemplate('dovecot/dovecot.conf', conf, {
    INSTANCE_NAME: `fp-${path.basename(dir)}`,
    INSTANCE_DIR: dir,
    IMAP_PORT: port,
    MAIL_DIR: opts.mailDir,
    USERS_FILE: usersFile,
  });
  const log = (): string => readIfExists(path.join(dir, 'dovecot.log'));
  const pidFile = path.join(dir, 'run', 'master.pid');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const pid = readPid(pidFile);
    if (pid !== undefined) {
      process.kill(pid, 'SIGTERM'); // what `doveadm stop` does, without its ~3 s of waiting
      await waitPidGone(pid, 15_000);
    }
    removeTempDir(dir);
  };
  try {
    run('/usr/bin/doveconf', ['-c', conf, '-n']);
    run('/usr/sbin/dovecot', ['-c', conf], { daemon: true });
    await waitForPort(port, 10_000);
  } catch (err) {
    const text = log();
    await stop().catch(() => undefined);
    throw new Error(`dovecot did not start: ${(err as Error).message}\n--- dovecot.log ---\n${text}`);
  }
  return { dir, port, log, stop };
}

export interface ImapListing {
  count: number;
  subjects: string[];
  messageIds: string[];
}

/** Logs in, selects INBOX and returns the Subject and Message-ID of every message. */
export function imapList(port: number, user: string, pass: string, timeoutMs = 10_000): Promise<ImapListing> {
  const quote = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  const steps = [
    `LOGIN ${quote(user)} ${quote(pass)}`,
    'SELECT INBOX',
    'FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])',
    'LOGOUT',
  ];
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let buf = '';
    let step = -1; // -1: waiting for the greeting
    let exists = 0;
    const fetched: string[] = [];
    const timer = setTimeout(() => fail(new Error(`imapList: timeout; got:\n${buf}`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    const send = (): void => {
      step += 1;
      sock.write(`a${step} ${steps[step]}\r\n`);
    };
    sock.setEncoding('latin1');
    sock.on('error', fail);
    sock.on('close', () => fail(new Error(`imapList: connection closed at step ${step}`)));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (step === -1) {
        if (!buf.includes('\r\n')) return;
        if (!buf.startsWith('* OK')) return fail(new Error(`imapList: greeting ${buf}`));
        buf = '';
        send();
        return;
      }
      const tagged = new RegExp(`^a${step} (OK|NO|BAD)(.*)\\r\\n`, 'm').exec(buf);
      if (!tagged) return;
      if (tagged[1] !== 'OK') return fail(new Error(`imapList: ${steps[step]!.split(' ')[0]} -> ${tagged[1]}${tagged[2]}`));
      if (steps[step]!.startsWith('SELECT')) exists = Number(/^\* (\d+) EXISTS/m.exec(buf)?.[1] ?? 0);
      if (steps[step]!.startsWith('FETCH')) fetched.push(buf);
      buf = '';
      if (step === steps.length - 1) {
        clearTimeout(timer);
        sock.removeAllListeners('close');
        sock.end();
        const text = fetched.join('').replace(/\r\n[ \t]+/g, ' ');
        resolve({
          count: exists,
          subjects: [...text.matchAll(/^Subject: ?(.*)$/gim)].map((m) => m[1]!.trim()),
          messageIds: [...text.matchAll(/^Message-ID: ?(.*)$/gim)].map((m) => m[1]!.trim()),
        });
        return;
      }
      // FETCH 1:* on an empty mailbox is BAD in some servers: skip it
      if (steps[step + 1]!.startsWith('FETCH') && exists === 0) step += 1;
      send();
    });
  });
}
