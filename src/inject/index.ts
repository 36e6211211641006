/**
 * The injector factory: picks the Maildir, SMTP/LMTP or sendmail injector from the delivery config.
 * How it fails: it does not (the config was validated by the schema); delivery failures are results.
 */
import type { Logger } from 'pino';
import type { DeliveryConfig } from '../config/schema.js';
import { createMaildirInjector } from './maildir.js';
import { createSendmailInjector } from './sendmail.js';
import { createSmtpInjector } from './smtp.js';
import type { Injector } from './types.js';

export type { Injector, InjectRequest, RecipientResult, RecipientStatus } from './types.js';
export { maildirHasPacket } from './maildir.js';

export function createInjector(cfg: DeliveryConfig, opts: { hostname: string; log?: Logger }): Injector {
  const log = opts.log ? { log: opts.log } : {};
  switch (cfg.method) {
    case 'maildir':
      return createMaildirInjector(cfg, { hostname: opts.hostname, ...log });
    case 'smtp':
    case 'lmtp':
      return createSmtpInjector(cfg, log);
    case 'sendmail':
      return createSendmailInjector(cfg, log);
  }
}
