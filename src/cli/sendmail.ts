/**
 * The sendmail(8)-compatible command core: parses a getopt-style subset of sendmail's options, reads
 * the message from stdin (bytes unchanged; a lone "." never ends it, as with -i) and enqueues it.
 * Supported: -f/-r SENDER (attached or separate; "<>" or "" = null sender), -C CONFIG (the ferrypost
 * config, as sendmail's -C names its config), -i, -oi and any -oX (ignored), -B TYPE, -N DSN, -F NAME,
 * -O OPT, -bm, -v/-m/-n/-G/-U (ignored), "--", recipients (also comma-separated; commas inside a quoted
 * local part or <...> do not split). Not supported: -t (recipients from headers), other -b modes, -q.
 * Fails with an exit status (sysexits.h): 64 usage / no recipients, 65 bad address syntax (EX_DATAERR,
 * as sendmail), 67 no route, 75 temporary (store failed, disk full, anything unexpected); the reason
 * on stderr as "ferrypost sendmail: <what> (<hint>)". Postfix's pipe(8) bounces 64, 65 and 67 alike.
 */
import { hostname, userInfo } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { errorCodeOf, replyFor, SYSEXIT } from '../errors/index.js';
import { validateAddress } from '../route/router.js';
import type { Enqueue } from '../send/types.js';

export interface SendmailDeps {
  enqueue: Enqueue;
  stderr: Writable;
  /** Envelope sender when -f is not given (default: login@hostname, or <> if that is not an address). */
  defaultSender?: string;
}

export interface SendmailArgs {
  sender: string | undefined;
  recipients: string[];
  /** -C FILE: the config (the last one given). */
  config?: string;
}

export const SENDMAIL_USAGE = `usage: ferrypost [--config FILE] sendmail [-i] [-f SENDER] [-C FILE] [--] RECIPIENT...
Reads a message from stdin and queues it as packets (sendmail(8) compatible, for pipe transports).
  -f, -r SENDER  envelope sender ("" or "<>": the null sender)
  -C FILE        ferrypost config (also --config FILE; default $FERRYPOST_CONFIG, else ./ferrypost.yaml)
  -i, -oi, -oX, -B, -N, -F, -O, -bm, -v  accepted and ignored
Exit status: 0 queued, 64 usage, 65 bad address syntax, 67 no route, 75 temporary failure (retry).
`;

/** Thrown by parseSendmailArgs: a usage error (exit 64). */
export class UsageError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Options that take a value (getopt "X:"), as in Postfix's sendmail. */
const WITH_VALUE = new Set(['B', 'C', 'F', 'L', 'N', 'O', 'R', 'V', 'X', 'b', 'f', 'h', 'o', 'p', 'r']);
/** Flags accepted and ignored. */
const IGNORED_FLAGS = new Set(['i', 'm', 'n', 'v', 'G', 'U', 'I']);

export function parseSendmailArgs(argv: readonly string[]): SendmailArgs {
  let sender: string | undefined;
  let config: string | undefined;
  const recipients: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      recipients.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      recipients.push(arg);
      continue;
    }
    // A cluster like "-im" or "-fuser@x": flags until one that takes a value.
    for (let j = 1; j < arg.length; j++) {
      const opt = arg[j]!;
      if (opt === 't') throw new UsageError('-t (recipients from the message headers) is not supported', 'give the recipients as arguments');
      if (opt === 'q') throw new UsageError('-q (queue runs) is not supported', '"ferrypost flush" retries deferred incoming packets now');
      if (IGNORED_FLAGS.has(opt)) continue;
      if (!WITH_VALUE.has(opt)) throw new UsageError(`unknown option -${opt}`, 'usage: sendmail [-i] [-f sender] [--] recipient...');
      let value = arg.slice(j + 1);
      if (value === '') {
        if (i + 1 >= argv.length) throw new UsageError(`option -${opt} needs a value`, 'e.g. -f sender@example.org');
        value = argv[++i]!;
      }
      if (opt === 'f' || opt === 'r') sender = value;
      else if (opt === 'C') config = value;
      else if (opt === 'b' && value !== 'm') {
        throw new UsageError(`-b${value} is not supported`, 'only -bm (deliver a message from stdin) is');
      }
      break; // the rest of the cluster was the value
    }
  }
  const split = recipients.flatMap(splitAddressList).map((r) => r.trim()).filter((r) => r !== '');
  return { sender, recipients: split, ...(config !== undefined ? { config } : {}) };
}

