// CFB decryption as ECB + XOR (src/packet/cfb.ts) gives exactly Node's AES-CFB bytes, for every key
// size, any chunking (empty, 1 byte, unaligned views, not multiples of 16) and a trailing partial block.
import { createCipheriv, createDecipheriv, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CfbDecryptor } from '../../src/packet/cfb.js';

describe('CfbDecryptor', () => {
  it.each([
    [16, 'aes-128'],
    [24, 'aes-192'],
    [32, 'aes-256'],
  ])('matches %s-byte keys (%s-cfb) over 200 random chunkings', (keyLen, name) => {
    for (let round = 0; round < 200; round++) {
      const key = randomBytes(keyLen);
      const iv = round % 2 ? randomBytes(16) : Buffer.alloc(16);
      const size = round < 20 ? round : randomInt(1, 300_000);
      const pt = randomBytes(size);
      const ct = createCipheriv(`${name}-cfb`, key, iv).update(pt);
      expect(createDecipheriv(`${name}-cfb`, key, iv).update(ct).equals(pt)).toBe(true); // the reference
      const d = new CfbDecryptor(`${name}-ecb`, key, iv);
      const out: Buffer[] = [];
      // Feed through an odd offset in a larger buffer, as chunks sliced from file reads arrive.
      const host = Buffer.alloc(ct.length + 3);
      ct.copy(host, 3);
      const view = host.subarray(3);
      for (let off = 0; off < view.length; ) {
        const n = Math.min(view.length - off, [0, 1, 15, 16, 17, randomInt(1, 70_000)][randomInt(0, 6)]!);
        out.push(d.update(view.subarray(off, off + n)));
        off += n;
      }
      out.push(d.final());
      expect(Buffer.concat(out).equals(pt)).toBe(true);
    }
  });
});
