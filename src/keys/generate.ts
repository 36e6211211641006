/**
 * Node key generation: a v4 Ed25519 primary key (sign, certify) with a Curve25519 encryption subkey,
 * no expiry, readable by GnuPG 2.2. Fails only with openpgp's own Error (e.g. an email openpgp
 * refuses); the CLI validates the node name first.
 */
import * as openpgp from 'openpgp';

export interface GeneratedNodeKey {
  privateArmored: string;
  publicArmored: string;
  /** Lowercase hex, 40 characters. */
  fingerprint: string;
}

export async function generateNodeKey(opts: { name: string; email?: string; passphrase?: string }): Promise<GeneratedNodeKey> {
  const email = opts.email ?? `${opts.name}@ferrypost.invalid`;
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc', // v4 keys: Ed25519 (legacy) + Curve25519 (legacy); v6 keys are unreadable for GnuPG 2.2
    userIDs: [{ name: `ferrypost node ${opts.name}`, email }],
    keyExpirationTime: 0,
    format: 'object',
    ...(opts.passphrase !== undefined && opts.passphrase !== '' ? { passphrase: opts.passphrase } : {}),
    // Advertise ZLIB first: what ferrypost itself writes (gpg honours it when encrypting to us).
    config: { preferredCompressionAlgorithm: openpgp.enums.compression.zlib },
  });
  return {
    privateArmored: privateKey.armor(),
    publicArmored: publicKey.armor(),
    fingerprint: privateKey.getFingerprint().toLowerCase(),
  };
}
