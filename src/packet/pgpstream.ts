/**
 * OpenPGP packet framing on byte streams (RFC 4880 §4.2 / RFC 9580 §4.2): a pull-based ByteReader, a
 * packet header parser (old and new format, partial body lengths), a body iterator, and writers that
 * frame a body with a fixed or partial lengths. No crypto. Pure.
 * Fails: PgpFormatError (not a packet header, truncated input, a bad partial length); the caller maps
 * it to PACKET_DECRYPT. A source yielding something other than bytes is a TypeError.
 */

export class PgpFormatError extends Error {}

const EMPTY = new Uint8Array(0);

/** Pulls bytes from an async iterator on demand; can record what it consumed (for a replay). */
export class ByteReader {
  private buf: Uint8Array = EMPTY;
  private off = 0;
  private ended = false;
  private recording: Uint8Array[] | undefined;

  constructor(private readonly it: AsyncIterator<unknown>) {}

  startRecording(): void {
    this.recording = [];
  }

  stopRecording(): void {
    this.recording = undefined;
  }

  /** Ensures at least one unread byte is buffered; false at the end of the input. */
  private async fill(): Promise<boolean> {
    while (this.off >= this.buf.length) {
      if (this.ended) return false;
      const { value, done } = await this.it.next();
      if (done) {
        this.ended = true;
        return false;
      }
      if (!(value instanceof Uint8Array)) throw new TypeError('packet input must yield bytes, not strings');
      this.buf = value;
      this.off = 0;
    }
    return true;
  }

  private take(n: number): Uint8Array {
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += out.length;
    this.recording?.push(out);
    return out;
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }

  /** Up to max bytes (at least one), or null at the end of the input. Zero-copy. */
  async chunk(max: number): Promise<Uint8Array | null> {
    if (!(await this.fill())) return null;
    return this.take(Math.min(max, this.buf.length - this.off));
  }

  /** Exactly n bytes; PgpFormatError if the input ends first. */
  async exact(n: number): Promise<Uint8Array> {
    if (n === 0) return EMPTY;
    const first = await this.chunk(n);
    if (first === null) throw new PgpFormatError('unexpected end of packet data');
    if (first.length === n) return first;
    const out = new Uint8Array(n);
    out.set(first);
    let have = first.length;
    while (have < n) {
      const c = await this.chunk(n - have);
      if (c === null) throw new PgpFormatError('unexpected end of packet data');
      out.set(c, have);
      have += c.length;
    }
    return out;
  }

  async byte(): Promise<number> {
    return (await this.exact(1))[0]!;
  }

  /** The recorded bytes (if recording), then everything not yet read. Ends the reader's use. */
  async *replay(): AsyncGenerator<Uint8Array> {
    if (this.recording) yield* this.recording;
    this.recording = undefined;
    if (this.off < this.buf.length) yield this.buf.subarray(this.off);
    this.buf = EMPTY;
    if (this.ended) return;
    for (;;) {
      const { value, done } = await this.it.next();
      if (done) return;
      if (!(value instanceof Uint8Array)) throw new TypeError('packet input must yield bytes, not strings');
      yield value;
    }
  }
}

/** Smallest partial body length accepted (RFC 4880 §4.2.2.4's minimum for the first part). */
export const MIN_PARTIAL = 512;

export type BodyLength = { kind: 'fixed'; n: number } | { kind: 'partial'; n: number } | { kind: 'rest' };

export interface PacketHead {
  tag: number;
  length: BodyLength;
  newFormat: boolean;
}

/** The next packet header, or null at a clean end of input. */
export async function readPacketHead(r: ByteReader): Promise<PacketHead | null> {
  if (await r.atEnd()) return null;
  const b0 = await r.byte();
  if ((b0 & 0x80) === 0) throw new PgpFormatError(`not an OpenPGP packet header (0x${b0.toString(16)})`);
  if (b0 & 0x40) return { tag: b0 & 0x3f, length: await newLength(r, true), newFormat: true };
  const tag = (b0 >> 2) & 0x0f;
  const type = b0 & 3;
  if (type === 3) return { tag, length: { kind: 'rest' }, newFormat: false };
  const bytes = await r.exact(1 << type);
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return { tag, length: { kind: 'fixed', n }, newFormat: false };
}

