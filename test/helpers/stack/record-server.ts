// A recording SMTP server (smtp-server) on 127.0.0.1: stands in for ferrypost's listener in
// harness tests. Keeps every message with its envelope and exact bytes. STARTTLS/AUTH are off.
// Rejects a recipient with 550 if it matches rejectRcpt; listen errors reject the start promise.
// replyDelayMs delays the 250 after the final dot like a durable write does. Known smtp-server
// limitation (3.21): once the client half-closes (Exim pipelining QUIT + shutdown after the dot)
// it writes no more replies, so a delayed 250 is lost; deploy/exim/exim.conf avoids pipelining.
import type { Socket } from 'node:net';
import { keepWritable } from '../../../src/smtp/server.js';
import { SMTPServer } from 'smtp-server';
import { waitFor } from './proc.js';

export interface RecordedMessage {
  from: string;
  to: string[];
  raw: Buffer;
  /** Name the client gave in EHLO/HELO. */
  helo: string;
}

export interface RecordServer {
  port: number;
  messages: RecordedMessage[];
  waitForMessages(count: number, timeoutMs?: number): Promise<RecordedMessage[]>;
  stop(): Promise<void>;
}

export interface RecordServerOptions {
  rejectRcpt?: RegExp;
  /** Wait this long before answering the final dot (simulates a durable write). */
  replyDelayMs?: number;
}

export async function startRecordServer(port: number, opts: RecordServerOptions = {}): Promise<RecordServer> {
  const messages: RecordedMessage[] = [];
  /** Messages whose reply is still pending (any connection): keeps half-closed sockets open for it. */
  let inData = 0;
  const server = new SMTPServer({
    // Answers after a client's pipelined QUIT + half-close, as ferrypost's listener does.
    allowHalfOpen: true,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    banner: 'record-server',
    onRcptTo(addr, _session, cb) {
      if (opts.rejectRcpt?.test(addr.address)) {
        const err = Object.assign(new Error('no such user'), { responseCode: 550 });
        cb(err);
        return;
      }
      cb();
    },
    onData(stream, session, cb) {
      inData++;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const mailFrom = session.envelope.mailFrom;
        messages.push({
          from: mailFrom ? mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          helo: session.hostNameAppearsAs,
        });
        const reply = () => {
          inData--;
          cb();
        };
        if (opts.replyDelayMs) setTimeout(reply, opts.replyDelayMs);
        else reply();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.server.on('connection', (socket: Socket) => keepWritable(socket, () => inData > 0));
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port,
    messages,
    waitForMessages: (count, timeoutMs = 15_000) =>
      waitFor(`${count} message(s) at record server :${port}`, timeoutMs, () => (messages.length >= count ? messages.slice() : undefined)),
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
