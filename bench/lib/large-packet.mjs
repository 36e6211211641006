// One large packet through the real encoder, for the decoder-only tools (decode-large, ab-input):
// keys for A and B, a header for `msg`, the packet written to `file`. `dist` holds the build's modules
// (ab-input compares builds), so they are passed in rather than imported here.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as openpgp from 'openpgp';

/** Returns A's and B's private keys (openpgp.js); B decrypts, A's public key verifies. */
export async function writeLargePacket({ generateNodeKey, encodePacket }, msg, file) {
  const [ka, kb] = await Promise.all([generateNodeKey({ name: 'a' }), generateNodeKey({ name: 'b' })]);
  const A = await openpgp.readPrivateKey({ armoredKey: ka.privateArmored });
  const B = await openpgp.readPrivateKey({ armoredKey: kb.privateArmored });
  const now = new Date();
  const header = {
    v: 1, type: 'mail', id: 'decodelargebenchaaaaaaaaaa', from_node: ka.fingerprint, to_node: kb.fingerprint,
    created: now.toISOString(), expires: new Date(now.getTime() + 864e5).toISOString(),
    envelope: { from: 'a@offline.test', to: ['b@example.org'] }, size: msg.length, sha256: crypto.createHash('sha256').update(msg).digest('hex'),
  };
  await pipeline(await encodePacket({ header, payload: Readable.from([msg]), signingKey: A, encryptionKey: B.toPublic(), compressionLevel: 6 }), fs.createWriteStream(file));
  return { A, B };
}
