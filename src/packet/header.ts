/**
 * Packet header v1: the small JSON record before the payload inside the encrypted literal data.
 * See docs/packet-format.md. Pure: no I/O. parseHeader/parseMagicLine throw FerryError
 * PACKET_VERSION for a version other than 1 and PACKET_MALFORMED for anything else that is wrong.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { FerryError } from '../errors/index.js';
import { base32Lower } from './base32.js';

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

/** Largest header line (JSON, without its LF) a decoder accepts by default. */
export const MAX_HEADER_BYTES = 65_536;

/** Versions this build can decode. */
export const SUPPORTED_VERSIONS: readonly number[] = [PACKET_VERSION];

/** 128 random bits as 26 lowercase base32 characters (RFC 4648 alphabet, no padding). */
export function newPacketId(): string {
  return base32Lower(randomBytes(16));
}

/** The magic line for a version, LF included: "FERRYPOST-PACKET 1\n". */
export function magicLine(version: number = PACKET_VERSION): string {
  return `${PACKET_MAGIC} ${version}\n`;
}

export function versionError(version: number | string): FerryError {
  return new FerryError(
    'PACKET_VERSION',
    `packet format version ${version} is not supported by this ferrypost (supports ${SUPPORTED_VERSIONS.join(', ')})`,
    { detail: { version } },
  );
}

/**
 * Parses the magic line (without its LF). Returns the version if supported; PACKET_VERSION for a
 * well-formed line with another version, PACKET_MALFORMED otherwise.
 */
export function parseMagicLine(line: string): number {
  const m = /^FERRYPOST-PACKET ([1-9][0-9]{0,8})$/.exec(line);
  if (!m) {
    const shown = JSON.stringify(line.length > 40 ? `${line.slice(0, 40)}...` : line);
    throw new FerryError('PACKET_MALFORMED', `not a ferrypost packet: magic line is ${shown}, expected "${PACKET_MAGIC} ${PACKET_VERSION}"`);
  }
  const version = Number(m[1]);
  if (!SUPPORTED_VERSIONS.includes(version)) throw versionError(version);
  return version;
}

/** No C0 controls or DEL: envelope strings end up in SMTP commands and Maildir headers. */
const envelopeString = z.string().max(2048).regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');
const isoDate = z.iso.datetime({ offset: true });

const headerSchema = z
  .object({
    v: z.literal(1),
    type: z.literal('mail'),
    id: z.string().regex(/^[a-z2-7]{26}$/, 'must be 26 lowercase base32 characters'),
    from_node: z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-hex-digit lowercase fingerprint'),
    to_node: z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-hex-digit lowercase fingerprint'),
    created: isoDate,
    expires: isoDate,
    envelope: z
      .object({
        from: envelopeString,
        to: z.array(envelopeString.min(1)).min(1),
      })
      .strict(),
    size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  })
  .strict();

/**
 * Validates a decoded header object. A number in `v` other than 1 is PACKET_VERSION; every other
 * problem is PACKET_MALFORMED naming the field. Returns a fresh object (unknown keys are refused).
 */
export function parseHeader(obj: unknown): PacketHeader {
  if (obj !== null && typeof obj === 'object' && 'v' in obj) {
    const v = (obj as { v: unknown }).v;
    if (typeof v === 'number' && v !== PACKET_VERSION) throw versionError(v);
  }
  const r = headerSchema.safeParse(obj);
  if (!r.success) {
    const what = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(header)'}: ${i.message}`)
      .join('; ');
    throw new FerryError('PACKET_MALFORMED', `invalid packet header: ${what}`);
  }
  return r.data;
}
