/**
 * The global options before the subcommand, read the way commander reads them (--config FILE,
 * --config=FILE, -c FILE, -cFILE), for main.ts to hand `sendmail` to its own parser with the config
 * the admin gave; and option values that need more than commander's checks. Pure: no I/O.
 */
import { parseDuration } from '../config/duration.js';
import { FerryError } from '../errors/index.js';

export interface GlobalArgs {
  /** The last --config/-c given before the subcommand, if any. */
  config?: string;
  /** The subcommand and everything after it. */
  rest: string[];
}

/** `args` without node and script (process.argv.slice(2)). Stops at the first argument that is not --config/-c. */
export function splitGlobalArgs(args: readonly string[]): GlobalArgs {
  let config: string | undefined;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--config' || a === '-c') {
      if (i + 1 >= args.length) break; // commander reports the missing value
      config = args[++i]!;
    } else if (a.startsWith('--config=')) config = a.slice('--config='.length);
    else if (a.startsWith('-c') && !a.startsWith('--')) config = a.slice(2);
    else break;
  }
  return { ...(config !== undefined ? { config } : {}), rest: args.slice(i) };
}

/**
 * `--older-than` of the irreversible deletes: a duration with its unit ("30d", "12h", "90m"), at least
 * a minute. A bare number (seconds elsewhere in ferrypost) is refused: more likely a forgotten "d".
 * Throws FerryError('USAGE') saying what to give.
 */
export function olderThanOption(value: string): number {
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) throw new FerryError('USAGE', `--older-than ${v}: give a unit (e.g. ${v}d, ${v}h, ${v}m)`);
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    throw new FerryError('USAGE', `--older-than ${JSON.stringify(value)} is not a duration (give e.g. 30d, 12h, 90m)`);
  }
  if (!(ms >= 60_000)) throw new FerryError('USAGE', `--older-than ${v}: must be at least 1m (e.g. 30d)`);
  return ms;
}
