/**
 * The one pino logger factory. Every event has a stable name in `evt` (smtp.accepted, rx.delivered,
 * rx.quarantined, inject.tempfail, ...) and, where a packet is concerned, its `packet` id.
 * Logs go to stderr (or the configured file), never stdout, which commands use for their output.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level: string;
  file?: string | undefined;
  name?: string;
}

export function createLogger(opts: LogOptions): Logger {
  const dest = opts.file ? pino.destination({ dest: opts.file, mkdir: true, sync: false }) : pino.destination(2);
  return pino({ level: opts.level, name: opts.name ?? 'ferrypost', base: { pid: process.pid } }, dest);
}

/** A logger that drops everything: for tests and library use without a logger. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
