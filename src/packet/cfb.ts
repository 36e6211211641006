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
      out.push(this.decryptPartial(BLOCK));
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
    const out = this.decryptPartial(this.pending);
    this.pending = 0;
    return out;
  }

  /** The first `n` bytes of the block held in `partial`, decrypted with the carried keystream. */
  private decryptPartial(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.carry[i]! ^ this.partial[i]!;
    return out;
  }
}

/**
 * ks[j] := E(C[j-1]) ⊕ ct[j] for every block j, where E(C[j-1]) is ECB's output for the block before
 * (ks[j-1] as it was) and, for j = 0, `carry`: the plaintext, in place, going upwards with the previous
 * block's keystream held in four locals. `ct` may lie at any byte offset (read through a DataView, as
 * fast here as an aligned Int32Array); `ks` is ECB's fresh output, 4-byte aligned (any other is
 * handled through an aligned copy).
 * One loop and nothing after it, on purpose: V8 compiles this function while its first call is inside
 * the loop (on-stack replacement), before any code after the loop has run. A block-0 loop after the
 * main loop (the earlier, downward form) then had no type feedback, and the compiled code, which V8
 * keeps entering at the loop, bailed out at that point once per call: ~330 deoptimisations over a
 * daemon's first 100 MiB packet, which ran this at a third of its later speed
 * (docs/performance-history.md, "What was fixed on 2026-11-27, 09:50–10:40").
 */
export function shiftXor(ks: Buffer, carry: Buffer, ct: Uint8Array, n: number): void {
  if (n % BLOCK !== 0 || n < BLOCK || n > ks.length || n > ct.length || carry.length < BLOCK) {
    throw new RangeError(`shiftXor: ${n} bytes is not a whole number of blocks within both buffers`);
  }
  if (ks.byteOffset % 4 !== 0) {
    // Not ECB's output (a fresh allocation, always aligned): through an aligned copy, so that the
    // loop below reads `ks` as Int32s (15-35 % faster here than a DataView on it).
    const aligned = Buffer.allocUnsafeSlow(n);
    ks.copy(aligned, 0, 0, n);
    shiftXor(aligned, carry, ct, n);
    aligned.copy(ks, 0, 0, n);
    return;
  }
  const c = new DataView(ct.buffer, ct.byteOffset, n);
  const cv = new DataView(carry.buffer, carry.byteOffset, BLOCK);
  let p0 = cv.getInt32(0, LITTLE_ENDIAN);
  let p1 = cv.getInt32(4, LITTLE_ENDIAN);
  let p2 = cv.getInt32(8, LITTLE_ENDIAN);
  let p3 = cv.getInt32(12, LITTLE_ENDIAN);
  const k = new Int32Array(ks.buffer, ks.byteOffset, n >> 2);
  for (let i = 0; i < k.length; i += 4) {
    const t0 = k[i]!;
    const t1 = k[i + 1]!;
    const t2 = k[i + 2]!;
    const t3 = k[i + 3]!;
    const o = i << 2;
    k[i] = p0 ^ c.getInt32(o, LITTLE_ENDIAN);
    k[i + 1] = p1 ^ c.getInt32(o + 4, LITTLE_ENDIAN);
    k[i + 2] = p2 ^ c.getInt32(o + 8, LITTLE_ENDIAN);
    k[i + 3] = p3 ^ c.getInt32(o + 12, LITTLE_ENDIAN);
    p0 = t0;
    p1 = t1;
    p2 = t2;
    p3 = t3;
  }
}
