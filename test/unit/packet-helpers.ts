/** Shared by the packet tests: key pairs, headers, encode/decode to and from buffers. */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { deflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { isFerryError } from '../../src/errors/index.js';
import { decodePacket, encodePacket } from '../../src/packet/codec.js';
import { newPacketId, type PacketHeader } from '../../src/packet/header.js';
import { generateNodeKey } from '../../src/keys/generate.js';
import { packetHeader } from '../../src/packet/pgpstream.js';
import { seipdV1EncryptSync } from '../../src/packet/seipd.js';

export interface TestKey {
  priv: openpgp.PrivateKey;
  pub: openpgp.PublicKey;
  fpr: string;
}

export async function makeKey(name: string): Promise<TestKey> {
  const g = await generateNodeKey({ name });
  const priv = await openpgp.readPrivateKey({ armoredKey: g.privateArmored });
  return { priv, pub: priv.toPublic(), fpr: g.fingerprint };
}

export function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export function makeHeader(from: TestKey, to: TestKey, payload: Uint8Array, over: Partial<PacketHeader> = {}): PacketHeader {
  return {
    v: 1,
    type: 'mail',
    id: newPacketId(),
    from_node: from.fpr,
    to_node: to.fpr,
    created: '2026-01-01T00:00:00.000Z',
    expires: '2026-01-31T00:00:00.000Z',
    envelope: { from: 'alice@example.org', to: ['bob@example.net'] },
    size: payload.length,
    sha256: sha256hex(payload),
    ...over,
  };
}

export async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

export async function encodeToBuffer(from: TestKey, to: TestKey, payload: Uint8Array, level = 6, header?: PacketHeader): Promise<Buffer> {
  const out = await encodePacket({
    header: header ?? makeHeader(from, to, payload),
    payload,
    signingKey: from.priv,
    encryptionKey: to.pub,
    compressionLevel: level,
  });
  return readAll(out);
}

export class CollectSink extends Writable {
  chunks: Buffer[] = [];
  finished = false;
  constructor() {
    super();
    this.on('finish', () => (this.finished = true));
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(chunk);
    cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export async function decodeBuffer(packet: Uint8Array, to: TestKey, peers: TestKey[]) {
  const sink = new CollectSink();
  const result = await decodePacket({
    input: Readable.from([Buffer.from(packet)]),
    decryptionKey: to.priv,
    verificationKeys: peers.map((p) => p.pub),
    payloadSink: sink,
  });
  return { ...result, payload: sink.bytes, sinkFinished: sink.finished };
}

/** Test-only encoder: any plaintext, signed (or not) and encrypted straight with openpgp. */
export async function rawPacket(plaintext: Uint8Array, to: TestKey, signer?: TestKey): Promise<Buffer> {
  const message = await openpgp.createMessage({ binary: plaintext, format: 'binary' });
  const out = await openpgp.encrypt({
    message,
    encryptionKeys: to.pub,
    ...(signer ? { signingKeys: signer.priv } : {}),
    format: 'binary',
  });
  return Buffer.from(out);
}

export function plaintextOf(header: unknown, payload: Uint8Array, magic = 'FERRYPOST-PACKET 1'): Buffer {
  return Buffer.concat([Buffer.from(`${magic}\n${JSON.stringify(header)}\n`), payload]);
}

/** A packet whose inner packets are `inner`, encrypted to `to` (PKESK + SEIPD v1, AES-256) with a correct MDC. */
export async function sealedPacket(inner: Uint8Array, to: TestKey): Promise<Buffer> {
  const key = randomBytes(32);
  const pkesk = (await openpgp.encryptSessionKey({ data: key, algorithm: 'aes256', encryptionKeys: to.pub, format: 'binary' })) as Uint8Array;
  const body = seipdV1EncryptSync('aes256', key, inner);
  return Buffer.concat([pkesk, packetHeader(18, body.length), body]);
}

/** A decode's outcome as one string: 'ok', or "CODE: message" of its FerryError (anything else says so). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isFerryError(e) ? `${e.code}: ${e.message}` : `not a FerryError: ${String(e)}`;
  }
}

/** One OpenPGP packet: a new-format header for `tag` and `body`. */
export function pkt(tag: number, body: Uint8Array): Buffer {
  return Buffer.concat([packetHeader(tag, body.length), body]);
}

/** A ZLIB Compressed Data packet around `inner`. */
export function compressedPacket(inner: Uint8Array): Buffer {
  return pkt(8, Buffer.concat([Buffer.from([2]), deflateSync(inner)]));
}

/**
 * One-Pass Signature by `signer` (v3, EdDSA, SHA-512; sigType 0 = binary, 1 = text) ‖ Literal 'b' holding a
 * well-formed packet plaintext of `payloadBytes` ‖ a "signature" packet of `sigLen` zero bytes.
 */
export function hugeSignatureMessage(signer: TestKey, to: TestKey, sigType: number, payloadBytes: number, sigLen: number): Buffer {
  const payload = Buffer.alloc(payloadBytes, 0x61);
  const ops = Buffer.concat([Buffer.from([3, sigType, 10, 22]), Buffer.from(signer.priv.getKeyID().toHex(), 'hex'), Buffer.from([1])]);
  const literal = pkt(11, Buffer.concat([Buffer.from([0x62, 0, 0, 0, 0, 0]), plaintextOf(makeHeader(signer, to, payload), payload)]));
  const sigHead = Buffer.from([0xc2, 0xff, (sigLen >>> 24) & 255, (sigLen >> 16) & 255, (sigLen >> 8) & 255, sigLen & 255]);
  return Buffer.concat([pkt(4, ops), literal, sigHead, Buffer.alloc(sigLen)]);
}

export interface EncryptedShape {
  /** SEIPD version: 1 (what ferrypost and GnuPG 2.2 write) or 2 (AEAD, RFC 9580). Default 1. */
  version?: 1 | 2;
  /** Session key algorithm (default aes256); anything openpgp.js can encrypt with. */
  algorithm?: 'aes128' | 'aes192' | 'aes256' | 'twofish' | 'cast5' | 'blowfish' | 'tripledes';
  /** For version 2 (default ocb). */
  aeadAlgorithm?: 'ocb' | 'gcm' | 'eax';
  /** Also a password session key packet (SKESK) for each, after the PKESK. */
  passwords?: string[];
  /** Leave the PKESK out (then `passwords` are the only way in). */
  noPkesk?: boolean;
}

/**
 * Any inner packets encrypted with openpgp.js's own packet classes: PKESK (v3, or v6 for SEIPD v2) to
 * `to` and/or SKESKs, then SEIPD v1 or v2, with a correct MDC / AEAD tags. `inner` is not parsed.
 */
export async function encryptedPacket(inner: Uint8Array, to: TestKey, shape: EncryptedShape = {}): Promise<Buffer> {
  const version = shape.version ?? 1;
  const algorithm = shape.algorithm ?? 'aes256';
  const aeadAlgorithm = version === 2 ? (shape.aeadAlgorithm ?? 'ocb') : undefined;
  const keySize = { aes128: 16, aes192: 24, aes256: 32, twofish: 32, cast5: 16, blowfish: 16, tripledes: 24 }[algorithm];
  // Fresh Uint8Arrays: openpgp.js's AEAD code misreads a pooled Buffer (non-zero byteOffset) as its key or data.
  const key = new Uint8Array(randomBytes(keySize));
  const esk = (await openpgp.encryptSessionKey({
    data: key,
    algorithm,
    ...(aeadAlgorithm ? { aeadAlgorithm } : {}),
    ...(shape.noPkesk ? {} : { encryptionKeys: to.pub }),
    ...(shape.passwords ? { passwords: shape.passwords } : {}),
    format: 'binary',
  })) as Uint8Array;
  const seipd = (openpgp.SymEncryptedIntegrityProtectedDataPacket as unknown as { fromObject(o: object): SeipdPacket }).fromObject({
    version,
    aeadAlgorithm: aeadAlgorithm && openpgp.enums.aead[aeadAlgorithm],
  });
  seipd.packets = { write: () => new Uint8Array(inner) };
  await seipd.encrypt(openpgp.enums.symmetric[algorithm], key);
  const body = await bytesOf(seipd.write());
  return Buffer.concat([esk, packetHeader(18, body.length), body]);
}

interface SeipdPacket {
  packets: { write(): Uint8Array };
  encrypt(algorithm: number, key: Uint8Array): Promise<void>;
  /** SEIPD v2: openpgp.js's ArrayStream (it has a reader, like a web stream). */
  write(): Uint8Array | { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } };
}

async function bytesOf(s: ReturnType<SeipdPacket['write']>): Promise<Buffer> {
  if (s instanceof Uint8Array) return Buffer.from(s);
  const out: Uint8Array[] = [];
  const r = s.getReader();
  for (let n = await r.read(); !n.done; n = await r.read()) out.push(n.value!);
  return Buffer.concat(out);
}

/** Peak RSS growth (sampled every 5 ms, and at the end) and wall time while `run` runs. */
export async function measured<T>(run: () => Promise<T>): Promise<{ result: T; peakMiB: number; ms: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const t0 = performance.now();
  try {
    const result = await run();
    const ms = performance.now() - t0;
    return { result, peakMiB: (Math.max(peak, process.memoryUsage().rss) - base) / 2 ** 20, ms };
  } finally {
    clearInterval(timer);
  }
}
