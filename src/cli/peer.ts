/**
 * `ferrypost peer add|list` and `ferrypost key export`. Adding a peer shows its fingerprint so that
 * the admin can compare it with the one the other side printed (out of band), as with ssh keys.
 * Everything is checked before anything is written: the name (it names the key file), the mail
 * patterns, the key (a usable public key: not expired, not revoked; of a secret key only the public
 * part is kept) and the resulting config. The key goes to KEYS/peers/NAME.asc (KEYS: the directory of
 * node.key), never over an existing file; then the config is replaced atomically.
 * Fails: FerryError('USAGE') for bad options or a duplicate, ('CONFIG') for an unusable key or config.
 */
import { chown, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type * as openpgp from 'openpgp';
import { parseDocument } from 'yaml';
import { parseConfig } from '../config/load.js';
import { mailPattern, nodeName, type Config } from '../config/schema.js';
import { FerryError, isFerryError } from '../errors/index.js';
import { fingerprintOf, readKeyFile } from '../keys/load.js';
import { keyProblem } from '../keys/usability.js';
import { removeDurable, replaceDurable, writeDurable } from '../tree/durable.js';

export interface PeerAddOptions { name: string; mail: string[]; default: boolean }

export interface PeerAddResult {
  fingerprint: string;
  userIds: string[];
  /** Set when the file held a secret key: only its public part was stored. */
  warning?: string;
}

export async function addPeer(configFile: string, keyFile: string, o: PeerAddOptions): Promise<PeerAddResult> {
  const name = nodeName.safeParse(o.name);
  if (!name.success) throw new FerryError('USAGE', `--name ${JSON.stringify(o.name)}: ${name.error.issues[0]?.message}`);
  for (const m of o.mail) {
    const r = mailPattern.safeParse(m);
    if (!r.success) throw new FerryError('USAGE', `--mail ${JSON.stringify(m)}: ${r.error.issues[0]?.message}`);
  }
  const { text, cfg } = await readConfig(configFile);

  const { key, warning } = await readPeerKeyFile(keyFile);
  await requirePeerKeyUsable(key, keyFile);
  const fingerprint = fingerprintOf(key);

  if (cfg.peers.some((p) => p.name === o.name)) throw new FerryError('USAGE', `a peer named "${o.name}" already exists in ${configFile}`);
  const same = cfg.peers.find((p) => p.fingerprint === fingerprint);
  if (same) throw new FerryError('USAGE', `this key (${fingerprint}) is already the peer "${same.name}"`);
  if (o.default) {
    const other = cfg.peers.find((p) => p.default);
    if (other) {
      const self = other.key === path.resolve(path.dirname(cfg.node.key), 'node.asc') || other.name === cfg.node.name;
      throw new FerryError(
        'USAGE',
        `"${other.name}" is already the default peer; remove its "default: true" in ${configFile} first` +
          (self ? ` (it is this node itself, which "ferrypost init" adds for the single-node setup; delete that entry under peers:, or init with --no-self-peer)` : ''),
      );
    }
  }

  // The key file: KEYS/peers/NAME.asc, where init made keys/peers (next to node.key).
  const peersDir = path.join(path.dirname(cfg.node.key), 'peers');
  const dest = path.join(peersDir, `${o.name}.asc`);
  if (path.dirname(dest) !== peersDir) throw new FerryError('USAGE', `--name ${JSON.stringify(o.name)} does not name a file in ${peersDir}`);
  const configDir = path.dirname(path.resolve(configFile));
  const rel = path.relative(configDir, dest);
  const entry: Record<string, unknown> = { name: o.name, fingerprint, key: rel.startsWith('..') || path.isAbsolute(rel) ? dest : rel };
  if (o.mail.length) entry.mail = o.mail;
  if (o.default) entry.default = true;
  const doc = parseDocument(text);
  const peers = doc.get('peers');
  if (peers && typeof peers === 'object' && 'add' in peers) (peers as { add(v: unknown): void }).add(doc.createNode(entry));
  else doc.set('peers', doc.createNode([entry]));
  const out = doc.toString();
  parseConfig(out, configFile); // never write a config that would not load

  try {
    await writeDurable(peersDir, Buffer.from(key.armor()), () => `${o.name}.asc`, { mode: 0o644 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FerryError('USAGE', `${dest} already exists (left from a removed peer?); remove it or choose another --name`);
    }
    throw e;
  }
  try {
    await keepOwner(dest, await stat(peersDir)); // the key file is the node owner's, like its directory
    await writeConfig(configFile, out);
  } catch (e) {
    await removeDurable(dest).catch(() => undefined);
    throw e;
  }
  return { fingerprint, userIds: key.getUserIDs(), ...(warning ? { warning } : {}) };
}

/** The public key in a file the other node exported (of a secret key, only its public part, with a warning); USAGE if it holds none. */
export async function readPeerKeyFile(keyFile: string): Promise<{ key: openpgp.PublicKey; warning?: string }> {
  const read = await readKeyFile(keyFile, 'key file').catch((e: unknown) => {
    if (isFerryError(e)) throw new FerryError('USAGE', `${e.message} (give the file that "ferrypost key export" wrote on the other node)`);
    throw e;
  });
  if (!read.isPrivate()) return { key: read };
  return {
    key: read.toPublic(),
    warning: `${keyFile} holds a SECRET key: only its public part was stored. The other node's secret key should never leave it; ask for "ferrypost key export" output instead.`,
  };
}

/** The config file's text and what it loads as; CONFIG if it cannot be read or is invalid. */
export async function readConfig(configFile: string): Promise<{ text: string; cfg: Readonly<Config> }> {
  const text = await readFile(configFile, 'utf8').catch((e: unknown) => {
    throw new FerryError('CONFIG', `cannot read config ${configFile}: ${(e as Error).message}`);
  });
  return { text, cfg: parseConfig(text, configFile) };
}

/** The config replaced atomically, keeping its mode, owner and group (root editing a config the daemon's group reads). */
export async function writeConfig(configFile: string, out: string): Promise<void> {
  const old = await stat(configFile);
  await replaceDurable(configFile, Buffer.from(out), { mode: old.mode & 0o777 });
  await keepOwner(configFile, old);
}

/**
 * A file root just wrote in a node another user owns goes to that user (`like`: the file it replaced,
 * or its directory): root's files there would be unusable for the daemon and Syncthing.
 */
export async function keepOwner(file: string, like: { uid: number; gid: number }): Promise<void> {
  if (process.getuid?.() === 0 && (like.uid !== 0 || like.gid !== 0)) await chown(file, like.uid, like.gid);
}

/** A peer key must verify the peer's packets and be encrypted to: not revoked, not expired, both subkeys usable. */
export async function requirePeerKeyUsable(key: openpgp.PublicKey, file: string): Promise<void> {
  const problem = await keyProblem(key);
  if (problem === undefined) return;
  const hint = problem === 'is revoked'
    ? 'ask the other node for its current key ("ferrypost key export")'
    : problem.startsWith('expired') ? 'ask the other node to extend it or for a new key' : 'ask the other node for a usable key';
  throw new FerryError('CONFIG', `key file ${file} (${fingerprintOf(key)}) ${problem}; ${hint}`);
}
