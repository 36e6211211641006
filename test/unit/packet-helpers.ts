/** Shared by the packet tests: key pairs, headers, encode/decode to and from buffers. */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import * as openpgp from 'openpgp';
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
