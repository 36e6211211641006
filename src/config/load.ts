/**
 * Loads the config once: YAML → zod → paths resolved against the file's directory → frozen.
 * Errors name the file, the key path, the value and what would be valid.
 */
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { FerryError } from '../errors/index.js';
import { configSchema, type Config } from './schema.js';

export const DEFAULT_CONFIG_FILE = 'ferrypost.yaml';

export function configPathFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(option ?? (env.FERRYPOST_CONFIG || undefined) ?? DEFAULT_CONFIG_FILE); // set but empty = unset, as for init
}

export function loadConfig(file: string): Readonly<Config> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? ' (create one with "ferrypost init", or pass --config FILE / set FERRYPOST_CONFIG)' : '';
    throw new FerryError('CONFIG', `cannot read config ${file}: ${(e as Error).message}${hint}`);
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): Readonly<Config> {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? `:${e.linePos[0].line}` : '';
    throw new FerryError('CONFIG', `${file}${where}: not valid YAML: ${(e as Error).message}`);
  }
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new FerryError('CONFIG', formatIssues(file, raw, result.error));
  return deepFreeze(resolvePaths(result.data, path.dirname(path.resolve(file))));
}

function formatIssues(file: string, raw: unknown, error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const key = issue.path.length ? issue.path.join('.') : '(top level)';
    const value = valueAt(raw, issue.path);
    const shown = value === undefined ? 'missing' : `got ${JSON.stringify(value)}`;
    return `  ${key}: ${issue.message} (${shown})`;
  });
  return `invalid config ${file}:\n${lines.join('\n')}`;
}

function valueAt(raw: unknown, keys: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = raw;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function resolvePaths(cfg: Config, base: string): Config {
  const r = (p: string) => path.resolve(base, p);
  const out: Config = {
    ...cfg,
    node: {
      ...cfg.node,
      tree: r(cfg.node.tree),
      state_dir: r(cfg.node.state_dir),
      key: r(cfg.node.key),
      ...(cfg.node.passphrase_file ? { passphrase_file: r(cfg.node.passphrase_file) } : {}),
    },
    peers: cfg.peers.map((p) => ({ ...p, key: r(p.key) })),
  };
  if (cfg.delivery?.method === 'maildir') out.delivery = { ...cfg.delivery, path: r(cfg.delivery.path) };
  if (cfg.smtp) {
    out.smtp = {
      ...cfg.smtp,
      ...(cfg.smtp.tls ? { tls: { key: r(cfg.smtp.tls.key), cert: r(cfg.smtp.tls.cert) } } : {}),
      ...(cfg.smtp.auth_users_file ? { auth_users_file: r(cfg.smtp.auth_users_file) } : {}),
    };
  }
  if (cfg.log.file) out.log = { ...cfg.log, file: r(cfg.log.file) };
  checkTreeApart(out);
  const defaults = cfg.peers.filter((p) => p.default);
  if (defaults.length > 1) {
    throw new FerryError('CONFIG', `peers: only one peer may have default: true (found ${defaults.map((p) => p.name).join(', ')})`);
  }
  const names = new Set<string>();
  for (const p of cfg.peers) {
    if (names.has(p.name)) throw new FerryError('CONFIG', `peers: the name "${p.name}" is used twice`);
    names.add(p.name);
  }
  return out;
}

/**
 * The tree is shared with every device that carries it: it must not contain, or lie inside, the state
 * directory, the directory of the node's secret key or a Maildir this node delivers to (e.g. a tree of
 * "." next to keys/ would hand the secret key to every carrier). Compared lexically and, for paths that
 * exist, after resolving symlinks.
 */
function checkTreeApart(cfg: Config): void {
  const tree = cfg.node.tree;
  // [what, directory, whether the tree may not lie inside it either]. Below the key's directory is
  // harmless (the key is not shared; a config next to its key often has the tree beside it too).
  const others: Array<[string, string, boolean]> = [
    ['node.state_dir', cfg.node.state_dir, true],
    ['the directory of node.key', path.dirname(cfg.node.key), false],
  ];
  if (cfg.delivery?.method === 'maildir') {
    // The fixed part of a templated path (Maildir/%d/%u → Maildir): every mailbox lies below it. Only
    // a fixed path is checked both ways: with "%u/Maildir" the node's directory is that part.
    const parts = cfg.delivery.path.split(path.sep);
    const fixed = parts.findIndex((part) => /%[uda]/.test(part));
    const root = fixed < 0 ? cfg.delivery.path : parts.slice(0, fixed).join(path.sep) || path.sep;
    others.push(['delivery.path', root, fixed < 0]);
  }
  for (const [what, dir, bothWays] of others) {
    const overlap = overlapOf(tree, dir);
    if (overlap === 'contains' || (overlap && bothWays)) {
      throw new FerryError(
        'CONFIG',
        `node.tree ${tree} ${overlap} ${what} ${dir}: the tree is shared with every device that carries it, so that would share ` +
          `${what === 'node.state_dir' ? 'the journal and quarantine' : what === 'delivery.path' ? 'delivered mail' : 'the secret key'} too ` +
          '(put the tree in its own directory, e.g. TREE=/srv/ferrypost/tree, next to state/ and keys/, not around them)',
      );
    }
  }
}

function overlapOf(tree: string, other: string): 'contains' | 'is inside' | undefined {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  for (const [t, o] of [[tree, other], [real(tree), real(other)]] as const) {
    if (isWithin(o, t)) return 'contains';
    if (isWithin(t, o)) return 'is inside';
  }
  return undefined;
}

/** Whether `inner` is `outer` or below it. */
function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function deepFreeze<T>(o: T): Readonly<T> {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
