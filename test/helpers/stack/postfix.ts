// Starts a throwaway Postfix instance from deploy/postfix/{main,master}.cf (rendered, never copied):
// own config/queue/data/mail dirs under os.tmpdir(), smtpd on a free loopback port, Maildir
// delivery for localDomain, everything else to ferrypost at 127.0.0.1:ferrypostPort.
// Fails (throws) if `postfix check`/`start` fails or smtpd does not answer; the error carries the maillog.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from '../ports.js';
import { renderTemplate } from './render.js';
import { maildirMessages, readIfExists, readPid, removeTempDir, run, userIds, waitFor, waitPidGone } from './proc.js';

export interface PostfixOptions {
  /** Instance name (syslog_name postfix-NAME, temp dir prefix). */
  name: string;
  localDomain: string;
  users?: string[];
  ferrypostPort: number;
  /** Domains handed to ferrypost by transport_maps (everything else goes there via relayhost too). */
  relayDomains: string[];
  hostname?: string;
  /** smtpd port; a free one if omitted. */
  port?: number;
  /**
   * Hand relayDomains to ferrypost through the pipe(8) transport "ferrypost" (ferrypost sendmail)
   * instead of SMTP: the command (argv prefix) and the user it runs as.
   */
  pipe?: { sendmail: string; user: string };
}

export interface PostfixInstance {
  dir: string;
  etcDir: string;
  port: number;
  mailDir: string;
  /** argv for sendmail-style injection into this instance; append "-i -f SENDER -- RCPT...". */
  sendmailArgv: string[];
  maillog(): string;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  maildirFiles(user: string): string[];
  waitForMail(user: string, count: number, timeoutMs?: number): Promise<string[]>;
  /** `postqueue -p` output. */
  queue(): string;
  flush(): void;
  /** Stops Postfix, waits for master to exit, removes the instance dir (unless FERRYPOST_KEEP_STACK=1). */
  stop(): Promise<void>;
}

const POSTFIX = '/usr/sbin/postfix';

export async function startPostfix(opts: PostfixOptions): Promise<PostfixInstance> {
  const users = opts.users ?? ['alice', 'bob'];
  const port = opts.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fp-postfix-${opts.name}-`));
  fs.chmodSync(dir, 0o755); // postfix and vmail must traverse it
  const etcDir = path.join(dir, 'etc');
  const queueDir = path.join(dir, 'spool');
  const dataDir = path.join(dir, 'data');
  const mailDir = path.join(dir, 'mail');
  const maillogFile = path.join(dir, 'maillog');
  for (const d of [etcDir, queueDir, dataDir, mailDir]) fs.mkdirSync(d, { mode: 0o755 });
  const pf = userIds('postfix');
  fs.chownSync(dataDir, pf.uid, pf.gid);
  const vmail = userIds('vmail');
  fs.chownSync(mailDir, vmail.uid, vmail.gid);

  const nexthop = opts.pipe ? 'ferrypost:' : `smtp:[127.0.0.1]:${opts.ferrypostPort}`;
  const vars = {
    INSTANCE_NAME: opts.name,
    HOSTNAME: opts.hostname ?? `mx.${opts.localDomain}`,
    CONFIG_DIR: etcDir,
    QUEUE_DIR: queueDir,
    DATA_DIR: dataDir,
    MAILLOG_FILE: maillogFile,
    MAILLOG_PREFIX: dir,
    LOCAL_DOMAIN: opts.localDomain,
    MAIL_DIR: mailDir,
    VIRTUAL_MAILBOXES: users.map((u) => `${u}@${opts.localDomain}=${u}/Maildir/`).join(', '),
    RELAY_DOMAINS: opts.relayDomains.join(', '),
    TRANSPORT_ENTRIES: opts.relayDomains.flatMap((d) => [`${d}=${nexthop}`, `.${d}=${nexthop}`]).join(', '),
    FERRYPOST_PORT: opts.ferrypostPort,
    SMTPD_PORT: port,
    FERRYPOST_SENDMAIL: opts.pipe?.sendmail ?? '/usr/bin/ferrypost sendmail',
    FERRYPOST_PIPE_USER: opts.pipe?.user ?? 'nobody',
  };
  renderTemplate('postfix/main.cf', path.join(etcDir, 'main.cf'), vars);
  renderTemplate('postfix/master.cf', path.join(etcDir, 'master.cf'), vars);

  const maillog = (): string => readIfExists(maillogFile);
  const masterPidFile = path.join(queueDir, 'pid', 'master.pid');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const pid = readPid(masterPidFile);
    run(POSTFIX, ['-c', etcDir, 'stop'], { allowFail: true });
    if (pid !== undefined) await waitPidGone(pid, 15_000);
    removeTempDir(dir);
  };

  try {
    run(POSTFIX, ['-c', etcDir, 'check']);
    run(POSTFIX, ['-c', etcDir, 'start']);
    await waitForPort(port, 15_000);
  } catch (err) {
    const log = maillog();
    await stop().catch(() => undefined);
    throw new Error(`postfix ${opts.name} did not start: ${(err as Error).message}\n--- maillog ---\n${log}`);
  }

  const maildirFiles = (user: string): string[] => maildirMessages(path.join(mailDir, user, 'Maildir'));
  return {
    dir,
    etcDir,
    port,
    mailDir,
    sendmailArgv: ['/usr/sbin/sendmail', '-C', etcDir],
    maillog,
    waitForLog: (re, timeoutMs = 15_000) =>
      waitFor(`${re} in ${opts.name} maillog`, timeoutMs, () => maillog().match(re)?.[0], () => maillog().slice(-4000)),
    maildirFiles,
    waitForMail: (user, count, timeoutMs = 15_000) =>
      waitFor(`${count} message(s) for ${user} in ${opts.name}`, timeoutMs, () => {
        const f = maildirFiles(user);
        return f.length >= count ? f : undefined;
      }, () => maillog().slice(-4000)),
    queue: () => run('/usr/sbin/postqueue', ['-c', etcDir, '-p'], { allowFail: true }),
    flush: () => void run('/usr/sbin/postqueue', ['-c', etcDir, '-f']),
    stop,
  };
}
