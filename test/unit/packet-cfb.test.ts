// CFB decryption as ECB + XOR (src/packet/cfb.ts) gives exactly Node's AES-CFB bytes, for every key
// size, any chunking (empty, 1 byte, unaligned views, shared memory, not multiples of 16) and a trailing
// partial block.
import { createCipheriv, createDecipheriv, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CfbDecryptor, shiftXor } from '../../src/packet/cfb.js';

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
      // Every 4th round the ciphertext lies in shared memory, as the decrypt worker's does.
      const shift = round % 4;
      const host = round % 4 === 3 ? Buffer.from(new SharedArrayBuffer(ct.length + 3)) : Buffer.alloc(ct.length + 3);
      ct.copy(host, shift);
      const view = host.subarray(shift, shift + ct.length);
      for (let off = 0; off < view.length; ) {
        const n = Math.min(view.length - off, [0, 1, 15, 16, 17, randomInt(1, 70_000)][randomInt(0, 6)]!);
        out.push(...d.update(view.subarray(off, off + n)));
        off += n;
      }
      out.push(d.final());
      expect(Buffer.concat(out).equals(pt)).toBe(true);
    }
  });

  it('reads the ciphertext where it lies and keeps no reference to it: overwriting a chunk after update() changes nothing', () => {
    const key = randomBytes(32);
    const iv = randomBytes(16);
    const pt = randomBytes(100_003);
    const ct = createCipheriv('aes-256-cfb', key, iv).update(pt);
    const d = new CfbDecryptor('aes-256-ecb', key, iv);
    const out: Buffer[] = [];
    for (let off = 0; off < ct.length; ) {
      const n = Math.min(ct.length - off, randomInt(1, 5_000));
      const chunk = Buffer.from(ct.subarray(off, off + n));
      out.push(...d.update(chunk));
      chunk.fill(0x5a);
      off += n;
    }
    out.push(d.final());
    expect(Buffer.concat(out).equals(pt)).toBe(true);
  });

  it('shiftXor: the same result whether ECB\'s output is 4-byte aligned or not', () => {
    for (const ksOff of [0, 1, 2, 3]) {
      for (const ctOff of [0, 1, 3]) {
        const n = 16 * 37;
        const ks = randomBytes(n), ct = randomBytes(n), carry = randomBytes(16);
        const want = Buffer.alloc(n);
        for (let i = 0; i < n; i++) want[i] = (i < 16 ? carry[i]! : ks[i - 16]!) ^ ct[i]!;
        const ksHost = Buffer.alloc(n + 4), ctHost = Buffer.alloc(n + 4);
        ks.copy(ksHost, ksOff);
        ct.copy(ctHost, ctOff);
        const k = ksHost.subarray(ksOff, ksOff + n);
        // The carry too may lie at any offset (a copy taken from a pool), and is only read.
        const carryHost = Buffer.alloc(16 + 5);
        carry.copy(carryHost, ksOff + 1);
        const carryAt = carryHost.subarray(ksOff + 1, ksOff + 17);
        shiftXor(k, carryAt, ctHost.subarray(ctOff, ctOff + n), n);
        expect(k.equals(want)).toBe(true);
        expect(carryAt.equals(carry)).toBe(true);
      }
    }
  });

  it('shiftXor: ciphertext in shared memory, and a single block', () => {
    for (const n of [16, 32, 16 * 1024]) {
      const ks = randomBytes(n), carry = randomBytes(16);
      const ct = new Uint8Array(new SharedArrayBuffer(n + 8), 8, n);
      ct.set(randomBytes(n));
      const want = Buffer.alloc(n);
      for (let i = 0; i < n; i++) want[i] = (i < 16 ? carry[i]! : ks[i - 16]!) ^ ct[i]!;
      shiftXor(ks, carry, ct, n);
      expect(ks.equals(want)).toBe(true);
    }
    // One block with ECB's output at an odd offset (the unaligned branch, nothing but block 0).
    const host = Buffer.alloc(17), carry1 = randomBytes(16), ct1 = randomBytes(16);
    const ks1 = host.subarray(1);
    ks1.set(randomBytes(16));
    shiftXor(ks1, carry1, ct1, 16);
    expect(ks1.equals(Buffer.from(ct1.map((b, i) => b ^ carry1[i]!)))).toBe(true);
    expect(() => shiftXor(Buffer.alloc(32), Buffer.alloc(16), new Uint8Array(32), 24)).toThrow(RangeError);
    expect(() => shiftXor(Buffer.alloc(16), Buffer.alloc(16), new Uint8Array(32), 32)).toThrow(RangeError); // n > ks
    expect(() => shiftXor(Buffer.alloc(32), Buffer.alloc(16), new Uint8Array(16), 32)).toThrow(RangeError); // n > ct
    expect(() => shiftXor(Buffer.alloc(32), Buffer.alloc(8), new Uint8Array(32), 32)).toThrow(RangeError);
  });
});
