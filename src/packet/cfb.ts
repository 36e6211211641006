/**
 * AES-CFB (128-bit feedback) decryption computed as ECB + XOR: P[i] = C[i] ⊕ E(C[i-1]), C[-1] = IV.
 * Every E(C[i-1]) is known from the ciphertext alone, so one ECB call over the ciphertext shifted by
 * one block gives the whole keystream, and OpenSSL runs ECB on several blocks at once (AES-NI
 * pipelining), where its CFB decryption goes block by block (the receiver's largest single cost on a
 * 100 MiB packet after hashing). Same bytes as createDecipheriv('aes-*-cfb'); tested against it.
 * Pure, no I/O. Output is held back to whole blocks: update() returns every complete block so far,
 * final() the last partial block.
 */
import { createCipheriv, type Cipher } from 'node:crypto';

const BLOCK = 16;

export class CfbDecryptor {
  private readonly ecb: Cipher;
  /** [previous ciphertext block ‖ pending ciphertext ‖ new ciphertext], reused: no garbage per chunk. */
  private scratch: Buffer = Buffer.allocUnsafeSlow(2 * BLOCK);
  /** Ciphertext bytes after `BLOCK` in scratch not yet decrypted (< BLOCK). */
  private pending = 0;

  /** `ecbName` e.g. 'aes-256-ecb'; the IV is the first feedback block. */
  constructor(ecbName: string, key: Uint8Array, iv: Uint8Array) {
    this.ecb = createCipheriv(ecbName, key, null);
    this.ecb.setAutoPadding(false);
    this.scratch.set(iv.subarray(0, BLOCK), 0);
  }

  update(ct: Uint8Array): Buffer {
    const have = this.pending + ct.length;
    if (BLOCK + have > this.scratch.length) {
      const bigger = Buffer.allocUnsafeSlow(BLOCK + have);
      this.scratch.copy(bigger, 0, 0, BLOCK + this.pending);
      this.scratch = bigger;
    }
    this.scratch.set(ct, BLOCK + this.pending);
    const n = have - (have % BLOCK);
    if (n === 0) {
      this.pending = have;
      return Buffer.alloc(0);
    }
    // Keystream for blocks 0..k-1 of this run = E(previous block, blocks 0..k-2).
    const out = this.ecb.update(this.scratch.subarray(0, n));
    xorInto(out, this.scratch, BLOCK, n);
    // Carry the last full block (next feedback) and the partial rest to the front.
    this.scratch.copyWithin(0, n, BLOCK + have);
    this.pending = have - n;
    return out;
  }

  /** The decryption of a trailing partial block (CFB needs no padding). */
  final(): Buffer {
    if (this.pending === 0) return Buffer.alloc(0);
    const ks = this.ecb.update(this.scratch.subarray(0, BLOCK));
    const out = Buffer.allocUnsafe(this.pending);
    for (let i = 0; i < this.pending; i++) out[i] = ks[i]! ^ this.scratch[BLOCK + i]!;
    this.pending = 0;
    return out;
  }
}

/** out[i] ^= src[off + i] for i < n, 4 bytes at a time (both 4-byte aligned: a fresh buffer and our scratch). */
function xorInto(out: Buffer, src: Buffer, off: number, n: number): void {
  if (out.byteOffset % 4 === 0 && (src.byteOffset + off) % 4 === 0) {
    const a = new Int32Array(out.buffer, out.byteOffset, n >> 2);
    const b = new Int32Array(src.buffer, src.byteOffset + off, n >> 2);
    for (let i = 0; i < a.length; i++) a[i]! ^= b[i]!;
    return;
  }
  for (let i = 0; i < n; i++) out[i]! ^= src[off + i]!;
}
