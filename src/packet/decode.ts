/**
 * Packet decoder: decrypts and verifies a packet stream, checks the magic line and header, and streams
 * the payload (only) into a sink while hashing it. Memory stays bounded for any payload size: bytes
 * reach the sink BEFORE the MDC and the signature are known good. Only PKESK + SEIPD v1 + AES is
 * decrypted (decrypt-native.ts; SEIPD v2/AEAD and other ciphers are refused, PACKET_MALFORMED). Signatures by Ed25519 node keys are checked natively
 * (native/signature-verify.ts), anything else by openpgp. The promise resolves only once everything checked out and the sink has finished; on
 * rejection the sink is destroyed and its contents must be treated as garbage.
 * Fails with FerryError: PACKET_DECRYPT (not for us, corrupt, truncated, MDC, trailing bytes),
 * PACKET_UNKNOWN_SIGNER, PACKET_BAD_SIGNATURE (no, several or a failing signature), PACKET_VERSION,
 * PACKET_MALFORMED (magic, header, length, digest). A failing sink rejects with the sink's own error
 * (e.g. ENOSPC): that is a local problem, not a bad packet. Which error wins: a broken MDC over all
 * else; on the native streamed path (our own packets over 1 MiB) a packet refused part way (bad
 * header, payload past its claimed size, a signer that is not a peer, seen in the One-Pass Signature
 * before any payload) is then refused for that, its rest decrypted for the MDC but never inflated;
 * elsewhere it is read to its end and a bad signature wins over the content.
 */
import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { FerryError, isFerryError } from '../errors/index.js';
import { open, type Opened } from './decode-open.js';
import { DecryptWorkerFailure, type DecryptWorker } from './decrypt-offload.js';
import { PayloadFramer } from './framer.js';
import { MAX_HEADER_BYTES, type PacketHeader } from './header.js';
import type { KeyID, SignatureCheck } from './native/signature-verify.js';
import { finishSink, SinkFailure, SinkSlot, type PayloadSink } from './payload-sink.js';

/** What the decoder reads a packet from: its bytes, in order, and a way to stop reading early. */
export interface PacketInput extends AsyncIterable<Uint8Array> {
  destroy(): unknown;
}

export interface DecodeOptions {
  /** The packet file's bytes; destroyed when the decoder gives up (a Readable will do). */
  input: PacketInput;
  decryptionKey: openpgp.PrivateKey;
  verificationKeys: openpgp.PublicKey[]; // the configured peers' keys
  /**
   * Receives the payload bytes only, e.g. fs.createWriteStream(tmp). A function is called once, when
   * the header has been read and before any payload byte is written, so the caller can choose where
   * the payload goes from the header's claims (the receiver decodes a large message straight into its
   * Maildir temp file). That header is NOT authenticated yet: use it to pick a place, never to trust.
   */
  payloadSink: PayloadSink;
  maxHeaderBytes?: number; // default 65536
  /** Called with the size of each payload part as it goes to the sink (the daemon paces GC by it). */
  onPayloadBytes?: (n: number) => void;
  /** Decrypts and inflates large packets on a worker thread when it is free (the daemon has one). */
  decryptWorker?: DecryptWorker | undefined;
  /**
   * The packet's size in bytes, if known (the receiver knows it): with partial body lengths it decides
   * whether the packet is large enough for the decrypt worker; openpgp.verify is also told to
   * decompress at most 1100 times it (insurance: it is never given compressed data).
   */
  inputBytes?: number | undefined;
}

export interface DecodedPacket {
  header: PacketHeader;
  /** Lowercase hex fingerprint of the PRIMARY key that signed. */
  signer: string;
}

export async function decodePacket(opts: DecodeOptions): Promise<DecodedPacket> {
  const sink = new SinkSlot(opts.payloadSink);
  try {
    const result = await decodeInto(opts, sink);
    await finishSink(await sink.get(result.header));
    return result;
  } catch (e) {
    sink.destroy();
    if (e instanceof SinkFailure) throw e.error;
    throw e;
  } finally {
    sink.dispose();
  }
}

