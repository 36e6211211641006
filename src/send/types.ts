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
   * recipient has no route, ENVELOPE_TOO_BIG if one node's recipients do not fit in a packet header
   * (both permanent, nothing written), or a temporary FerryError if storing failed (nothing left
   * visible; see enqueue.ts for the one exception, a rollback that failed, which is logged).
   */
  submit(envelope: MailEnvelope, message: Readable | Uint8Array): Promise<QueuedPacket[]>;
}
