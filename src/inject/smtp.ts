/**
 * SMTP/LMTP injector: hands the exact message bytes to the next-hop MTA over a small pool of nodemailer
 * SMTPConnections (smtp-pool.ts; many messages per connection). SMTP needs CRLF on the wire, so
 * nodemailer turns a bare LF and a bare CR into CRLF (and dot-stuffs, and ends the message with CRLF);
 * the receiving MTA stores lines, not our line endings — every other byte arrives unchanged (asserted
 * in test/unit/inject-smtp.test.ts).
 * How it fails: never throws. Per-recipient 4xx → temp, 5xx → perm (enhanced code from the reply);
 * a whole-transaction 4xx, a connection error or a timeout → every recipient temp; a whole-transaction
 * 5xx (MAIL FROM or DATA refused) → every recipient perm. A recipient without any reply → temp; if the
 * whole message had gone out, the next hop may have it anyway (`inject.possible-duplicate`). LMTP: a
 * recipient whose 2xx after "." came in is ok even if the connection is lost before the others' replies.
 */
import { domainToASCII } from 'node:url';
import type { Logger } from 'pino';
import type { DeliveryConfig } from '../config/schema.js';
import { createSmtpPool, type PoolEnvelope, type PoolError, type PoolSendInfo } from './smtp-pool.js';
import { messageStream, type InjectRequest, type Injector, type RecipientResult, type RecipientStatus } from './types.js';

export type SmtpDeliveryConfig = Extract<DeliveryConfig, { method: 'smtp' | 'lmtp' }>;

export interface SmtpInjectorOptions {
  log?: Logger;
  /** Wait for the reply to "." (default max(cfg.timeout, 600 s), smtp-pool.ts); tests shorten it. */
  finalTimeout?: number;
}

type SmtpError = PoolError;
type SendInfo = PoolSendInfo;

/** "550 5.1.1 <x>: user unknown" → "5.1.1"; undefined if the reply has no enhanced code. */
export function enhancedFromReply(reply: string | undefined): string | undefined {
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(reply ?? '');
  return m?.[1];
}

/** How nodemailer normalises an envelope address (domain lower-cased, IDNA), so replies map back. */
function addressKey(a: string): string {
  const at = a.lastIndexOf('@');
  if (at < 0) return a.trim();
  return `${a.slice(0, at).trim()}@${asciiDomain(a.slice(at + 1).trim().toLowerCase())}`;
}

/** domainToASCII is a URL host parse (~10 µs); a mail stream repeats the same few domains. */
const domainCache = new Map<string, string>();
function asciiDomain(domain: string): string {
  let v = domainCache.get(domain);
  if (v === undefined) {
    v = domainToASCII(domain) || domain;
    if (domainCache.size >= 1024) domainCache.clear();
    domainCache.set(domain, v);
  }
  return v;
}

function statusOf(code: number | undefined): RecipientStatus {
  return code !== undefined && code >= 500 && code < 600 ? 'perm' : 'temp';
}

function okFromReply(reply: string): Omit<RecipientResult, 'rcpt'> {
  return { status: 'ok', code: Number(reply.slice(0, 3)), enhanced: enhancedFromReply(reply) ?? '2.0.0', message: reply };
}

/** nodemailer refuses a message over the server's SIZE before MAIL FROM, without a reply of its own. */
function tooBigLocally(err: SmtpError): boolean {
  return err.code === 'EMESSAGE' && err.command === 'MAIL FROM' && err.responseCode === undefined;
}

function fromReply(rcpt: string, err: SmtpError): RecipientResult {
  const code = err.responseCode;
  const reply = err.response ?? err.message;
  return {
    rcpt,
    status: statusOf(code),
    ...(code !== undefined ? { code } : {}),
    enhanced: enhancedFromReply(err.response) ?? (statusOf(code) === 'perm' ? '5.0.0' : '4.0.0'),
    message: reply,
  };
}

