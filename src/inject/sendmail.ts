/**
 * sendmail injector: runs `command... -i -f SENDER -- RCPT...` with the exact message bytes on stdin
 * (null sender as `-f '<>'`, which Postfix, Exim and Sendmail all read as the null sender), at most
 * max_processes at a time.
 * How it fails: never throws. The exit status decides, taken at the exit (not when stderr closes: a
 * process the command forked may keep it open). Exit 0 → every recipient ok, but only if the command
 * read the whole message (else temp). Exit 75, a signal, a timeout while the command still runs (it is
 * killed), a spawn failure or any exit status not in the sysexits table → every recipient temp, so the
 * packet is kept. The sysexits table (as Postfix's sys_exits.c) gives perm with an enhanced code,
 * except 71 OSERR which is temp. The command's stderr (first 4 KiB, what arrived by the exit or within
 * 200 ms after) is in the message.
 */
import { spawn } from 'node:child_process';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { DeliveryConfig } from '../config/schema.js';
import { messageStream, type InjectRequest, type Injector, type RecipientResult, type RecipientStatus } from './types.js';

export type SendmailDeliveryConfig = Extract<DeliveryConfig, { method: 'sendmail' }>;

export interface SendmailInjectorOptions {
  log?: Logger;
}

const STDERR_MAX = 4096;

/** sysexits.h status → name, enhanced status, temporary? (Postfix global/sys_exits.c). */
const SYS_EXITS: Record<number, { name: string; enhanced: string; temp: boolean }> = {
  64: { name: 'USAGE', enhanced: '5.3.0', temp: false },
  65: { name: 'DATAERR', enhanced: '5.6.0', temp: false },
  66: { name: 'NOINPUT', enhanced: '5.3.0', temp: false },
  67: { name: 'NOUSER', enhanced: '5.1.1', temp: false },
  68: { name: 'NOHOST', enhanced: '5.1.2', temp: false },
  69: { name: 'UNAVAILABLE', enhanced: '5.3.0', temp: false },
  70: { name: 'SOFTWARE', enhanced: '5.3.0', temp: false },
  71: { name: 'OSERR', enhanced: '4.3.0', temp: true },
  72: { name: 'OSFILE', enhanced: '5.3.0', temp: false },
  73: { name: 'CANTCREAT', enhanced: '5.2.0', temp: false },
  74: { name: 'IOERR', enhanced: '5.3.0', temp: false },
  75: { name: 'TEMPFAIL', enhanced: '4.3.0', temp: true },
  76: { name: 'PROTOCOL', enhanced: '5.5.0', temp: false },
  77: { name: 'NOPERM', enhanced: '5.7.0', temp: false },
  78: { name: 'CONFIG', enhanced: '5.3.5', temp: false },
};

interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The timeout fired while the command was still running (and it was killed). */
  timedOut: boolean;
  /** Not all of the message reached the command's stdin (EPIPE, or the pipe never drained). */
  inputShort: boolean;
  spawnError?: Error;
  stderr: string;
}

/** After the exit, how long stderr may take to reach EOF before the result goes without the rest. */
const STDERR_GRACE_MS = 200;

/** The argv the injector runs for an envelope (exported for tests and logs). */
export function sendmailArgv(command: readonly string[], from: string, to: readonly string[]): string[] {
  return [...command, '-i', '-f', from === '' || from === '<>' ? '<>' : from, '--', ...to];
}

