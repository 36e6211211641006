/**
 * `ferrypost peer add|list` and `ferrypost key export`. Adding a peer shows its fingerprint so that
 * the admin can compare it with the one the other side printed (out of band), as with ssh keys.
 */
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { parseConfig } from '../config/load.js';
import { mailPattern } from '../config/schema.js';
import { FerryError } from '../errors/index.js';
import { fingerprintOf, readPublicKeyFile } from '../keys/load.js';
import { replaceDurable } from '../tree/durable.js';

export interface PeerAddOptions { name: string; mail: string[]; default: boolean }

export async function addPeer(configFile: string, keyFile: string, o: PeerAddOptions): Promise<{ fingerprint: string; userIds: string[] }> {
  const key = await readPublicKeyFile(keyFile).catch((e: unknown) => {
    throw new FerryError('USAGE', `${(e as Error).message} (give the file that "ferrypost key export" wrote on the other node)`);
  });
  const fingerprint = fingerprintOf(key);
  for (const m of o.mail) {
    const r = mailPattern.safeParse(m);
    if (!r.success) throw new FerryError('USAGE', `--mail ${JSON.stringify(m)}: ${r.error.issues[0]?.message}`);
  }
  const text = await readFile(configFile, 'utf8');
  const doc = parseDocument(text);
  const cfg = parseConfig(text, configFile);
  if (cfg.peers.some((p) => p.name === o.name)) throw new FerryError('USAGE', `a peer named "${o.name}" already exists in ${configFile}`);
  const same = cfg.peers.find((p) => p.fingerprint === fingerprint);
  if (same) throw new FerryError('USAGE', `this key (${fingerprint}) is already the peer "${same.name}"`);
  if (o.default) {
    const other = cfg.peers.find((p) => p.default);
    if (other) throw new FerryError('USAGE', `"${other.name}" is already the default peer; remove its "default: true" first`);
  }
  const dir = path.dirname(configFile);
  const rel = path.join('keys', 'peers', `${o.name}.asc`);
  await copyFile(keyFile, path.join(dir, rel));
  const entry: Record<string, unknown> = { name: o.name, fingerprint, key: rel };
  if (o.mail.length) entry.mail = o.mail;
  if (o.default) entry.default = true;
  const peers = doc.get('peers');
  if (peers && typeof peers === 'object' && 'add' in peers) (peers as { add(v: unknown): void }).add(doc.createNode(entry));
  else doc.set('peers', doc.createNode([entry]));
  const out = doc.toString();
  parseConfig(out, configFile); // never write a config that would not load
  await replaceDurable(configFile, Buffer.from(out), { mode: 0o640 });
  return { fingerprint, userIds: key.getUserIDs() };
}