/** "a@x, b@y" → two; a comma inside a quoted local part ("a,b"@x) or <...> does not split. */
export function splitAddressList(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let angle = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted && c === '\\' && i + 1 < s.length) {
      cur += c + s[++i]!;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '<') angle++;
    else if (!quoted && c === '>' && angle > 0) angle--;
    else if (!quoted && angle === 0 && c === ',') {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  out.push(cur);
  return out;
}

function defaultSender(): string {
  try {
    return validateAddress(`${userInfo().username}@${hostname()}`);
  } catch {
    return '';
  }
}

function hintFor(err: unknown): string {
  const code = errorCodeOf(err);
  switch (code) {
    case 'NO_ROUTE':
      return 'no peer in the config handles this address: check peers[].mail';
    case 'BAD_ADDRESS':
      return 'use user@domain';
    case 'DISK_FULL':
      return 'the tree or spool filesystem is full; try again later';
    case 'CONFIG':
      return 'fix the ferrypost config';
    case 'ENVELOPE_TOO_BIG':
      return 'too many recipients for one packet: send them in several messages (Postfix: ferrypost_destination_recipient_limit)';
    default:
      return replyFor(err).temporary ? 'temporary failure, nothing was queued; try again later' : code.toLowerCase();
  }
}

/** A checked command line: the envelope and the -C config, or the exit status (reason on stderr, stdin drained). */
export type SendmailCheck = { ok: true; from: string; to: string[]; config?: string } | { ok: false; exit: number };

/** Parses and validates the arguments; needs no node, so a usage error never waits for the config. */
export function checkSendmail(argv: string[], stdin: Readable, deps: Pick<SendmailDeps, 'stderr' | 'defaultSender'>): SendmailCheck {
  try {
    const args = parseSendmailArgs(argv);
    if (args.recipients.length === 0) throw new UsageError('no recipients given', 'list them after the options; -t is not supported');
    const s = args.sender ?? deps.defaultSender ?? defaultSender();
    const from = s === '' || s === '<>' ? '' : validateAddress(s);
    const to = args.recipients.map((r) => validateAddress(r));
    return { ok: true, from, to, ...(args.config !== undefined ? { config: args.config } : {}) };
  } catch (err) {
    stdin.resume();
    if (err instanceof UsageError) {
      say(deps.stderr, err.message, err.hint);
      return { ok: false, exit: SYSEXIT.USAGE };
    }
    say(deps.stderr, (err as Error).message, hintFor(err));
    // A bad address is EX_DATAERR (65), as sendmail has it; anything else from parsing is usage.
    return { ok: false, exit: errorCodeOf(err) === 'BAD_ADDRESS' ? SYSEXIT.DATAERR : SYSEXIT.USAGE };
  }
}

function say(stderr: Writable, what: string, hint: string): void {
  stderr.write(`ferrypost sendmail: ${what} (${hint})\n`);
}

export async function runSendmail(argv: string[], stdin: Readable, deps: SendmailDeps): Promise<number> {
  const checked = checkSendmail(argv, stdin, deps);
  if (!checked.ok) return checked.exit;
  return submitSendmail(checked, stdin, deps);
}

/** Queues stdin for a checked envelope: 0 only once every packet is durable. */
export async function submitSendmail(env: { from: string; to: string[] }, stdin: Readable, deps: SendmailDeps): Promise<number> {
  const { from, to } = env;
  try {
    await deps.enqueue.submit({ from, to }, stdin);
    return SYSEXIT.OK;
  } catch (err) {
    say(deps.stderr, err instanceof Error ? err.message : String(err), hintFor(err));
    return replyFor(err).sysexit;
  }
}
