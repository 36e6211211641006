/**
 * RFC 4648 base32, lowercase alphabet, no padding: packet ids (16 bytes → 26 chars) and packet file
 * names (sha256 → 52 chars). Pure; never fails.
 */

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

export function base32Lower(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}
