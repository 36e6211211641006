/**
 * The sendmail(8)-compatible command core: parses a getopt-style subset of sendmail's options, reads
 * the message from stdin (bytes unchanged; a lone "." never ends it, as with -i) and enqueues it.
 * Supported: -f/-r SENDER (attached or separate; "<>" or "" = null sender), -i, -oi and any -oX
 * (ignored), -B TYPE, -N DSN, -F NAME, -O OPT, -bm, -v/-m/-n/-G/-U (ignored), "--", recipients
 * (also comma-separated). Not supported: -t (recipients from headers), other -b modes, -q.
 * Fails with an exit status (sysexits.h): 64 usage / no recipients / bad address, 67 no route,
 * 75 temporary (store failed, disk full, anything unexpected); the reason on stderr as
 * "ferrypost sendmail: <what> (<hint>)".
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
}

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
      if (opt === 'q') throw new UsageError('-q (queue runs) is not supported', 'ferrypost has no local queue to run');
      if (IGNORED_FLAGS.has(opt)) continue;
      if (!WITH_VALUE.has(opt)) throw new UsageError(`unknown option -${opt}`, 'usage: sendmail [-i] [-f sender] [--] recipient...');
      let value = arg.slice(j + 1);
      if (value === '') {
        if (i + 1 >= argv.length) throw new UsageError(`option -${opt} needs a value`, 'e.g. -f sender@example.org');
        value = argv[++i]!;
      }
      if (opt === 'f' || opt === 'r') sender = value;
      else if (opt === 'b' && value !== 'm') {
        throw new UsageError(`-b${value} is not supported`, 'only -bm (deliver a message from stdin) is');
      }
      break; // the rest of the cluster was the value
    }
  }
  const split = recipients.flatMap((r) => r.split(',')).map((r) => r.trim()).filter((r) => r !== '');
  return { sender, recipients: split };
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
    default:
      return replyFor(err).temporary ? 'temporary failure, nothing was queued; try again later' : code.toLowerCase();
  }
}

export async function runSendmail(argv: string[], stdin: Readable, deps: SendmailDeps): Promise<number> {
  const say = (what: string, hint: string) => deps.stderr.write(`ferrypost sendmail: ${what} (${hint})\n`);
  let args: SendmailArgs;
  let from: string;
  let to: string[];
  try {
    args = parseSendmailArgs(argv);
    if (args.recipients.length === 0) throw new UsageError('no recipients given', 'list them after the options; -t is not supported');
    const s = args.sender ?? deps.defaultSender ?? defaultSender();
    from = s === '' || s === '<>' ? '' : validateAddress(s);
    to = args.recipients.map((r) => validateAddress(r));
  } catch (err) {
    if (err instanceof UsageError) say(err.message, err.hint);
    else say((err as Error).message, hintFor(err));
    stdin.resume();
    return SYSEXIT.USAGE;
  }
  try {
    await deps.enqueue.submit({ from, to }, stdin);
    return SYSEXIT.OK;
  } catch (err) {
    say(err instanceof Error ? err.message : String(err), hintFor(err));
    return replyFor(err).sysexit;
  }
}
