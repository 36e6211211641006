/** Packet codec v1: round trips, tampering, wrong keys, version and header checks. */
import { randomBytes, randomInt } from 'node:crypto';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { FerryError, isFerryError, type ErrorCode } from '../../src/errors/index.js';
import { decodePacket, encodePacket } from '../../src/packet/codec.js';
import {
  CollectSink,
  decodeBuffer,
  encodeToBuffer,
  makeHeader,
  makeKey,
  plaintextOf,
  rawPacket,
  readAll,
  type TestKey,
} from './packet-helpers.js';

let alice: TestKey; // sender
let bob: TestKey; // recipient
let mallory: TestKey; // not a peer

beforeAll(async () => {
  [alice, bob, mallory] = await Promise.all([makeKey('alice'), makeKey('bob'), makeKey('mallory')]);
});

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<FerryError> {
  const err = await p.then(
    () => {
      throw new Error(`resolved, expected ${code}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FerryError);
  expect((err as FerryError).code, (err as Error).message).toBe(code);
  return err as FerryError;
}

describe('round trip', () => {
  const cases: Array<[string, () => Uint8Array, number]> = [
    ['empty payload', () => new Uint8Array(0), 6],
    ['1 byte', () => Uint8Array.of(0x2e), 6],
    ['8-bit binary, all byte values, CR/LF/NUL', () => Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) % 256), 6],
    ['5 MiB random, compressed', () => randomBytes(5 * 1024 * 1024), 6],
    ['5 MiB random, uncompressed', () => randomBytes(5 * 1024 * 1024), 0],
    // The decoder inflates small bodies in one call and streams the others (decrypt-native.ts):
    ['200 KiB of text: inflated in one call', () => Buffer.from('Subject: hi\r\n\r\n' + 'a line of text\r\n'.repeat(12_800)), 6],
    ['6 MiB of one line: small body, output over the one-call cap, streamed', () => Buffer.from(('x'.repeat(100) + '\r\n').repeat(61_681)), 6],
    ['1.5 MiB base64: body over the one-call size, streamed', () => Buffer.from(randomBytes(1024 * 1024).toString('base64')), 6],
  ];
  for (const [name, make, level] of cases) {
    it(name, async () => {
      const payload = make();
      const header = makeHeader(alice, bob, payload);
      const packet = await encodeToBuffer(alice, bob, payload, level, header);
      const out = await decodeBuffer(packet, bob, [alice, mallory]);
      expect(out.header).toEqual(header);
      expect(out.signer).toBe(alice.fpr);
      expect(out.sinkFinished).toBe(true);
      expect(Buffer.compare(out.payload, Buffer.from(payload))).toBe(0);
    });
  }

  it('compression level changes the size of compressible payloads; 0 stores them as is', async () => {
    const payload = Buffer.from('Subject: hello\r\n\r\n' + 'the same line again and again\r\n'.repeat(20_000));
    const [l0, l1, l9] = await Promise.all([0, 1, 9].map((l) => encodeToBuffer(alice, bob, payload, l)));
    expect(l0!.length).toBeGreaterThan(payload.length);
    expect(l1!.length).toBeLessThan(payload.length / 10);
    expect(l9!.length).toBeLessThanOrEqual(l1!.length);
    for (const p of [l0!, l1!, l9!]) expect((await decodeBuffer(p, bob, [alice])).payload.equals(payload)).toBe(true);
  });

  it('accepts a Node Readable payload in many small chunks', async () => {
    const payload = randomBytes(300_000);
    const parts = Array.from({ length: 300 }, (_, i) => payload.subarray(i * 1000, (i + 1) * 1000));
    const out = await encodePacket({
      header: makeHeader(alice, bob, payload),
      payload: Readable.from(parts),
      signingKey: alice.priv,
      encryptionKey: bob.pub,
      compressionLevel: 3,
    });
    const decoded = await decodeBuffer(await readAll(out), bob, [alice]);
    expect(decoded.payload.equals(payload)).toBe(true);
  });

  it('property: 50 random sizes, contents and levels', async () => {
    for (let i = 0; i < 50; i++) {
      const size = i < 5 ? i : randomInt(0, 200_000);
      const payload = i % 2 ? randomBytes(size) : Buffer.alloc(size, randomInt(0, 256));
      const level = randomInt(0, 10);
      const header = makeHeader(alice, bob, payload, { envelope: { from: i % 3 ? `s${i}@a.example` : '', to: [`r${i}@b.example`, 'x@y.example'] } });
      const packet = await encodeToBuffer(alice, bob, payload, level, header);
      const out = await decodeBuffer(packet, bob, [alice]);
      expect(out.header, `case ${i} size ${size} level ${level}`).toEqual(header);
      expect(out.payload.equals(payload), `case ${i} size ${size} level ${level}`).toBe(true);
    }
  });
});

describe('encode refuses', () => {
  it('a payload that does not match header.size/sha256 (the output stream errors)', async () => {
    const payload = randomBytes(1000);
    const header = makeHeader(alice, bob, payload, { size: 999 });
    const out = await encodePacket({ header, payload, signingKey: alice.priv, encryptionKey: bob.pub, compressionLevel: 6 });
    await expectCode(readAll(out), 'INTERNAL');
    const header2 = makeHeader(alice, bob, payload, { sha256: '0'.repeat(64) });
    const out2 = await encodePacket({ header: header2, payload, signingKey: alice.priv, encryptionKey: bob.pub, compressionLevel: 0 });
    await expectCode(readAll(out2), 'INTERNAL');
  });

  it('a payload stream that fails part way (the output stream errors, never ends)', async () => {
    const payload = randomBytes(100_000);
    async function* failing() {
      yield payload.subarray(0, 50_000);
      throw new Error('spool file vanished');
    }
    const out = await encodePacket({
      header: makeHeader(alice, bob, payload),
      payload: Readable.from(failing()),
      signingKey: alice.priv,
      encryptionKey: bob.pub,
      compressionLevel: 6,
    });
    const err = await expectCode(readAll(out), 'INTERNAL');
    expect(err.message).toContain('spool file vanished');
  });

  it('an invalid header or level before writing anything', async () => {
    const payload = randomBytes(10);
    const bad = { ...makeHeader(alice, bob, payload), id: 'NOT-AN-ID' };
    await expectCode(encodePacket({ header: bad, payload, signingKey: alice.priv, encryptionKey: bob.pub, compressionLevel: 6 }), 'PACKET_MALFORMED');
    await expectCode(
      encodePacket({ header: makeHeader(alice, bob, payload), payload, signingKey: alice.priv, encryptionKey: bob.pub, compressionLevel: 10 }),
      'INTERNAL',
    );
  });
});

describe('decode refuses', () => {
  let packet: Buffer;
  let payload: Buffer;
  beforeAll(async () => {
    payload = randomBytes(200_000);
    packet = await encodeToBuffer(alice, bob, payload, 6);
  });

  it('a packet with one byte flipped anywhere (start, session key, body, middle, last bytes)', async () => {
    const positions = [0, 1, 4, 40, 95, 100, 130, 300, Math.floor(packet.length / 2), packet.length - 30, packet.length - 22, packet.length - 2, packet.length - 1];
    for (const pos of positions) {
      const t = Buffer.from(packet);
      t[pos]! ^= 0x01;
      const err = await decodeBuffer(t, bob, [alice]).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, `flip at ${pos} of ${packet.length}`).toBeInstanceOf(FerryError);
      // Integrity is checked first: a flipped byte is never reported as a mere header problem.
      expect(['PACKET_DECRYPT', 'PACKET_BAD_SIGNATURE'], `flip at ${pos}: ${(err as Error).message}`).toContain((err as FerryError).code);
    }
  });

  it('a truncated packet', async () => {
    for (const len of [0, 1, 50, 120, Math.floor(packet.length / 2), packet.length - 22, packet.length - 1]) {
      await expectCode(decodeBuffer(packet.subarray(0, len), bob, [alice]), 'PACKET_DECRYPT');
    }
  });

  it('trailing bytes after the message', async () => {
    await expectCode(decodeBuffer(Buffer.concat([packet, Buffer.from('x')]), bob, [alice]), 'PACKET_DECRYPT');
    await expectCode(decodeBuffer(Buffer.concat([packet, packet]), bob, [alice]), 'PACKET_DECRYPT');
  });

  it('a packet encrypted to another node', async () => {
    await expectCode(decodeBuffer(packet, mallory, [alice]), 'PACKET_DECRYPT');
  });

  it('garbage and an unencrypted signed message', async () => {
    const garbage = randomBytes(5000);
    garbage[0] = 0x3f; // not a packet header (bit 7 clear): random first bytes are, 1 in 2 (the next test)
    await expectCode(decodeBuffer(garbage, bob, [alice]), 'PACKET_DECRYPT');
    const m = await (await import('openpgp')).createMessage({ binary: plaintextOf(makeHeader(alice, bob, payload), payload) });
    const signedOnly = await (await import('openpgp')).sign({ message: m, signingKeys: alice.priv, format: 'binary' });
    await expectCode(decodeBuffer(signedOnly as Uint8Array, bob, [alice]), 'PACKET_DECRYPT');
  });

  it('random garbage, whatever its first byte claims, is refused as a bad packet (quarantined), never decoded', async () => {
    // First bytes that look like packet headers lead down every refusal path: most end in
    // PACKET_DECRYPT (no session key for us, bad framing); a Marker packet anywhere among the first
    // packets is PACKET_MALFORMED (no ferrypost packet has one). Both quarantine; nothing else may come.
    for (let first = 0x80; first <= 0xff; first++) {
      for (let i = 0; i < 3; i++) {
        const garbage = randomBytes(600);
        garbage[0] = first;
        const err = await decodeBuffer(garbage, bob, [alice]).then(() => undefined, (e: unknown) => e);
        expect(err, `first byte 0x${first.toString(16)}`).toBeInstanceOf(FerryError);
        expect(['PACKET_DECRYPT', 'PACKET_MALFORMED'], `first byte 0x${first.toString(16)}: ${(err as Error).message}`).toContain((err as FerryError).code);
        if ((err as FerryError).code === 'PACKET_MALFORMED') expect((err as Error).message).toMatch(/Marker packet/);
      }
    }
  });

  it('a packet signed by a key that is not a peer, naming the key id', async () => {
    const p = await encodeToBuffer(mallory, bob, payload, 6);
    const err = await expectCode(decodeBuffer(p, bob, [alice]), 'PACKET_UNKNOWN_SIGNER');
    expect(err.message).toContain(mallory.priv.getKeyID().toHex());
  });

  it('an unsigned packet', async () => {
    const p = await rawPacket(plaintextOf(makeHeader(alice, bob, payload), payload), bob);
    await expectCode(decodeBuffer(p, bob, [alice]), 'PACKET_BAD_SIGNATURE');
  });

  it('an unknown format version (magic and header v:2)', async () => {
    const header = { ...makeHeader(alice, bob, payload), v: 2 };
    const p = await rawPacket(plaintextOf(header, payload, 'FERRYPOST-PACKET 2'), bob, alice);
    const err = await expectCode(decodeBuffer(p, bob, [alice]), 'PACKET_VERSION');
    expect(err.message).toBe('packet format version 2 is not supported by this ferrypost (supports 1)');
    const p2 = await rawPacket(plaintextOf(header, payload), bob, alice);
    await expectCode(decodeBuffer(p2, bob, [alice]), 'PACKET_VERSION');
  });

  it('a header whose size or sha256 does not match the payload', async () => {
    for (const over of [{ size: payload.length + 1 }, { size: payload.length - 1 }, { sha256: 'a'.repeat(64) }]) {
      const p = await rawPacket(plaintextOf(makeHeader(alice, bob, payload, over), payload), bob, alice);
      await expectCode(decodeBuffer(p, bob, [alice]), 'PACKET_MALFORMED');
    }
  });

  it('a payload longer than its header says: the sink never gets more than the claimed size', async () => {
    // What lets the receiver decode a message into memory by its header's claim (receive/verify.ts).
    const big = Buffer.alloc(3 << 20, 'repeated text compresses well; ');
    for (const size of [10, 1 << 20]) {
      const header = makeHeader(alice, bob, big, { size });
      const p = await rawPacket(plaintextOf(header, big), bob, alice);
      const sink = new CollectSink();
      const err = await decodePacket({ input: Readable.from([p]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: sink }).catch((e: unknown) => e);
      // Streamed (over 1 MiB): refused part way, before the signature (packet/decode.ts says which error wins).
      expect(isFerryError(err) && [err.code, err.message]).toEqual(['PACKET_MALFORMED', `payload is longer than header.size ${size} (signature not checked: refused part way through)`]);
      expect(sink.bytes.length).toBeLessThanOrEqual(size);
      expect(sink.finished).toBe(false);
    }
  });

  it('bad magic, bad JSON, invalid fields, an oversized header', async () => {
    const h = makeHeader(alice, bob, payload);
    const cases: Buffer[] = [
      plaintextOf(h, payload, 'FERRYPOST-PACKET'),
      plaintextOf(h, payload, 'SOMETHING-ELSE 1'),
      Buffer.concat([Buffer.from('FERRYPOST-PACKET 1\n{not json\n'), payload]),
      Buffer.from('FERRYPOST-PACKET 1\n'),
      Buffer.from('FERRYPOST-PACKET 1\n' + JSON.stringify(h)),
      plaintextOf({ ...h, id: 'x' }, payload),
      plaintextOf({ ...h, to_node: h.to_node.toUpperCase() }, payload),
      plaintextOf({ ...h, envelope: { from: '', to: [] } }, payload),
      plaintextOf({ ...h, envelope: { from: 'a\r\nRCPT TO:<x@y>', to: ['b@c'] } }, payload),
      plaintextOf({ ...h, created: 'yesterday' }, payload),
      plaintextOf({ ...h, extra: 1 }, payload),
      plaintextOf({ ...h, envelope: { from: '', to: ['x'.repeat(100_000)] } }, payload),
    ];
    for (const [i, plain] of cases.entries()) {
      const p = await rawPacket(plain, bob, alice);
      const err = await expectCode(decodeBuffer(p, bob, [alice]), 'PACKET_MALFORMED');
      expect(err.message.length, `case ${i}`).toBeGreaterThan(10);
    }
  });

  it('a header over maxHeaderBytes', async () => {
    const sink = new CollectSink();
    const p = await encodeToBuffer(alice, bob, payload, 1);
    await expectCode(
      decodePacket({ input: Readable.from([p]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: sink, maxHeaderBytes: 100 }),
      'PACKET_MALFORMED',
    );
    expect(sink.finished).toBe(false);
    expect(sink.destroyed).toBe(true);
  });

  it('SEIPD v2 (it went to openpgp.decrypt, bounded only by 1100:1 inflation): refused before decryption, whatever inputBytes', async () => {
    const openpgp = await import('openpgp');
    const message = await openpgp.createMessage({ binary: Buffer.alloc(8 << 20, 'x'), format: 'binary' });
    const p = Buffer.from(
      (await openpgp.encrypt({
        message,
        encryptionKeys: bob.pub,
        signingKeys: alice.priv,
        format: 'binary',
        sessionKey: { data: randomBytes(32), algorithm: 'aes256', aeadAlgorithm: 'ocb' },
        config: { preferredCompressionAlgorithm: openpgp.enums.compression.zlib },
      })) as Uint8Array,
    );
    const decode = (inputBytes?: number) =>
      decodePacket({ input: Readable.from([p]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: new CollectSink(), inputBytes });
    // More in packet-openpgp-fallback.test.ts (hostile packets, other ciphers, SKESK).
    for (const inputBytes of [p.length, 1, undefined]) {
      const err = await expectCode(decode(inputBytes), 'PACKET_MALFORMED');
      expect(err.message).toMatch(/^SEIPD v2 \(AEAD\) packets are not accepted: this node decodes SEIPD v1 only/);
    }
  });

  it('rejects with the sink error when the sink fails', async () => {
    const { Writable } = await import('node:stream');
    const failing = new Writable({
      write(_c, _e, cb) {
        const err = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        cb(err);
      },
    });
    const err = await decodePacket({ input: Readable.from([packet]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: failing }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  });
});
