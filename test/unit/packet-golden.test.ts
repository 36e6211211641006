/**
 * Golden packet: fixtures/packets/v1-basic was made by this codec with fixed keys. Decoding it must
 * keep working; a format change shows up here and in review. To regenerate (keys are kept):
 *   FERRYPOST_REGEN_GOLDEN=1 npx vitest run test/unit/packet-golden.test.ts
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { expect, it } from 'vitest';
import { generateNodeKey } from '../../src/keys/generate.js';
import { readPrivateKeyFile, readPublicKeyFile } from '../../src/keys/load.js';
import type { PacketHeader } from '../../src/packet/header.js';
import { CollectSink, readAll, sha256hex } from './packet-helpers.js';
import { decodePacket, encodePacket } from '../../src/packet/codec.js';
import { Readable } from 'node:stream';

const DIR = path.resolve(import.meta.dirname, '../../fixtures/packets/v1-basic');
const f = (name: string): string => path.join(DIR, name);

interface Expected {
  header: PacketHeader;
  signer: string;
  payload_file: string;
}

// Registered only when asked for, so a normal run shows no skipped test.
const regen = process.env.FERRYPOST_REGEN_GOLDEN ? it : undefined;
regen?.('regenerates the golden packet', async () => {
  for (const name of ['sender', 'recipient']) {
    if (existsSync(f(`${name}.sec.asc`))) continue;
    const k = await generateNodeKey({ name: `golden-${name}` });
    await writeFile(f(`${name}.sec.asc`), k.privateArmored);
    await writeFile(f(`${name}.pub.asc`), k.publicArmored);
  }
  const sender = await readPrivateKeyFile(f('sender.sec.asc'));
  const recipient = await readPublicKeyFile(f('recipient.pub.asc'));
  const payload = await readFile(f('payload.eml'));
  const header: PacketHeader = {
    v: 1,
    type: 'mail',
    id: 'goldenpacketvoneaaaaaaaaaa',
    from_node: sender.getFingerprint().toLowerCase(),
    to_node: recipient.getFingerprint().toLowerCase(),
    created: '2026-01-01T00:00:00.000Z',
    expires: '2026-01-31T00:00:00.000Z',
    envelope: { from: 'alice@example.org', to: ['bob@example.net', 'carol@example.net'] },
    size: payload.length,
    sha256: sha256hex(payload),
  };
  const out = await encodePacket({ header, payload, signingKey: sender, encryptionKey: recipient, compressionLevel: 6 });
  await writeFile(f('packet.pgp'), await readAll(out));
  const expected: Expected = { header, signer: header.from_node, payload_file: 'payload.eml' };
  await writeFile(f('expected.json'), `${JSON.stringify(expected, null, 2)}\n`);
});

it('decodes the golden v1 packet to the expected header and payload', async () => {
  const expected = JSON.parse(await readFile(f('expected.json'), 'utf8')) as Expected;
  const recipient = await readPrivateKeyFile(f('recipient.sec.asc'));
  const sender = await readPublicKeyFile(f('sender.pub.asc'));
  const sink = new CollectSink();
  const decoded = await decodePacket({
    input: Readable.from([await readFile(f('packet.pgp'))]),
    decryptionKey: recipient,
    verificationKeys: [sender],
    payloadSink: sink,
  });
  expect(decoded).toEqual({ header: expected.header, signer: expected.signer });
  expect(sink.bytes.equals(await readFile(f(expected.payload_file)))).toBe(true);
  // Pin the wire format, not just our own round trip: one PKESK, then SEIPDv1.
  const msg = await openpgp.readMessage({ binaryMessage: await readFile(f('packet.pgp')) });
  expect(msg.packets.map((p) => (p.constructor as { tag?: number }).tag)).toEqual([1, 18]);
});
