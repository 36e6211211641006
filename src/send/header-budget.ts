/**
 * How many recipients fit in one packet: the packet header (JSON, packet/header.ts) carries the
 * envelope, and a decoder refuses a header over MAX_HEADER_BYTES. Pure. The estimate is an upper
 * bound: the fixed fields at their largest (27-character expanded-year dates, a 16-digit size) plus
 * each recipient JSON-encoded with its comma, so a recipient list that passes always encodes.
 * The SMTP listener refuses the RCPT that would cross it (452 4.5.3: the client sends the rest in
 * another transaction); Enqueue refuses a list that crosses it (ENVELOPE_TOO_BIG, permanent).
 */
import { MAX_HEADER_BYTES, type PacketHeader } from '../packet/header.js';

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

const LARGEST_FIXED: PacketHeader = {
  v: 1,
  type: 'mail',
  id: 'a'.repeat(26),
  from_node: '0'.repeat(40),
  to_node: '0'.repeat(40),
  created: '+275760-09-13T00:00:00.000Z',
  expires: '+275760-09-13T00:00:00.000Z',
  envelope: { from: '', to: [] },
  size: Number.MAX_SAFE_INTEGER,
  sha256: '0'.repeat(64),
};

/** Header bytes without any recipient, for a given envelope sender. */
export function fixedHeaderBytes(from: string): number {
  return bytes(JSON.stringify({ ...LARGEST_FIXED, envelope: { from, to: [] } }));
}

/** What one more recipient adds to the header: its JSON string and a comma. */
export function recipientHeaderBytes(rcpt: string): number {
  return bytes(JSON.stringify(rcpt)) + 1;
}

/** Upper bound of the header of a packet from `from` to these recipients. */
export function headerBytesFor(from: string, to: readonly string[]): number {
  return to.reduce((n, r) => n + recipientHeaderBytes(r), fixedHeaderBytes(from));
}

/** The limit the estimate must stay within. */
export const HEADER_BUDGET = MAX_HEADER_BYTES;
