/**
 * The one pino logger factory. Every event has a stable name in `evt` (smtp.accepted, rx.delivered,
 * rx.quarantined, inject.tempfail, ...) and, where a packet is concerned, its `packet` id.
 * Logs go to stderr (or the configured file), never stdout, which commands use for their output.
 */
import { closeSync, openSync } from 'node:fs';
import pino, { type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level: string;
  file?: string | undefined;
  name?: string;
}

export function createLogger(opts: LogOptions): Logger {
  const dest = opts.file ? pino.destination({ dest: opts.file, mkdir: true, sync: false }) : pino.destination(2);
  // The file's errors come as events (it is written asynchronously): unhandled, one would end the daemon.
  dest.on('error', (err: Error) => process.stderr.write(`ferrypost: log file ${opts.file ?? 'stderr'}: ${err.message}\n`));
  return pino({ level: opts.level, name: opts.name ?? 'ferrypost', base: { pid: process.pid } }, dest);
}

/**
 * Reopens the log file under its configured name (after logrotate renamed it: the daemon's SIGHUP,
 * as for syslogd and Postfix's postlog). No-op when logging to stderr. Throws the reopen's error.
 */
export function reopenLogFile(log: Logger): boolean {
  const stream = (log as unknown as Record<symbol, { reopen?: () => void; file?: string | null } | undefined>)[pino.symbols.streamSym];
  if (!stream?.reopen || !stream.file) return false;
  // reopen() opens asynchronously and reports a failure only as an event: try the open here first, so
  // that a file the daemon may not open (logrotate's `create` with another owner) is an error to the
  // caller, and the old file stays in use.
  closeSync(openSync(stream.file, 'a'));
  stream.reopen();
  return true;
}

/** A logger that drops everything: for tests and library use without a logger. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
