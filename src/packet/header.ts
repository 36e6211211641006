/**
 * Packet header v1: the small JSON record before the payload inside the encrypted literal data.
 * See docs/packet-format.md. Pure: no I/O.
 */

export const PACKET_MAGIC = 'FERRYPOST-PACKET';
export const PACKET_VERSION = 1;

export type PacketType = 'mail';

export interface MailEnvelope {
  /** Envelope sender (MAIL FROM), "" for the null sender <>. */
  from: string;
  /** Envelope recipients (RCPT TO), at least one. */
  to: string[];
}

export interface PacketHeader {
  v: 1;
  type: PacketType;
  /** Unique packet id: 26 lowercase base32 chars (128 random bits). */
  id: string;
  /** Sender node fingerprint (40 lowercase hex). */
  from_node: string;
  /** Recipient node fingerprint (40 lowercase hex). */
  to_node: string;
  /** ISO-8601 UTC timestamps. */
  created: string;
  expires: string;
  envelope: MailEnvelope;
  /** Payload length in bytes and SHA-256 (lowercase hex) of the payload bytes. */
  size: number;
  sha256: string;
}