export function createSmtpInjector(cfg: SmtpDeliveryConfig, opts: SmtpInjectorOptions = {}): Injector {
  const pool = createSmtpPool({
    host: cfg.host,
    port: cfg.port,
    lmtp: cfg.method === 'lmtp',
    max: cfg.max_connections,
    timeout: cfg.timeout,
    ...(opts.finalTimeout !== undefined ? { finalTimeout: opts.finalTimeout } : {}),
    ...(cfg.helo_name ? { heloName: cfg.helo_name } : {}),
  });
  const name = `${cfg.method}:${cfg.host}:${cfg.port}`;

  return {
    name,
    async inject(req: InjectRequest): Promise<RecipientResult[]> {
      // nodemailer de-duplicates recipients; send each key once and copy the result to duplicates.
      const keys = req.envelope.to.map(addressKey);
      const unique = [...new Set(keys)];
      const byKey = new Map<string, RecipientResult>();
      const record = (addr: string | { address: string }, r: Omit<RecipientResult, 'rcpt'>): void => {
        const k = addressKey(typeof addr === 'string' ? addr : addr.address);
        if (!byKey.has(k)) byKey.set(k, { ...r, rcpt: k });
      };
      let fallback: Omit<RecipientResult, 'rcpt'>;
      // SMTPConnection records RCPT-stage refusals on this object, also when DATA then fails; the
      // pool adds LMTP's per-recipient 2xx (delivered). SIZE= / BODY=8BITMIME only if announced.
      const envelope: PoolEnvelope = {
        from: req.envelope.from ? addressKey(req.envelope.from) : '',
        to: unique,
        use8BitMime: true,
        ...(req.size > 0 ? { size: req.size } : {}),
      };
      // LMTP: each recipient's own 2xx after "."; recorded also when the connection is lost later.
      const recordDelivered = (): void => {
        for (const d of envelope.delivered ?? []) record(d.recipient, okFromReply(d.response));
      };
      try {
        const info: SendInfo = await pool.send(
          envelope,
          req.bytes ? Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength) : () => messageStream(req),
        );
        for (const e of info.rejectedErrors ?? []) if (e.recipient) record(e.recipient, fromReply(e.recipient, e));
        recordDelivered();
        // SMTP: the one reply to "." (only a 2xx gets here; the fallback text is for safety).
        const reply = /^2\d\d/.test(info.response ?? '') ? info.response! : '250 ok';
        for (const a of info.accepted ?? []) record(a, okFromReply(reply));
        fallback = { status: 'temp', code: 451, enhanced: '4.4.0', message: `${name}: no reply for this recipient` };
      } catch (e) {
        const err = e as SmtpError;
        // After a refused MAIL FROM the (pipelined) RCPT replies are only "503 bad sequence".
        const seen = err.command === 'MAIL FROM' ? [] : (err.rejectedErrors ?? envelope.rejectedErrors ?? []);
        for (const re of seen) if (re.recipient) record(re.recipient, fromReply(re.recipient, re));
        recordDelivered();
        if (err.inDoubt?.length) {
          const msg = `${name}: ${err.message}; no reply after the message was sent, the next hop may already have it`;
          for (const a of err.inDoubt) record(a, { status: 'temp', enhanced: '4.4.1', message: msg });
          // The retry may deliver a second copy: say so where an operator looks for it.
          opts.log?.warn(
            { evt: 'inject.possible-duplicate', packet: req.packetId, injector: name, rcpts: err.inDoubt, err: err.message },
            'no reply after the message data: the next hop may already have the message, a retry may duplicate it',
          );
        }
        // A transaction-level failure (connection, MAIL FROM, DATA): applies to every other recipient.
        const tooBig = tooBigLocally(err);
        const code = tooBig ? 552 : err.code === 'EENVELOPE' && err.rejectedErrors?.length ? undefined : err.responseCode;
        const status = statusOf(code);
        fallback = {
          status,
          ...(code !== undefined ? { code } : {}),
          enhanced: enhancedFromReply(err.response) ?? (tooBig ? '5.3.4' : status === 'perm' ? '5.0.0' : '4.4.1'),
          message: `${name}: ${err.message}`,
        };
        opts.log?.warn(
          { evt: status === 'perm' ? 'inject.failed' : 'inject.tempfail', packet: req.packetId, injector: name, err: err.message, command: err.command },
          'smtp transaction failed',
        );
      }
      return req.envelope.to.map((rcpt, i) => ({ ...(byKey.get(keys[i]!) ?? fallback), rcpt }));
    },
    async close(): Promise<void> {
      pool.close();
    },
  };
}
