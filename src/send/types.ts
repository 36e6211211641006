/** The narrow interface ingest (SMTP listener, sendmail command, DSN generator) calls to enqueue mail. */
import type { Readable } from 'node:stream';
import type { MailEnvelope } from '../packet/header.js';

export interface QueuedPacket {
  /** Packet id (header.id). */
  id: string;
  peer: string;
  /** Recipient node fingerprint. */
  toNode: string;
  /** File name in TREE/<toNode>/<self>/. */
  name: string;
  path: string;
  recipients: string[];
}

export interface Enqueue {
  /**
   * Routes the recipients, writes one packet per destination node, durably (fsync + rename +
   * fsync dir) and returns only after every packet is in place. Throws FerryError NO_ROUTE if a
   * recipient has no route (nothing written), or a temporary FerryError if storing failed
   * (nothing left visible).
   */
  submit(envelope: MailEnvelope, message: Readable | Uint8Array): Promise<QueuedPacket[]>;
}