function run(argv: string[], req: InjectRequest, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    let stderr = Buffer.alloc(0);
    let timedOut = false;
    let done = false;
    let exit: { exitCode: number | null; signal: NodeJS.Signals | null } | undefined;
    let input: 'writing' | 'written' | 'short' = 'writing';
    let stderrEnded = false;
    let grace: NodeJS.Timeout | undefined;
    const deadline = Date.now() + timeoutMs;
    const source = messageStream(req);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
    const finish = (r: Omit<RunResult, 'stderr' | 'timedOut' | 'inputShort'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      // A child that exits before reading everything leaves pipe() paused on the file: close it, or
      // every retry of a large message would keep one more descriptor (and the unlinked work file's blocks).
      source.destroy();
      child.stdin.destroy();
      resolve({ ...r, timedOut, inputShort: input !== 'written', stderr: stderr.toString('utf8').trim() });
    };
    // The result is decided at the exit, not at 'close': a process the command forked (an MTA's
    // background delivery, a wrapper's child) may hold stdin or stderr open for minutes.
    const settle = (): void => {
      if (exit && input !== 'writing' && stderrEnded) finish(exit);
    };
    const onTimeout = (): void => {
      if (!exit) {
        timedOut = true;
        child.kill('SIGKILL');
        return;
      }
      // Exited, but the message is still not all in the pipe: a forked child holds stdin unread.
      if (input === 'writing') input = 'short';
      finish(exit);
    };
    let timer = setTimeout(onTimeout, timeoutMs);
    child.on('error', (e) => finish({ exitCode: null, signal: null, spawnError: e }));
    child.on('exit', (exitCode, signal) => {
      exit = { exitCode, signal };
      // An exit just before the deadline still gets a moment for the stdin write to report.
      if (input === 'writing' && deadline - Date.now() < STDERR_GRACE_MS) {
        clearTimeout(timer);
        timer = setTimeout(onTimeout, STDERR_GRACE_MS);
      }
      grace = setTimeout(() => {
        stderrEnded = true;
        settle();
      }, STDERR_GRACE_MS);
      settle();
    });
    // Keep draining stderr after the result (a forked child writing to a closed pipe would die of SIGPIPE).
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < STDERR_MAX) stderr = Buffer.concat([stderr, d]).subarray(0, STDERR_MAX);
    });
    child.stderr.on('end', () => {
      stderrEnded = true;
      settle();
    });
    // 'finish': every byte was handed to the pipe. An error (EPIPE: the command exited or closed
    // stdin early) means it did not read the whole message; its exit status says whether that matters.
    child.stdin.on('finish', () => {
      if (input === 'writing') input = 'written';
      settle();
    });
    const short = (): void => {
      if (input === 'writing') input = 'short';
      settle();
    };
    child.stdin.on('error', short);
    child.stdin.on('close', short);
    source.on('error', (e) => {
      child.kill('SIGKILL');
      finish({ exitCode: null, signal: null, spawnError: e });
    });
    source.pipe(child.stdin);
  });
}

function classify(r: RunResult, argv0: string): { status: RecipientStatus; code: number; enhanced: string; message: string } {
  const tail = r.stderr ? `: ${r.stderr}` : '';
  if (r.spawnError)
    return { status: 'temp', code: 451, enhanced: '4.3.0', message: `cannot run ${argv0}: ${r.spawnError.message}` };
  // A command that exited 0 by itself accepted the message, even if the timer fired in the meantime;
  // but only if it read all of it (a broken wrapper that exits 0 at once would lose it).
  if (r.exitCode === 0 && r.inputShort)
    return { status: 'temp', code: 451, enhanced: '4.3.0', message: `${argv0} exited with status 0 but did not read the whole message${tail}` };
  if (r.exitCode === 0) return { status: 'ok', code: 250, enhanced: '2.0.0', message: `${argv0} accepted the message${tail}` };
  if (r.timedOut) return { status: 'temp', code: 451, enhanced: '4.4.2', message: `${argv0} timed out and was killed${tail}` };
  if (r.signal) return { status: 'temp', code: 451, enhanced: '4.3.0', message: `${argv0} killed by ${r.signal}${tail}` };
  const e = r.exitCode === null ? undefined : SYS_EXITS[r.exitCode];
  if (!e) return { status: 'temp', code: 451, enhanced: '4.3.0', message: `${argv0} exited with unknown status ${r.exitCode}${tail}` };
  return {
    status: e.temp ? 'temp' : 'perm',
    code: e.temp ? 451 : 550,
    enhanced: e.enhanced,
    message: `${argv0} exited with status ${r.exitCode} (EX_${e.name})${tail}`,
  };
}

export function createSendmailInjector(cfg: SendmailDeliveryConfig, opts: SendmailInjectorOptions = {}): Injector {
  const queue = new PQueue({ concurrency: cfg.max_processes });
  const argv0 = cfg.command[0]!;
  return {
    name: `sendmail:${argv0}`,
    async inject(req: InjectRequest): Promise<RecipientResult[]> {
      const argv = sendmailArgv(cfg.command, req.envelope.from, req.envelope.to);
      const r = await queue.add(() => run(argv, req, cfg.timeout));
      const c = classify(r, argv0);
      if (c.status !== 'ok')
        opts.log?.warn({ evt: `inject.${c.status}fail`, packet: req.packetId, exit: r.exitCode, signal: r.signal }, c.message);
      return req.envelope.to.map((rcpt) => ({ rcpt, ...c }));
    },
    async close(): Promise<void> {
      await queue.onIdle();
    },
  };
}
