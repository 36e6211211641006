/**
 * AES-CFB (128-bit feedback) decryption computed as ECB + XOR: P[i] = C[i] ⊕ E(C[i-1]), C[-1] = IV.
 * Every E(C[i-1]) is known from the ciphertext alone, so one ECB call over a chunk's blocks gives the
 * keystream of the blocks that follow each of them, and OpenSSL runs ECB on several blocks at once
 * (AES-NI pipelining), where its CFB decryption goes block by block (the receiver's largest single
 * cost on a 100 MiB packet after hashing). Same bytes as createDecipheriv('aes-*-cfb'); tested
 * against it.
 *
 * The ciphertext is read where it lies, never copied: ECB's output for blocks 0..k-1 of a chunk is
 * the keystream of blocks 1..k, so it is shifted by one block in place while XORed with the
 * ciphertext, and its last block (the keystream of the next chunk's first block) is carried over.
 * The decrypt worker's ciphertext lies in shared memory, where a copy costs ~35 ms per 100 MiB
 * (V8 copies shared memory word by word), as much as the XOR itself.
 * Pure, no I/O. Output is held back to whole blocks: update() returns the complete blocks so far
 * (in one or two buffers), final() the last partial block.
 */
import { createCipheriv, type Cipher } from 'node:crypto';

const BLOCK = 16;
/** Int32Array is in the platform's byte order; DataView reads must use the same. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class CfbDecryptor {
  private readonly ecb: Cipher;
  /** E(last complete ciphertext block): the keystream of the next block. */
  private carry: Buffer;
  /** Ciphertext of a block not complete yet (`pending` bytes of it). */
  private readonly partial = Buffer.alloc(BLOCK);
  private pending = 0;

  /** `ecbName` e.g. 'aes-256-ecb'; the IV is the first feedback block. */
  constructor(ecbName: string, key: Uint8Array, iv: Uint8Array) {
    this.ecb = createCipheriv(ecbName, key, null);
    this.ecb.setAutoPadding(false);
    this.carry = this.ecb.update(iv.subarray(0, BLOCK));
  }

  /**
   * The plaintext of every block completed by `ct`: none, one or two buffers, in order. Reads `ct`
   * only during the call and keeps no reference to it; the buffers returned never share memory with
   * it (seipd.ts's onConsumed relies on this: the worker reuses the slot at once).
   */
  update(ct: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    let rest = ct;
    if (this.pending > 0) {
      const n = Math.min(BLOCK - this.pending, rest.length);
      this.partial.set(rest.subarray(0, n), this.pending);
      this.pending += n;
      rest = rest.subarray(n);
      if (this.pending < BLOCK) return out;
      // The completed block: its keystream is the carry; the next one's is E(this block).
      const p = Buffer.allocUnsafe(BLOCK);
      for (let i = 0; i < BLOCK; i++) p[i] = this.carry[i]! ^ this.partial[i]!;
      out.push(p);
      this.carry = this.ecb.update(this.partial);
      this.pending = 0;
    }
    const whole = rest.length - (rest.length % BLOCK);
    if (whole > 0) {
      const ks = this.ecb.update(rest.subarray(0, whole)); // E(C[0]), ..., E(C[k-1])
      const nextCarry = Buffer.from(ks.subarray(whole - BLOCK)); // copy: ks is overwritten below
      shiftXor(ks, this.carry, rest, whole);
      this.carry = nextCarry;
      out.push(ks);
    }
    const left = rest.length - whole;
    if (left > 0) {
      this.partial.set(rest.subarray(whole), 0);
      this.pending = left;
    }
    return out;
  }

  /** The decryption of a trailing partial block (CFB needs no padding). */
  final(): Buffer {
    const out = Buffer.allocUnsafe(this.pending);
    for (let i = 0; i < this.pending; i++) out[i] = this.carry[i]! ^ this.partial[i]!;
    this.pending = 0;
    return out;
  }
}

/**
 * ks[j] := ks[j-1] ⊕ ct[j] for blocks j = n/16-1 down to 1, then ks[0] := carry ⊕ ct[0]: the
 * plaintext, in place (downwards, so each ks[j-1] is read before it is overwritten). `ct` may lie at
 * any byte offset (read through a DataView, as fast here as an aligned Int32Array); `ks` is ECB's
 * fresh output, 4-byte aligned.
 */
export function shiftXor(ks: Buffer, carry: Buffer, ct: Uint8Array, n: number): void {
  if (n % BLOCK !== 0 || n < BLOCK || n > ks.length || n > ct.length) throw new RangeError(`shiftXor: ${n} bytes is not a whole number of blocks within both buffers`);
  const c = new DataView(ct.buffer, ct.byteOffset, n);
  if (ks.byteOffset % 4 === 0) {
    const k = new Int32Array(ks.buffer, ks.byteOffset, n >> 2);
    for (let i = k.length - 1; i >= 4; i--) k[i] = k[i - 4]! ^ c.getInt32(i << 2, LITTLE_ENDIAN);
  } else {
    for (let i = n - 1; i >= BLOCK; i--) ks[i] = ks[i - BLOCK]! ^ ct[i]!;
  }
  for (let i = 0; i < BLOCK; i++) ks[i] = carry[i]! ^ ct[i]!;
}
