/**
 * `ferrypost init`: creates a node: key pair (secret key 0600), config file, tree and state
 * directories, and the tree's .stignore lines. Refuses to overwrite an existing node.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../errors/index.js';
import { generateNodeKey } from '../keys/generate.js';
import { writeSecretKeyFile } from '../keys/files.js';
import { STIGNORE_LINES } from '../tree/layout.js';
import { nodeConfigText, type DeliveryChoice } from './config-template.js';

export interface InitOptions {
  dir: string;
  name: string;
  tree?: string;
  listen?: string;
  delivery: DeliveryChoice;
  /** Route all mail to this node itself (the embedded single-node default). */
  selfPeer: boolean;
  passphraseFile?: string;
}

export interface InitResult { configFile: string; fingerprint: string; publicKeyFile: string; tree: string }

export async function initNode(o: InitOptions): Promise<InitResult> {
  const dir = path.resolve(o.dir);
  const configFile = path.join(dir, 'ferrypost.yaml');
  if (existsSync(configFile)) {
    throw new FerryError('USAGE', `${configFile} already exists; a node is initialised only once (remove it or choose another --dir)`);
  }
  let passphrase: string | undefined;
  if (o.passphraseFile) passphrase = (await readFile(o.passphraseFile, 'utf8')).trimEnd();
  const key = await generateNodeKey({ name: o.name, ...(passphrase ? { passphrase } : {}) });
  await mkdir(path.join(dir, 'keys', 'peers'), { recursive: true, mode: 0o700 });
  await writeSecretKeyFile(path.join(dir, 'keys', 'node.key'), key.privateArmored);
  const publicKeyFile = path.join(dir, 'keys', 'node.asc');
  await writeFile(publicKeyFile, key.publicArmored, { mode: 0o644 });
  const tree = path.resolve(dir, o.tree ?? 'tree');
  await mkdir(tree, { recursive: true });
  await mkdir(path.join(dir, 'state'), { recursive: true, mode: 0o700 });
  await ensureStignore(tree);
  const text = nodeConfigText({
    name: o.name,
    tree: path.relative(dir, tree) || '.',
    listen: o.listen ?? '127.0.0.1:2525',
    delivery: o.delivery,
    selfFingerprint: key.fingerprint,
    selfPeer: o.selfPeer,
    ...(o.passphraseFile ? { passphraseFile: path.resolve(o.passphraseFile) } : {}),
  });
  await writeFile(configFile, text, { mode: 0o640 });
  if (o.delivery.method === 'maildir') await mkdir(path.resolve(dir, o.delivery.path.replace(/%[uda].*$/, '')), { recursive: true });
  return { configFile, fingerprint: key.fingerprint, publicKeyFile, tree };
}

async function ensureStignore(tree: string): Promise<void> {
  const file = path.join(tree, '.stignore');
  const have = existsSync(file) ? await readFile(file, 'utf8') : '';
  const missing = STIGNORE_LINES.filter((l) => !have.split('\n').includes(l));
  if (missing.length) await appendFile(file, (have && !have.endsWith('\n') ? '\n' : '') + missing.join('\n') + '\n');
}
