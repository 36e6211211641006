/**
 * A small pool of nodemailer SMTPConnections (SMTP or LMTP) for the SMTP injector: up to `max`
 * connections, each carrying one transaction at a time, reused for the next message. nodemailer's own
 * pooled transport does the same but routes every message through its Mailer, MailComposer and
 * MimeNode layers first (~1.1 ms of CPU per 4 KiB message here, against ~0.4 ms for SMTPConnection
 * alone), which the receiver does not need: it sends raw bytes with an explicit envelope. The wire
 * behaviour stays SMTPConnection's (PIPELINING, dot-stuffing, bare LF and bare CR → CRLF, SMTPUTF8,
 * LMTP replies).
 * How it fails: send() rejects with SMTPConnection's error (responseCode, command, rejectedErrors on
 * the envelope object). A connection that fails is dropped; a reused one that turns out to be closed
 * before the server answered DATA with 354 is replaced and the message sent once more (as nodemailer's
 * pool does). Once the message went out, a lost reply is never retried here: the error then lists the
 * recipients the next hop may already have (`inDoubt`).
 */
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Readable } from 'node:stream';
import { recordLmtpAccepts, type LmtpAccept } from './smtp-lmtp.js';
import { TrackedBuffer, TrackedMessage, type Tracked } from './smtp-message.js';

export interface SmtpPoolOptions {
  host: string;
  port: number;
  lmtp: boolean;
  max: number;
  timeout: number;
  /**
   * Inactivity limit while waiting for the reply to the final "." (RFC 5321 4.5.3.2.6: 10 minutes): a
   * slow before-queue filter must not turn an accepted message into a retry. Default max(timeout, 600 s).
   */
  finalTimeout?: number;
  heloName?: string;
}

/** What send() fills in: SMTPConnection keeps its per-recipient refusals on the envelope object. */
export interface PoolEnvelope {
  from: string;
  to: string[];
  /** MAIL FROM parameters, used when the server announces 8BITMIME / SIZE. */
  use8BitMime?: boolean;
  size?: number;
  rejectedErrors?: PoolError[];
  /** LMTP: the recipients the server accepted after ".", each with its own reply (smtp-lmtp.ts). */
  delivered?: LmtpAccept[];
  /** Filled in by SMTPConnection: the recipients accepted at RCPT TO (minus LMTP refusals). */
  accepted?: string[];
}

export interface PoolError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: PoolError[];
  /**
   * The whole message went out and these accepted recipients got no reply to it (a timeout or a lost
   * connection after the data): the next hop may already have the message for them.
   */
  inDoubt?: string[];
}

export interface PoolSendInfo {
  accepted?: string[];
  rejected?: string[];
  rejectedErrors?: PoolError[];
  response?: string;
}

interface Conn {
  smtp: SMTPConnection;
  /** Messages sent on it: a reused connection may have been closed by the server meanwhile. */
  used: number;
  dead: boolean;
}

/**
 * Connection-level failures (no SMTP reply) before the server answered DATA with 354: the next hop has
 * nothing, so the message may go out again. nodemailer tags a drop or a timeout 'CONN' at any stage,
 * so the error alone cannot tell; the message stream can (it is read only after 354).
 */
function closedBeforeData(err: PoolError, msg: Tracked): boolean {
  return !msg.started && err.responseCode === undefined && (err.code === 'ECONNECTION' || err.code === 'ESOCKET' || err.code === 'ETIMEDOUT');
}

/**
 * The accepted recipients without a reply to the message although all of it went out. SMTP: any error
 * but the reply to "." itself (EMESSAGE); LMTP: those with neither a 2xx nor a refusal recorded.
 */
function inDoubt(err: PoolError, msg: Tracked, envelope: PoolEnvelope, lmtp: boolean): string[] {
  if (!msg.sentAll) return []; // no final ".": the next hop has no complete message
  if (!lmtp && err.code === 'EMESSAGE' && err.responseCode !== undefined) return [];
  const answered = new Set([...(envelope.delivered ?? []).map((d) => d.recipient), ...(envelope.rejectedErrors ?? []).map((e) => e.recipient)]);
  return (envelope.accepted ?? []).filter((a) => !answered.has(a));
}

/** SMTPConnection keeps its socket private; its inactivity timeout is the one to lengthen. */
function setSocketTimeout(smtp: SMTPConnection, ms: number): void {
  const socket = (smtp as unknown as { _socket?: { destroyed?: boolean; setTimeout?: (ms: number) => unknown } })._socket;
  if (socket && !socket.destroyed && typeof socket.setTimeout === 'function') socket.setTimeout(ms);
}

