/** The narrow interface the receiver calls to hand a verified message to the next hop. */
import { createReadStream } from 'node:fs';
import { pipeline, Readable, Transform, type Writable } from 'node:stream';
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
  /** Called with the size of each chunk read from `file` (the daemon paces GC by it: memory/gc-pacer.ts). */
  onBytes?: ((n: number) => void) | undefined;
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
  /**
   * Optional, for large messages: a place where the receiver writes the message once and which then
   * becomes the delivery itself (Maildir: a file in tmp/, renamed into new/ by commit), instead of a
   * work file that inject() copies. Resolves undefined when this request cannot be staged (Maildir:
   * several maildirs, or a recipient that inject() would refuse); the caller then uses inject().
   */
  stage?(req: StageRequest): Promise<StagedDelivery | undefined>;
  close(): Promise<void>;
}

/** What stage() needs before the message bytes exist (from the packet header). */
export interface StageRequest {
  envelope: MailEnvelope;
  size: number;
  packetId: string;
}

/**
 * A message being written straight into its destination, invisible to readers until commit().
 * The caller writes the exact message bytes to `sink` and ends it ('finish': written and fsync'd),
 * checks everything, then calls commit() (or discard() if anything failed). discard() is always safe:
 * before, during or after the writing, more than once, and after commit() (then it does nothing).
 */
export interface StagedDelivery {
  readonly sink: Writable;
  /** The recipients commit() delivers to (those of the StageRequest). */
  readonly recipients: string[];
  /** The message's header block (dsn/headers.ts rules), for a DSN; available once the sink finished. */
  headerBlock(): Buffer;
  /** Publishes the staged copy (durably); one result per recipient, 'ok' or 'temp', never throws. */
  commit(): Promise<RecipientResult[]>;
  discard(): Promise<void>;
}

/** The message of a request as a stream: its bytes if in memory, else its file (counted for onBytes). */
export function messageStream(req: InjectRequest): Readable {
  if (req.bytes) return Readable.from([Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength)]);
  if (req.file === undefined) throw new Error('inject request has neither bytes nor a file');
  const file = createReadStream(req.file, { highWaterMark: 256 * 1024 }); // 256 KiB reads: fewer syscalls for large messages
  const onBytes = req.onBytes;
  if (!onBytes) return file;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  // pipeline: a read error reaches the consumer as an error of `counted`; destroying `counted` closes the file.
  pipeline(file, counted, () => undefined);
  return counted;
}