async function decodeInto(opts: DecodeOptions, sink: SinkSlot): Promise<DecodedPacket> {
  let opened: Opened;
  try {
    opened = await open(opts);
  } catch (e) {
    opts.input.destroy();
    if (e instanceof DecryptWorkerFailure || isInputError(e)) throw e; // a local problem, not a bad packet
    throw decryptError(e);
  }
  const framer = new PayloadFramer(opts.maxHeaderBytes ?? MAX_HEADER_BYTES);
  const reader = Symbol.asyncIterator in opened.data ? opened.data[Symbol.asyncIterator]() : opened.data[Symbol.iterator]();
  const hash = createHash('sha256');
  // A signer we do not know is known from the One-Pass Signature, before any payload reaches the sink.
  let contentError: FerryError | undefined = opened.drain && opened.issuerKeyID && !isKnownSigner(opened.issuerKeyID, opts.verificationKeys) ? unknownSigner(opened.issuerKeyID) : undefined;
  try {
    for (;;) {
      if (contentError && opened.drain) break; // drained below: the MDC still decides the error code
      const { value, done } = await reader.next();
      if (done) break;
      if (contentError) continue; // no drain (openpgp's path): the MDC and the signature decide the error code
      try {
        const parts = framer.push(value);
        if (parts.length === 0) continue;
        const out = await sink.get(framer.headerRead!);
        for (const part of parts) {
          hash.update(part);
          opts.onPayloadBytes?.(part.length);
          await out.write(part);
        }
      } catch (e) {
        if (e instanceof SinkFailure) throw e;
        if (!isFerryError(e)) throw e;
        contentError = e;
      }
    }
  } catch (e) {
    await Promise.resolve(reader.return?.(undefined)).catch(() => undefined);
    opts.input.destroy();
    await opened.close?.();
    if (e instanceof SinkFailure || e instanceof DecryptWorkerFailure || isInputError(e)) throw e; // local problems, not bad packets
    throw decryptError(e);
  }
  if (contentError && opened.drain) {
    try {
      await opened.drain();
    } catch (e) {
      if (e instanceof DecryptWorkerFailure || isInputError(e)) throw e;
      throw decryptError(e);
    } finally {
      opts.input.destroy(); // read to its end on success; closed either way
    }
    if (!opened.integrityChecked()) throw new FerryError('PACKET_DECRYPT', 'cannot decrypt packet: the integrity check was not reached');
    throw unverified(contentError); // the signature was not reached: the packet is refused for what was found first
  }
  if (!opened.integrityChecked()) {
    opts.input.destroy();
    await opened.close?.(); // unreachable on the native path (its data ends after the MDC); cheap insurance
    throw new FerryError('PACKET_DECRYPT', 'cannot decrypt packet: the integrity check was not reached');
  }

  const signer = await checkSignature(opened.signatures(), opts.verificationKeys);
  if (contentError) throw contentError;
  const header = framer.finish(); // PACKET_MALFORMED if the stream ended inside the magic or header
  if (framer.payloadBytes !== header.size) {
    throw new FerryError('PACKET_MALFORMED', `payload is ${framer.payloadBytes} bytes, header says ${header.size}`);
  }
  const digest = hash.digest('hex');
  if (digest !== header.sha256) {
    throw new FerryError('PACKET_MALFORMED', `payload sha256 is ${digest}, header says ${header.sha256}`);
  }
  return { header, signer };
}

/** Exactly one signature, by a key among verificationKeys, that verifies. Returns the primary fingerprint. */
async function checkSignature(signatures: SignatureCheck[], keys: openpgp.PublicKey[]): Promise<string> {
  if (signatures.length !== 1) {
    const what = signatures.length === 0 ? 'the packet is not signed' : `the packet has ${signatures.length} signatures`;
    throw new FerryError('PACKET_BAD_SIGNATURE', `${what}; exactly one signature by a peer node key is required`);
  }
  const sig = signatures[0]!;
  const keyId = sig.keyID.toHex();
  const key = keys.find((k) => k.getKeys(sig.keyID).length > 0);
  if (!key) throw unknownSigner(sig.keyID);
  const signer = key.getFingerprint().toLowerCase();
  try {
    if ((await sig.verified) !== true) throw new Error('verification did not return true');
  } catch (e) {
    throw new FerryError('PACKET_BAD_SIGNATURE', `signature by ${signer} (key id ${keyId}) does not verify: ${messageOf(e)}`, {
      cause: e,
      detail: { keyId, signer },
    });
  }
  return signer;
}

/** A refusal made before the signature could be checked: say so, so that nobody reads it as the peer's fault. */
function unverified(e: FerryError): FerryError {
  if (e.code === 'PACKET_UNKNOWN_SIGNER') return e;
  return new FerryError(e.code, `${e.message} (signature not checked: refused part way through)`, { cause: e, detail: { ...e.detail, signatureChecked: false } });
}

function isKnownSigner(keyID: KeyID, keys: openpgp.PublicKey[]): boolean {
  return keys.some((k) => k.getKeys(keyID).length > 0);
}

function unknownSigner(keyID: KeyID): FerryError {
  const keyId = keyID.toHex();
  return new FerryError('PACKET_UNKNOWN_SIGNER', `packet is signed by key id ${keyId}, which is not a configured peer key`, { detail: { keyId } });
}

/**
 * A read error of the packet file (EIO, ESTALE, …: a system errno code, as node:fs gives it, also
 * through the decrypt worker's input pump): local and maybe temporary, so the receiver retries the
 * packet instead of quarantining it. zlib's errors (Z_DATA_ERROR) and Node's own (ERR_*) have no such
 * code: they are the packet's.
 */
function isInputError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return !isFerryError(e) && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/**
 * Anything else is the packet's fault. That includes RangeError, on purpose: with the length caps
 * (signature, PKESK, inflation ratio) a packet cannot ask for a large buffer, so an allocation failure
 * is either a packet-driven one we missed (deterministic: retrying would fail, and cost, at every
 * scan, forever) or a process so short of memory that V8 is about to abort it anyway; and RangeError
 * is also what parsers throw for out-of-range offsets in hostile bytes.
 */
function decryptError(e: unknown): FerryError {
  if (isFerryError(e)) return e;
  return new FerryError('PACKET_DECRYPT', `cannot decrypt packet: ${messageOf(e)}`, { cause: e });
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
