/**
 * `ferrypost init`: creates a node: key pair (secret key 0600), config file, tree and state
 * directories, and the tree's .stignore lines. Refuses to overwrite an existing node.
 * Fails before creating anything if the options would give a config that does not load (checked with
 * the same schema and checks as every other command: FerryError('USAGE') naming the option); if a
 * later step fails, what this run created is removed again, so that a retry starts clean.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseConfig } from '../config/load.js';
import { nodeName } from '../config/schema.js';
import { FerryError, isFerryError } from '../errors/index.js';
import { writeSecretKeyFile } from '../keys/files.js';
import { generateNodeKey } from '../keys/generate.js';
import { readPassphraseFile } from '../keys/load.js';
import { STIGNORE_LINES } from '../tree/layout.js';
import { nodeConfigText, type DeliveryChoice, type TemplateInput } from './config-template.js';

export interface InitOptions {
  dir: string;
  name: string;
  tree?: string;
  listen?: string;
  delivery: DeliveryChoice;
  /** Route all mail to this node itself (the embedded single-node default). */
  selfPeer: boolean;
  passphraseFile?: string;
  /** Where the config goes (the global --config); default DIR/ferrypost.yaml. Paths in it are then absolute. */
  configFile?: string;
}

export interface InitResult { configFile: string; fingerprint: string; publicKeyFile: string; tree: string }

/** Config keys → the init option that sets them, for error messages. */
const OPTION_OF: Array<[RegExp, string]> = [
  [/^node\.name\b/, '--name'],
  [/^node\.tree\b/, '--tree'],
  [/^smtp\.listen\b/, '--listen'],
  [/^delivery\.(host|port)\b/, '--smtp/--lmtp'],
  [/^delivery\.command\b/, '--sendmail'],
  [/^delivery\.path\b/, '--maildir'],
  [/^node\.passphrase_file\b/, '--passphrase-file'],
];

export async function initNode(o: InitOptions): Promise<InitResult> {
  const dir = path.resolve(o.dir);
  const configFile = path.resolve(o.configFile ?? path.join(dir, 'ferrypost.yaml'));
  if (existsSync(configFile)) {
    throw new FerryError('USAGE', `${configFile} already exists; a node is initialised only once (remove it or choose another --dir)`);
  }
  const name = nodeName.safeParse(o.name);
  if (!name.success) throw new FerryError('USAGE', `--name ${JSON.stringify(o.name)}: ${name.error.issues[0]?.message} (nothing was created)`);
  const keyFile = path.join(dir, 'keys', 'node.key');
  const publicKeyFile = path.join(dir, 'keys', 'node.asc');
  for (const f of [keyFile, publicKeyFile]) {
    if (existsSync(f)) {
      throw new FerryError('USAGE', `${f} already exists, but ${configFile} does not: left over from an earlier init? (remove ${path.join(dir, 'keys')} if it holds no key you need, or choose another --dir)`);
    }
  }
  const passphrase = o.passphraseFile ? readPassphraseFile(o.passphraseFile, '--passphrase-file') : undefined;
  const tree = path.resolve(dir, o.tree ?? 'tree');
  // Paths relative to the config when it lives in the node's directory (the default), else absolute.
  const configDir = path.dirname(configFile);
  const ref = (p: string) => (configDir === dir ? path.relative(dir, p) || '.' : p);
  const template = (fingerprint: string): TemplateInput => ({
    name: o.name,
    tree: ref(tree),
    listen: o.listen ?? '127.0.0.1:2525',
    delivery: o.delivery.method === 'maildir' && configDir !== dir ? { ...o.delivery, path: path.resolve(dir, o.delivery.path) } : o.delivery,
    selfFingerprint: fingerprint,
    selfPeer: o.selfPeer,
    stateDir: ref(path.join(dir, 'state')),
    keyFile: ref(keyFile),
    publicKeyFile: ref(publicKeyFile),
    ...(o.passphraseFile ? { passphraseFile: path.resolve(o.passphraseFile) } : {}),
  });
  validate(nodeConfigText(template('f'.repeat(40))), configFile);

  const key = await generateNodeKey({ name: o.name, ...(passphrase ? { passphrase } : {}) });
  const created: string[] = []; // removed again, newest first, if a step fails
  const mkdirp = async (d: string, mode?: number) => {
    const first = await mkdir(d, { recursive: true, ...(mode ? { mode } : {}) });
    if (first) created.push(first);
  };
  try {
    await mkdirp(dir); // the default mode: DIR holds the tree and the Maildir, which Syncthing and Dovecot must reach
    await mkdirp(path.join(dir, 'keys', 'peers'), 0o700);
    await writeSecretKeyFile(keyFile, key.privateArmored);
    created.push(keyFile);
    await writeFile(publicKeyFile, key.publicArmored, { mode: 0o644, flag: 'wx' });
    created.push(publicKeyFile);
    await mkdirp(tree);
    await mkdirp(path.join(dir, 'state'), 0o700);
    await ensureStignore(tree);
    await mkdirp(configDir);
    await writeFile(configFile, nodeConfigText(template(key.fingerprint)), { mode: 0o640, flag: 'wx' });
    created.push(configFile);
    if (o.delivery.method === 'maildir') {
      // A fixed path is the node's one Maildir: made whole now (tmp/ new/ cur/), as a mail system makes a
      // mailbox before its first message; large messages are written straight into an existing Maildir
      // only (the receiver never creates one from a header it has not yet authenticated). A templated
      // path gets its root; each mailbox is made by its first delivery.
      const fixed = !/%[uda]/.test(o.delivery.path);
      const root = path.resolve(dir, o.delivery.path.replace(/%[uda].*$/, ''));
      await mkdirp(root);
      if (fixed) for (const sub of ['tmp', 'new', 'cur']) await mkdirp(path.join(root, sub), 0o700);
    }
  } catch (e) {
    for (const p of created.reverse()) await rm(p, { recursive: true, force: true }).catch(() => undefined);
    if (isFerryError(e)) throw e;
    // A path that cannot be made (a file where a directory should be, no permission): say which, and that nothing is left.
    const err = e as NodeJS.ErrnoException;
    throw new FerryError('CONFIG', `cannot init: ${err.path ?? dir}: ${err.code ?? err.message} (check --dir, --tree, --maildir and --config; nothing was created)`, { cause: e });
  }
  return { configFile, fingerprint: key.fingerprint, publicKeyFile, tree };
}

/** The config init would write must load, or init creates nothing. */
function validate(text: string, configFile: string): void {
  try {
    parseConfig(text, configFile);
  } catch (e) {
    if (!isFerryError(e)) throw e;
    const lines = e.message
      .replace(/^invalid config [^\n]*:\n/, '')
      .split('\n')
      .map((l) => {
        const opt = OPTION_OF.find(([re]) => re.test(l.trim()))?.[1];
        const line = l.startsWith('  ') ? l : `  ${l}`;
        return opt ? `${line} [${opt}]` : line;
      });
    throw new FerryError('USAGE', `cannot init: these options give a config that would not load (nothing was created):\n${lines.join('\n')}`);
  }
}

async function ensureStignore(tree: string): Promise<void> {
  const file = path.join(tree, '.stignore');
  const have = existsSync(file) ? await readFile(file, 'utf8') : '';
  const missing = STIGNORE_LINES.filter((l) => !have.split('\n').includes(l));
  if (missing.length) await appendFile(file, (have && !have.endsWith('\n') ? '\n' : '') + missing.join('\n') + '\n');
}
