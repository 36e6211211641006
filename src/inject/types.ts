/** The narrow interface the receiver calls to hand a verified message to the next hop. */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { MailEnvelope } from '../packet/header.js';

export type RecipientStatus = 'ok' | 'temp' | 'perm';

export interface RecipientResult {
  rcpt: string;
  status: RecipientStatus;
  /** SMTP reply code if known (250, 450, 550 ...). */
  code?: number;
  /** RFC 3463 enhanced status, e.g. "5.1.1". */
  enhanced?: string;
  /** The remote's reply text or the local error, for logs and DSNs. */
  message: string;
}

export interface InjectRequest {
  envelope: MailEnvelope;
  /** Path of a file holding the exact message bytes (already verified); unused when `bytes` is set. */
  file?: string;
  /** The exact message bytes, for messages small enough to keep in memory. */
  bytes?: Uint8Array;
  size: number;
  /** Packet id, for logs and unique Maildir names. */
  packetId: string;
}

export interface Injector {
  /** Human-readable name for logs and DSNs ("smtp:127.0.0.1:25", "maildir", "sendmail"). */
  readonly name: string;
  /** One result per recipient in envelope.to, in the same order. Never throws for delivery failures. */
  inject(req: InjectRequest): Promise<RecipientResult[]>;
  /**
   * After a crash during injection: the recipients of this request the destination already holds
   * (Maildir can tell from the packet id in its file names; SMTP and sendmail cannot, and omit this).
   */
  alreadyDelivered?(req: InjectRequest): Promise<string[]>;
  close(): Promise<void>;
}

/** The message of a request as a stream: its bytes if in memory, else its file. */
export function messageStream(req: InjectRequest): Readable {
  if (req.bytes) return Readable.from([Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength)]);
  if (req.file === undefined) throw new Error('inject request has neither bytes nor a file');
  return createReadStream(req.file, { highWaterMark: 256 * 1024 }); // 256 KiB reads: fewer syscalls for large messages
}