export function createSmtpPool(opts: SmtpPoolOptions) {
  const idle: Conn[] = [];
  const waiting: Array<{ resolve: (c: Conn) => void; reject: (e: unknown) => void }> = [];
  let open = 0;
  let closed = false;
  const finalTimeout = opts.finalTimeout ?? Math.max(opts.timeout, 600_000);

  function connect(): Promise<Conn> {
    open += 1;
    return new Promise<Conn>((resolve, reject) => {
      const smtp = new SMTPConnection({
        host: opts.host,
        port: opts.port,
        lmtp: opts.lmtp,
        secure: false,
        ignoreTLS: true,
        ...(opts.heloName ? { name: opts.heloName } : {}),
        connectionTimeout: opts.timeout,
        greetingTimeout: opts.timeout,
        socketTimeout: opts.timeout,
        logger: false,
      });
      if (opts.lmtp) recordLmtpAccepts(smtp);
      const conn: Conn = { smtp, used: 0, dead: false };
      let settled = false;
      const gone = (): void => {
        if (conn.dead) return;
        conn.dead = true;
        open -= 1;
        const i = idle.indexOf(conn);
        if (i >= 0) idle.splice(i, 1);
        // Someone waits for a connection and there is room again: open one for them.
        const w = waiting.shift();
        if (w) connect().then(w.resolve, w.reject);
      };
      // Errors also reach the send/connect callbacks; the event only marks the connection unusable.
      smtp.on('error', (err: Error) => {
        gone();
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      smtp.on('end', gone);
      smtp.connect((err) => {
        if (settled) return;
        settled = true;
        if (err) {
          gone();
          smtp.close();
          reject(err);
        } else resolve(conn);
      });
    });
  }

  function acquire(): Promise<Conn> {
    if (closed) return Promise.reject(Object.assign(new Error('SMTP pool closed'), { code: 'ECONNECTION' }));
    const c = idle.pop();
    if (c) return Promise.resolve(c);
    if (open < opts.max) return connect();
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  }

  function release(c: Conn): void {
    if (c.dead) return;
    if (closed) {
      c.smtp.quit();
      return;
    }
    const w = waiting.shift();
    if (w) w.resolve(c);
    else idle.push(c);
  }

  function drop(c: Conn): void {
    c.smtp.close();
  }

  function sendOn(c: Conn, envelope: PoolEnvelope, message: Tracked): Promise<PoolSendInfo> {
    c.used += 1;
    // All data handed over: the reply to "." (LMTP: each recipient's) may take the long timeout.
    const waitLong = (): void => setSocketTimeout(c.smtp, finalTimeout);
    message.onSent(waitLong);
    return new Promise((resolve, reject) => {
      // A TrackedBuffer is no Readable, but SMTPConnection only calls pipe() on what it is given.
      c.smtp.send(envelope, message as unknown as Readable, (err, info) => {
        message.offSent(waitLong);
        setSocketTimeout(c.smtp, opts.timeout);
        if (err) reject(err);
        else resolve(info as PoolSendInfo);
      });
    });
  }

  /** After a refused transaction the session is reset and kept (not for 421: the server is closing). */
  function afterFailure(c: Conn, err: PoolError): void {
    if (!c.dead && (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421) {
      c.smtp.reset((resetErr) => (resetErr ? drop(c) : release(c)));
    } else drop(c);
  }

  return {
    async send(envelope: PoolEnvelope, message: Buffer | (() => Readable)): Promise<PoolSendInfo> {
      for (let attempt = 0; ; attempt++) {
        const c = await acquire();
        const reused = c.used > 0;
        const msg: Tracked = Buffer.isBuffer(message) ? new TrackedBuffer(message) : new TrackedMessage(message);
        try {
          const info = await sendOn(c, envelope, msg);
          release(c);
          return info;
        } catch (e) {
          const err = e as PoolError;
          afterFailure(c, err);
          if (reused && attempt === 0 && closedBeforeData(err, msg)) {
            delete envelope.rejectedErrors;
            delete envelope.delivered;
            continue;
          }
          const doubt = inDoubt(err, msg, envelope, opts.lmtp);
          if (doubt.length) err.inDoubt = doubt;
          throw err;
        }
      }
    },
    close(): void {
      closed = true;
      for (const w of waiting.splice(0)) w.reject(Object.assign(new Error('SMTP pool closed'), { code: 'ECONNECTION' }));
      for (const c of idle.splice(0)) c.smtp.quit();
    },
  };
}

export type SmtpPool = ReturnType<typeof createSmtpPool>;
