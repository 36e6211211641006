/**
 * Splits decrypted packet plaintext into magic line, header line and payload, incrementally:
 * push() returns the payload parts of each chunk; finish() returns the header. Pure.
 * Fails with FerryError PACKET_VERSION / PACKET_MALFORMED (bad magic, header over the limit, header
 * not UTF-8 JSON or invalid, payload longer than header.size, stream ended before the payload).
 */
import { FerryError } from '../errors/index.js';
import { parseHeader, parseMagicLine, type PacketHeader } from './header.js';

/** Room for "FERRYPOST-PACKET " and a 9-digit version. */
const MAX_MAGIC_BYTES = 32;

export class PayloadFramer {
  private state: 'magic' | 'header' | 'payload' = 'magic';
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private header: PacketHeader | undefined;
  payloadBytes = 0;

  constructor(private readonly maxHeaderBytes: number) {}

  /** The header as soon as its line was parsed (before the end of the stream: not authenticated yet). */
  get headerRead(): PacketHeader | undefined {
    return this.header;
  }

  /** Feeds one chunk; returns the parts of it that are payload. */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let rest = chunk;
    while (rest.length > 0) {
      if (this.state === 'payload') {
        this.payloadBytes += rest.length;
        if (this.payloadBytes > this.header!.size) {
          throw new FerryError('PACKET_MALFORMED', `payload is longer than header.size ${this.header!.size}`);
        }
        out.push(rest);
        break;
      }
      const limit = this.state === 'magic' ? MAX_MAGIC_BYTES : this.maxHeaderBytes;
      const lf = rest.indexOf(0x0a);
      const take = lf === -1 ? rest : rest.subarray(0, lf);
      this.pendingBytes += take.length;
      if (this.pendingBytes > limit) {
        throw new FerryError(
          'PACKET_MALFORMED',
          this.state === 'magic' ? 'not a ferrypost packet: no magic line' : `packet header is longer than ${limit} bytes`,
        );
      }
      this.pending.push(take);
      if (lf === -1) break;
      this.lineDone(Buffer.concat(this.pending));
      this.pending = [];
      this.pendingBytes = 0;
      rest = rest.subarray(lf + 1);
    }
    return out;
  }

  /** The header, once the stream has ended; PACKET_MALFORMED if it ended before the payload. */
  finish(): PacketHeader {
    if (this.state !== 'payload' || !this.header) {
      throw new FerryError('PACKET_MALFORMED', `packet plaintext ended inside the ${this.state} line`);
    }
    return this.header;
  }

  private lineDone(line: Buffer): void {
    if (this.state === 'magic') {
      parseMagicLine(line.toString('latin1'));
      this.state = 'header';
      return;
    }
    let text: string;
    let obj: unknown;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(line);
    } catch {
      throw new FerryError('PACKET_MALFORMED', 'packet header is not valid UTF-8');
    }
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new FerryError('PACKET_MALFORMED', `packet header is not JSON: ${(e as Error).message}`);
    }
    this.header = parseHeader(obj);
    this.state = 'payload';
  }
}
