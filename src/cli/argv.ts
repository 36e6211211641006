/**
 * The global options before the subcommand, read the way commander reads them (--config FILE,
 * --config=FILE, -c FILE, -cFILE), for main.ts to hand `sendmail` to its own parser with the config
 * the admin gave. Pure: no I/O.
 */

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
