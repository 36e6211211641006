/**
 * LMTP answers the message once per recipient, and nodemailer keeps only the refusals among those
 * replies. A connection lost before the last one would then leave recipients the next hop already
 * accepted unconfirmed (retried: a duplicate), and every accepted recipient would get the last reply's
 * text. This records each 2xx, with its own reply, on the envelope object (`delivered`), the way
 * nodemailer records refusals there. It wraps a private method of SMTPConnection; the LMTP tests of
 * test/unit/inject-smtp*.test.ts fail if a nodemailer upgrade changes it.
 */
import type SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface LmtpAccept {
  recipient: string;
  response: string;
}

type LmtpAction = (recipient: string, final: boolean, str: string, callback: unknown) => unknown;

interface LmtpInternals {
  _actionLMTPStream?: LmtpAction;
  _envelope?: { delivered?: LmtpAccept[] } | false;
}

export function recordLmtpAccepts(smtp: SMTPConnection): void {
  const c = smtp as unknown as LmtpInternals;
  const original = c._actionLMTPStream;
  if (typeof original !== 'function') throw new Error('nodemailer SMTPConnection has no _actionLMTPStream: see src/inject/smtp-lmtp.ts');
  c._actionLMTPStream = function (this: LmtpInternals, recipient, final, str, callback) {
    // Before the original: on the last reply it completes the send.
    const env = this._envelope;
    if (env && /^2\d\d/.test(str)) (env.delivered ??= []).push({ recipient, response: str });
    return original.call(this, recipient, final, str, callback);
  };
}
