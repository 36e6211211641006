#!/usr/bin/env -S node --max-semi-space-size=4 --expose-gc
/**
 * The `ferrypost` command. Thin entry points over the core (NNCP style): each subcommand parses its
 * options, calls one function, prints, and exits with a sysexits status. Errors print
 * "ferrypost: <what is wrong> (<how to fix>)" on stderr.
 * The interpreter line caps V8's young generation at 4 MiB per semi-space (default: grows to 16):
 * streaming a large message leaves many short-lived Buffers whose memory returns only when a
 * scavenge collects their handles; this keeps the 100 MiB peaks at ~122 MiB instead of ~128-131
 * (docs/performance-history.md). V8 reads it at start only, so whoever runs `node dist/cli/main.js` directly
 * (npm start, the benchmarks) passes the same flag.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { configPathFrom } from '../config/load.js';
import { FerryError, SYSEXIT, replyFor } from '../errors/index.js';
import { splitGlobalArgs } from './argv.js';
import { registerCommands } from './commands.js';

// `ferrypost queue | head`: the reader went away; that is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode));
  throw err;
});

async function main(argv: string[]): Promise<number> {
  // sendmail(8) syntax does not fit commander (-f addr, -oi, -- rcpts): handled on its own,
  // also when installed as a "sendmail" symlink.
  const invokedAs = path.basename(argv[1] ?? '');
  if (invokedAs === 'sendmail') return (await import('./sendmail-entry.js')).runSendmailCli(argv.slice(2));
  // Every form commander accepts for the global config (--config F, --config=F, -c F, -cF) must
  // reach the sendmail path: a form missed here would end in commander and queue nothing.
  const global = splitGlobalArgs(argv.slice(2));
  if (global.rest[0] === 'sendmail') {
    const { runSendmailCli } = await import('./sendmail-entry.js');
    return runSendmailCli(global.rest.slice(1), global.config);
  }
  const program = new Command('ferrypost')
    .description('delay-tolerant mail gateway over a synced folder')
    .option('-c, --config <file>', 'config file (default: $FERRYPOST_CONFIG, else ./ferrypost.yaml)')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .exitOverride()
    .showHelpAfterError('(run "ferrypost --help" for usage)');
  const configFile = () => configPathFrom(program.opts<{ config?: string }>().config);
  registerCommands(program, configFile);
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : SYSEXIT.USAGE;
    }
    return reportError(err);
  }
}

/** The version in package.json (dist/cli/main.js → ../../package.json, in the repository and when installed). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function reportError(err: unknown): number {
  if (err instanceof FerryError) {
    process.stderr.write(`ferrypost: ${err.message}\n`);
    return err.code === 'CONFIG' ? SYSEXIT.CONFIG : err.code === 'USAGE' ? SYSEXIT.USAGE : replyFor(err).sysexit;
  }
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`ferrypost: ${e?.message ?? String(err)}\n`);
  if (e?.code === 'ENOENT') return SYSEXIT.NOINPUT;
  if (e?.code === 'EACCES') return SYSEXIT.NOPERM;
  return SYSEXIT.SOFTWARE;
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.exitCode = reportError(err);
  },
);
