/**
 * A small pool of nodemailer SMTPConnections (SMTP or LMTP) for the SMTP injector: up to `max`
 * connections, each carrying one transaction at a time, reused for the next message. nodemailer's own
 * pooled transport does the same but routes every message through its Mailer, MailComposer and
 * MimeNode layers first (~1.1 ms of CPU per 4 KiB message here, against ~0.4 ms for SMTPConnection
 * alone), which the receiver does not need: it sends raw bytes with an explicit envelope. The wire
 * behaviour stays SMTPConnection's (PIPELINING, dot-stuffing, bare LF → CRLF, SMTPUTF8, LMTP replies).
 * How it fails: send() rejects with SMTPConnection's error (responseCode, command, rejectedErrors on
 * the envelope object). A connection that fails is dropped; a reused one that turns out to be closed
 * before the message went out is replaced and the message sent once more (as nodemailer's pool does).
 */
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Readable } from 'node:stream';

export interface SmtpPoolOptions {
  host: string;
  port: number;
  lmtp: boolean;
  max: number;
  timeout: number;
  heloName?: string;
}

/** What send() fills in: SMTPConnection keeps its per-recipient refusals on the envelope object. */
export interface PoolEnvelope {
  from: string;
  to: string[];
  rejectedErrors?: PoolError[];
}

export interface PoolError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: PoolError[];
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

/** Connection-level failures (no SMTP reply) before the message data went out: safe to send again. */
function closedBeforeData(err: PoolError): boolean {
  return err.responseCode === undefined && err.command !== 'DATA' && (err.code === 'ECONNECTION' || err.code === 'ESOCKET' || err.code === 'ETIMEDOUT');
}

export function createSmtpPool(opts: SmtpPoolOptions) {
  const idle: Conn[] = [];
  const waiting: Array<{ resolve: (c: Conn) => void; reject: (e: unknown) => void }> = [];
  let open = 0;
  let closed = false;

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

  function sendOn(c: Conn, envelope: PoolEnvelope, message: Buffer | Readable): Promise<PoolSendInfo> {
    c.used += 1;
    return new Promise((resolve, reject) => {
      c.smtp.send(envelope, message, (err, info) => (err ? reject(err) : resolve(info as PoolSendInfo)));
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
        try {
          const info = await sendOn(c, envelope, Buffer.isBuffer(message) ? message : message());
          release(c);
          return info;
        } catch (e) {
          const err = e as PoolError;
          afterFailure(c, err);
          if (reused && attempt === 0 && closedBeforeData(err)) {
            delete envelope.rejectedErrors;
            continue;
          }
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