async function newLength(r: ByteReader, allowPartial: boolean): Promise<BodyLength> {
  const o1 = await r.byte();
  if (o1 < 192) return { kind: 'fixed', n: o1 };
  if (o1 < 224) return { kind: 'fixed', n: ((o1 - 192) << 8) + (await r.byte()) + 192 };
  if (o1 === 255) {
    const b = await r.exact(4);
    return { kind: 'fixed', n: ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]! };
  }
  if (!allowPartial) throw new PgpFormatError('partial body length not allowed here');
  const n = 1 << (o1 & 0x1f);
  // RFC 4880 §4.2.2.4 asks this of the first part only, but implementations do not write smaller
  // parts later either (GnuPG 2.2: 512-8192 bytes, checked; openpgp.js buffers 512 before a part;
  // ferrypost: 1 MiB), and accepting them let a packet in 1-byte parts cost ~2 µs of CPU per byte
  // and up to ~25x its size in memory (a 900 KB message: 1.9 s, +23 MiB).
  if (n < MIN_PARTIAL) throw new PgpFormatError(`partial body length of ${n} bytes (under ${MIN_PARTIAL})`);
  return { kind: 'partial', n };
}

/** The body of a packet whose header was just read, as zero-copy chunks of at most maxChunk bytes. */
export async function* packetBody(r: ByteReader, head: PacketHead, maxChunk = 1 << 20): AsyncGenerator<Uint8Array> {
  let len = head.length;
  for (;;) {
    if (len.kind === 'rest') {
      for (let c = await r.chunk(maxChunk); c !== null; c = await r.chunk(maxChunk)) yield c;
      return;
    }
    let left = len.n;
    while (left > 0) {
      const c = await r.chunk(Math.min(left, maxChunk));
      if (c === null) throw new PgpFormatError('packet body is truncated');
      left -= c.length;
      yield c;
    }
    if (len.kind === 'fixed') return;
    len = await newLength(r, true);
  }
}

/** A new-format packet header with a fixed length (RFC 4880 §4.2.2). */
export function packetHeader(tag: number, n: number): Uint8Array {
  const b0 = 0xc0 | tag;
  if (n < 192) return Uint8Array.of(b0, n);
  if (n < 8384) return Uint8Array.of(b0, ((n - 192) >> 8) + 192, (n - 192) & 0xff);
  return Uint8Array.of(b0, 255, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

/** Partial-length part size: 2^20 (the first part must be at least 512 bytes). */
const PART_BITS = 20;
const PART = 1 << PART_BITS;

/**
 * Frames a streamed body as one packet: partial parts of 1 MiB while more than that is pending, a
 * fixed-length last part. Yields zero-copy slices of the input chunks.
 */
export async function* framePacket(tag: number, body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let first = true;
  for await (const c of body) {
    if (c.length === 0) continue;
    pending.push(c);
    pendingBytes += c.length;
    // Strictly more than a part, so the last part is never empty and always fixed-length.
    while (pendingBytes > PART) {
      yield first ? Uint8Array.of(0xc0 | tag, 224 + PART_BITS) : Uint8Array.of(224 + PART_BITS);
      first = false;
      let need = PART;
      const rest: Uint8Array[] = [];
      for (const p of pending) {
        if (need === 0) rest.push(p);
        else if (p.length <= need) {
          yield p;
          need -= p.length;
        } else {
          yield p.subarray(0, need);
          rest.push(p.subarray(need));
          need = 0;
        }
      }
      pending = rest;
      pendingBytes -= PART;
    }
  }
  const head = packetHeader(tag, pendingBytes);
  yield first ? head : head.subarray(1);
  yield* pending;
}
