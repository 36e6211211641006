/**
 * The v4 fingerprint of a key file's primary key, read straight from its first packet (RFC 9580
 * §5.5.4.2: SHA-1 over 0x99, a two-octet length and the public key fields), without loading openpgp.js.
 * For commands that only need this node's id (`ferrypost queue`, `quarantine release`): loading and
 * compiling openpgp.js is ~0.1 s of a `queue` run that should stay under 1 s (docs/performance-history.md).
 * Pure, no I/O. Returns undefined for anything it does not know for certain (v5/v6 keys, unknown
 * algorithms or curves, MPIs that are not minimally encoded, several keys in one file, partial
 * lengths, armor that is not a key block or has a bad checksum, trailing bytes in a public key
 * packet): the caller then reads the key with openpgp.js, which gives the same answer or the proper
 * error.
 * It checks only the first packet, not the whole key: listing the queue needs the id, and the daemon
 * validates the key fully at start.
 */
import { createHash } from 'node:crypto';

const TAG_SECRET_KEY = 5;
const TAG_PUBLIC_KEY = 6;

/** Lowercase hex v4 fingerprint of the primary key, or undefined (see the file comment). */
export function primaryFingerprint(file: Uint8Array): string | undefined {
  const bytes = isArmored(file) ? dearmor(file) : file;
  if (!bytes) return undefined;
  const packets = packetsOf(bytes);
  const packet = packets?.[0];
  if (!packets || !packet || (packet.tag !== TAG_SECRET_KEY && packet.tag !== TAG_PUBLIC_KEY)) return undefined;
  // Several keys in one file: which one openpgp.js takes depends on what it can parse (it skips a
  // key it does not support and reads the next one), so leave the choice to it.
  if (packets.slice(1).some((q) => q.tag === TAG_SECRET_KEY || q.tag === TAG_PUBLIC_KEY)) return undefined;
  const end = publicFieldsEnd(packet.body);
  if (end === undefined) return undefined;
  // A public key packet is only its public fields; anything more is something openpgp.js should judge.
  if (packet.tag === TAG_PUBLIC_KEY && end !== packet.body.length) return undefined;
  const head = Buffer.from([0x99, end >> 8, end & 0xff]);
  return createHash('sha1').update(head).update(packet.body.subarray(0, end)).digest('hex');
}

/** Whether a key file is ASCII-armored (its first non-blank bytes open an armor block). */
export function isArmored(file: Uint8Array): boolean {
  return Buffer.from(file.buffer, file.byteOffset, Math.min(file.length, 64)).toString('latin1').trimStart().startsWith('-----BEGIN PGP');
}

/**
 * The binary of an ASCII-armored key block; undefined unless the file's first armor block is a key
 * block laid out as RFC 9580 §6.2 says (headers, a blank line, base64 lines with padding only at the
 * end, an optional CRC24 line that must match, the END line).
 */
function dearmor(file: Uint8Array): Buffer | undefined {
  const lines = Buffer.from(file.buffer, file.byteOffset, file.length).toString('latin1').split(/\r?\n/).map((l) => l.trimEnd());
  const begin = lines.findIndex((l) => l.startsWith('-----BEGIN PGP '));
  if (begin < 0 || !/^-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----$/.test(lines[begin]!)) return undefined;
  let i = begin + 1;
  while (i < lines.length && /^[A-Za-z0-9-]+: /.test(lines[i]!)) i++; // armor headers
  if (lines[i] === '') i++;
  else if (i > begin + 1) return undefined; // headers must end with a blank line
  let b64 = '';
  let crc: string | undefined;
  for (; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('-----')) break;
    if (crc !== undefined) return undefined; // nothing but the END line after the checksum
    if (l.startsWith('=') && l.length === 5) crc = l.slice(1);
    else b64 += l;
  }
  if (i === lines.length || !/^-----END PGP (PUBLIC|PRIVATE) KEY BLOCK-----$/.test(lines[i]!)) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return undefined;
  const bin = Buffer.from(b64, 'base64');
  if (crc !== undefined) {
    const want = Buffer.from(crc, 'base64');
    if (want.length !== 3 || crc24(bin) !== ((want[0]! << 16) | (want[1]! << 8) | want[2]!)) return undefined;
  }
  return bin;
}

