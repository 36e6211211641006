/**
 * The injector factory: picks the Maildir, SMTP/LMTP or sendmail injector from the delivery config.
 * Each injector's module is loaded only when chosen (nodemailer costs memory a Maildir node never needs).
 * How it fails: it does not (the config was validated by the schema); delivery failures are results.
 */
import type { Logger } from 'pino';
import type { DeliveryConfig } from '../config/schema.js';
import type { Injector } from './types.js';

export type { Injector, InjectRequest, RecipientResult, RecipientStatus } from './types.js';
export { maildirHasPacket } from './maildir.js';

export async function createInjector(cfg: DeliveryConfig, opts: { hostname: string; log?: Logger }): Promise<Injector> {
  const log = opts.log ? { log: opts.log } : {};
  switch (cfg.method) {
    case 'maildir':
      return (await import('./maildir.js')).createMaildirInjector(cfg, { hostname: opts.hostname, ...log });
    case 'smtp':
    case 'lmtp':
      return (await import('./smtp.js')).createSmtpInjector(cfg, log);
    case 'sendmail':
      return (await import('./sendmail.js')).createSendmailInjector(cfg, log);
  }
}
