/**
 * Bounds what openpgp.verify may buffer from a message the native path decrypted (and inflated) but
 * left to openpgp.js (decode-open.ts: text mode, several signatures, other signer keys). openpgp.js
 * streams Literal Data but reads every other packet whole into memory, whatever length it claims:
 * a "signature" of 4 GiB of zeros, inflated 1030:1 from a 4 MB packet, took the daemon down. So,
 * walking the packet headers only (no copy, the bytes pass through unchanged): Literal Data may have
 * any length; any other packet must have a fixed length of at most MAX_SIGNATURE_PACKET_BYTES; and a
 * Compressed Data packet (one nested in the one inflated natively: openpgp.js would inflate it, up to
 * 1100:1, and buffer what is in it) is refused, as no OpenPGP implementation writes one there.
 * Fails: PgpFormatError (the caller maps it to PACKET_DECRYPT).
 */
import { MAX_SIGNATURE_PACKET_BYTES } from './native/signature-verify.js';
import { MIN_PARTIAL, PgpFormatError } from './pgpstream.js';

const TAG_COMPRESSED = 8;
const TAG_LITERAL = 11;

type Length = { kind: 'fixed' | 'partial'; n: number } | { kind: 'rest' };

/** Checks the packet headers of a byte stream as it passes, chunk by chunk. */
export class InnerPacketGuard {
  /** Bytes left in the current body part. */
  private left = 0;
  /** The current packet's body runs to the end of the data (old format, indeterminate length). */
  private rest = false;
  /** The next header is a partial body's next length (no tag octet). */
  private lengthOnly = false;
  private head: number[] = [];

  /** Throws PgpFormatError at the first header that is not allowed. */
  push(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length && !this.rest) {
      if (this.left > 0) {
        const k = Math.min(this.left, chunk.length - p);
        this.left -= k;
        p += k;
        continue;
      }
      this.head.push(chunk[p++]!);
      const h = this.lengthOnly ? { tag: TAG_LITERAL, length: lengthOf(this.head, 0) } : parseHead(this.head);
      if (!h?.length) continue; // more header octets to come
      this.head = [];
      allow(h.tag, h.length);
      if (h.length.kind === 'rest') this.rest = true;
      else {
        this.left = h.length.n;
        this.lengthOnly = h.length.kind === 'partial';
      }
    }
  }
}

/** `input`, unchanged, refused (PgpFormatError) at the first packet openpgp.js would buffer unbounded. */
export async function* guardedForOpenpgp(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const guard = new InnerPacketGuard();
  for await (const c of input) {
    guard.push(c);
    yield c;
  }
}

function allow(tag: number, length: Length): void {
  if (tag === TAG_LITERAL) {
    if (length.kind === 'partial' && length.n < MIN_PARTIAL) throw new PgpFormatError(`partial body length of ${length.n} bytes (under ${MIN_PARTIAL})`);
    return;
  }
  if (tag === TAG_COMPRESSED) throw new PgpFormatError('compressed data inside the decrypted, inflated data (nested compression)');
  if (length.kind !== 'fixed') throw new PgpFormatError(`packet (tag ${tag}) with a ${length.kind === 'rest' ? 'indeterminate' : 'partial'} length in the signed message`);
  if (length.n > MAX_SIGNATURE_PACKET_BYTES) throw new PgpFormatError(`packet (tag ${tag}) of ${length.n} bytes in the signed message (at most ${MAX_SIGNATURE_PACKET_BYTES})`);
}

/** Tag and length from the octets so far; length undefined while incomplete. */
function parseHead(b: number[]): { tag: number; length: Length | undefined } {
  const b0 = b[0]!;
  if ((b0 & 0x80) === 0) throw new PgpFormatError(`not an OpenPGP packet header (0x${b0.toString(16)})`);
  if (b0 & 0x40) return { tag: b0 & 0x3f, length: lengthOf(b, 1) };
  const tag = (b0 >> 2) & 0x0f;
  const type = b0 & 3;
  if (type === 3) return { tag, length: { kind: 'rest' } };
  const k = 1 << type;
  if (b.length < 1 + k) return { tag, length: undefined };
  let n = 0;
  for (let i = 1; i <= k; i++) n = n * 256 + b[i]!;
  return { tag, length: { kind: 'fixed', n } };
}

/** A new-format length starting at b[at]; undefined while incomplete. */
function lengthOf(b: number[], at: number): Length | undefined {
  if (b.length <= at) return undefined;
  const o1 = b[at]!;
  if (o1 < 192) return { kind: 'fixed', n: o1 };
  if (o1 < 224) return b.length < at + 2 ? undefined : { kind: 'fixed', n: ((o1 - 192) << 8) + b[at + 1]! + 192 };
  if (o1 === 255) return b.length < at + 5 ? undefined : { kind: 'fixed', n: b[at + 1]! * 2 ** 24 + (b[at + 2]! << 16) + (b[at + 3]! << 8) + b[at + 4]! };
  return { kind: 'partial', n: 1 << (o1 & 0x1f) };
}