/** RFC 9580 §6.1. */
function crc24(data: Uint8Array): number {
  let crc = 0xb704ce;
  for (const b of data) {
    crc ^= b << 16;
    for (let k = 0; k < 8; k++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

/** Tag and body of every packet (old or new format, definite lengths only); undefined if malformed. */
function packetsOf(b: Uint8Array): { tag: number; body: Uint8Array }[] | undefined {
  const out: { tag: number; body: Uint8Array }[] = [];
  for (let at = 0; at < b.length; ) {
    const b0 = b[at]!;
    if ((b0 & 0x80) === 0) return undefined;
    let tag: number;
    let len: number;
    let p: number;
    if (b0 & 0x40) {
      tag = b0 & 0x3f;
      const l0 = b[at + 1];
      if (l0 === undefined) return undefined;
      if (l0 < 192) [len, p] = [l0, at + 2];
      else if (l0 < 224) [len, p] = [((l0 - 192) << 8) + (b[at + 2] ?? NaN) + 192, at + 3];
      else if (l0 === 255) [len, p] = [readUint(b, at + 2, 4), at + 6];
      else return undefined; // a partial length: not allowed in a key
    } else {
      tag = (b0 >> 2) & 0x0f;
      const type = b0 & 3;
      if (type === 3) return undefined; // indeterminate length
      const n = 1 << type;
      [len, p] = [readUint(b, at + 1, n), at + 1 + n];
    }
    if (!Number.isFinite(len) || p + len > b.length) return undefined;
    out.push({ tag, body: b.subarray(p, p + len) });
    at = p + len;
  }
  return out;
}

function readUint(b: Uint8Array, at: number, n: number): number {
  if (at + n > b.length) return NaN;
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[at + i]!;
  return v;
}

/** Where the v4 public key fields end in a key packet body; undefined if not v4, unknown or truncated. */
function publicFieldsEnd(body: Uint8Array): number | undefined {
  if (body[0] !== 4 || body.length < 6) return undefined;
  const algo = body[5]!;
  let p: number | undefined = 6;
  const mpis = (n: number): void => {
    for (let k = 0; k < n && p !== undefined; k++) p = mpi(body, p);
  };
  switch (algo) {
    case 1: case 2: case 3: mpis(2); break; // RSA: n, e
    case 17: mpis(4); break; // DSA: p, q, g, y
    case 19: p = oid(body, p, ECDSA_CURVES); mpis(1); break; // ECDSA: curve OID, point
    case 22: p = oid(body, p, EDDSA_LEGACY_CURVES); mpis(1); break; // EdDSA (legacy): curve OID, point
    case 27: p += 32; break; // Ed25519
    case 28: p += 57; break; // Ed448
    // Encryption-only algorithms (ElGamal, ECDH, X25519, X448) cannot certify, so they are never a
    // primary key in practice; like any other algorithm, they are left to openpgp.js.
    default: return undefined;
  }
  return p !== undefined && p <= body.length ? p : undefined;
}

/**
 * Past a multiprecision integer: a two-octet bit count, then its octets. Only a minimal encoding (the
 * count is the top octet's bit length, no leading zero octet): openpgp.js re-encodes MPIs minimally
 * before it hashes them, so any other encoding would give another fingerprint here.
 */
function mpi(b: Uint8Array, p: number): number | undefined {
  if (p + 2 > b.length) return undefined;
  const bits = (b[p]! << 8) | b[p + 1]!;
  if (bits === 0) return undefined;
  const end = p + 2 + ((bits + 7) >> 3);
  if (end > b.length) return undefined;
  return 32 - Math.clz32(b[p + 2]!) === ((bits - 1) & 7) + 1 ? end : undefined;
}

/** Past a curve OID: one length octet, then the OID, which must be one of `known` (hex). */
function oid(b: Uint8Array, p: number, known: ReadonlySet<string>): number | undefined {
  const n = b[p];
  if (n === undefined || p + 1 + n > b.length) return undefined;
  return known.has(Buffer.from(b.subarray(p + 1, p + 1 + n)).toString('hex')) ? p + 1 + n : undefined;
}

/**
 * The curves openpgp.js reads for these algorithms (RFC 9580 §9.2; secp256k1 as openpgp.js has it).
 * A key on another curve is one openpgp.js skips in favour of the file's next key, or refuses.
 */
const ECDSA_CURVES: ReadonlySet<string> = new Set([
  '2a8648ce3d030107', // NIST P-256
  '2b81040022', // NIST P-384
  '2b81040023', // NIST P-521
  '2b2403030208010107', // brainpoolP256r1
  '2b240303020801010b', // brainpoolP384r1
  '2b240303020801010d', // brainpoolP512r1
  '2b8104000a', // secp256k1
]);
const EDDSA_LEGACY_CURVES: ReadonlySet<string> = new Set(['2b06010401da470f01']); // Ed25519 (legacy)
