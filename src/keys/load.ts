/**
 * Reading node keys from files: the node's own secret key (armored or binary, optionally
 * passphrase-protected) and peers' public keys. Every failure is FerryError('CONFIG') naming the file
 * and what to do: missing/unreadable, not an OpenPGP key, not a secret key, passphrase needed,
 * wrong passphrase, no usable signing or encryption key.
 */
import { readFileSync } from 'node:fs';
import * as openpgp from 'openpgp';
import { FerryError } from '../errors/index.js';
import { readKeyFileBytes } from './files.js';
import { isArmored } from './primary-fingerprint.js';

/** Lowercase hex fingerprint of the key's primary key. */
export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toLowerCase();
}

export async function readPrivateKeyFile(file: string, passphrase?: string): Promise<openpgp.PrivateKey> {
  const key = await readKeyFile(file, 'node key');
  if (!key.isPrivate()) {
    throw new FerryError('CONFIG', `node key ${file} is a public key; node.key must be this node's secret key`);
  }
  let priv: openpgp.PrivateKey = key;
  if (!priv.isDecrypted()) {
    if (passphrase === undefined) {
      throw new FerryError(
        'CONFIG',
        `node key ${file} is protected by a passphrase: set node.passphrase_file or node.passphrase_env`,
      );
    }
    try {
      priv = await openpgp.decryptKey({ privateKey: priv, passphrase });
    } catch (e) {
      throw new FerryError('CONFIG', `cannot unlock node key ${file}: wrong passphrase (${(e as Error).message})`);
    }
  }
  await requireUsable(priv, file, 'node key', true);
  return priv;
}

/** A peer's key: armored or binary; a secret key file is accepted and reduced to its public part. */
export async function readPublicKeyFile(file: string): Promise<openpgp.PublicKey> {
  const key = await readKeyFile(file, 'key file');
  return key.isPrivate() ? key.toPublic() : key;
}

/**
 * The node key passphrase from node.passphrase_file (readPassphraseFile: one trailing newline stripped) or the
 * environment variable named by node.passphrase_env; undefined if neither is set.
 */
export function resolvePassphrase(
  node: { passphrase_file?: string; passphrase_env?: string },
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (node.passphrase_file !== undefined && node.passphrase_env !== undefined) {
    throw new FerryError('CONFIG', 'set only one of node.passphrase_file and node.passphrase_env');
  }
  if (node.passphrase_file !== undefined) return readPassphraseFile(node.passphrase_file, 'node.passphrase_file');
  if (node.passphrase_env !== undefined) {
    const value = env[node.passphrase_env];
    if (value === undefined) {
      throw new FerryError('CONFIG', `environment variable ${node.passphrase_env} (node.passphrase_env) is not set`);
    }
    return value;
  }
  return undefined;
}

/**
 * A passphrase file's passphrase: its bytes with one trailing newline (LF or CRLF) removed, nothing
 * else; spaces are part of the passphrase. THE one reader: `init --passphrase-file` and the daemon
 * must agree, or init makes a key the daemon cannot unlock.
 */
export function readPassphraseFile(file: string, what = 'passphrase file'): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FerryError('CONFIG', `cannot read ${what} ${file}: ${(e as Error).message}`);
  }
  return text.replace(/\r?\n$/, '');
}

export async function readKeyFile(file: string, what: string): Promise<openpgp.Key> {
  return parseKeyBytes(await readKeyFileBytes(file, what), file, what);
}

/** The key in a file's bytes (armored or binary); FerryError('CONFIG') naming the file if it is none. */
export async function parseKeyBytes(bytes: Buffer, file: string, what: string): Promise<openpgp.Key> {
  try {
    return isArmored(bytes)
      ? await openpgp.readKey({ armoredKey: bytes.toString('utf8') })
      : await openpgp.readKey({ binaryKey: new Uint8Array(bytes) });
  } catch (e) {
    throw new FerryError('CONFIG', `${what} ${file} is not an OpenPGP key: ${(e as Error).message}`);
  }
}

/** A node key must be able to sign (packets) and to be encrypted to (by peers). */
export async function requireUsable(key: openpgp.Key, file: string, what: string, sign: boolean): Promise<void> {
  try {
    if (sign) await key.getSigningKey();
    await key.getEncryptionKey();
  } catch (e) {
    throw new FerryError('CONFIG', `${what} ${file} has no usable ${sign ? 'signing or ' : ''}encryption key (expired or revoked?): ${(e as Error).message}`);
  }
}
