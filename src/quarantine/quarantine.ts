/**
 * Quarantine (STYLE.md §7): a refused packet is moved out of the tree into STATE/quarantine/ with a
 * `<name>.reason.json` beside it, never deleted. The reason file is written durably first, then the
 * packet is renamed (across filesystems: copied durably, then the original unlinked), then both
 * directories are fsync'd. Any failure throws the errno error and leaves the original in place (at
 * worst an extra reason file or a durable copy exists; the packet is never lost).
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errnoError, errnoOf, nodeTreeFs, pathExists, type TreeFs } from '../tree/fs.js';
import { ensureDir, fsyncDir, prepareDurable } from '../tree/durable.js';

export interface QuarantineReason {
  /** A FerryError code (PACKET_BAD_SIGNATURE, ...). */
  code: string;
  message: string;
  fromNode?: string;
  packetId?: string;
  detail?: Record<string, unknown>;
}

export interface QuarantineEntry {
  name: string;
  path: string;
  reasonPath: string;
  reason: QuarantineReason & { quarantinedAt: string; originalPath: string; size: number };
}

export const REASON_SUFFIX = '.reason.json';
const MAX_COUNTER = 1000;

export function quarantineDir(stateDir: string): string {
  return join(stateDir, 'quarantine');
}

/** UTC yyyymmddThhmmss. */
function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

export async function quarantinePacket(
  stateDir: string,
  file: string,
  reason: QuarantineReason,
  fs: TreeFs = nodeTreeFs,
  now: Date = new Date(),
): Promise<QuarantineEntry> {
  const qdir = quarantineDir(stateDir);
  await ensureDir(qdir, fs);
  const st = await fs.lstat(file);
  if (!st.isFile()) throw errnoError('EINVAL', `not a regular file: ${file}`, file);
  const full: QuarantineEntry['reason'] = { ...reason, quarantinedAt: now.toISOString(), originalPath: file, size: st.size };
  const base = `${stamp(now)}-${basename(file)}`;

  // 1. The reason file, durably; its exclusive commit reserves the name (a counter if taken).
  const body = Buffer.from(JSON.stringify(full, null, 2) + '\n');
  let name = '';
  let reasonPath = '';
  for (let n = 0; name === ''; n++) {
    if (n >= MAX_COUNTER) throw errnoError('EEXIST', `no free quarantine name for ${base}`, qdir);
    const candidate = n === 0 ? base : `${stamp(now)}-${n}-${basename(file)}`;
    if ((await pathExists(join(qdir, candidate), fs)) || (await pathExists(join(qdir, candidate + REASON_SUFFIX), fs))) continue;
    const prepared = await prepareDurable(qdir, body, { fs });
    try {
      reasonPath = await prepared.commit(candidate + REASON_SUFFIX);
      name = candidate;
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err; // lost a race for this name: try the next
    } finally {
      await prepared.abort();
    }
  }

  // 2. The packet itself (the name is ours: only quarantine writes here, and the reason file reserved it).
  const path = join(qdir, name);
  let moved = false;
  try {
    if (await pathExists(path, fs)) throw errnoError('EEXIST', `refusing to overwrite ${path}`, path);
    try {
      await fs.rename(file, path);
      moved = true;
    } catch (err) {
      if (errnoOf(err) !== 'EXDEV') throw err;
      const copy = await prepareDurable(qdir, createReadStream(file), { fs });
      try {
        await copy.commit(name);
      } finally {
        await copy.abort();
      }
      try {
        await fs.unlink(file);
      } catch (err) {
        // The packet stays in the tree and will be refused again: take the copy back, or every scan
        // would add another one.
        await fs.unlink(path).catch(() => undefined);
        throw err;
      }
      moved = true;
    }
  } catch (err) {
    // The packet stays where it was; do not leave a reason file describing a move that did not happen.
    if (!moved) await fs.unlink(reasonPath).catch(() => undefined);
    throw err;
  }

  // 3. Both directory entries durable.
  await fsyncDir(qdir, fs);
  await fsyncDir(dirname(file), fs);
  return { name, path, reasonPath, reason: full };
}

/** Everything in STATE/quarantine/, oldest first. Orphan reason files (packet not moved) are skipped. */
export async function listQuarantine(stateDir: string): Promise<QuarantineEntry[]> {
  const qdir = quarantineDir(stateDir);
  let names: string[];
  try {
    names = await fsp.readdir(qdir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const present = new Set(names);
  const out: QuarantineEntry[] = [];
  for (const r of names) {
    if (!r.endsWith(REASON_SUFFIX) || r.startsWith('.')) continue;
    const name = r.slice(0, -REASON_SUFFIX.length);
    if (!present.has(name)) continue;
    const path = join(qdir, name);
    const reasonPath = join(qdir, r);
    let reason: QuarantineEntry['reason'];
    try {
      reason = JSON.parse(await fsp.readFile(reasonPath, 'utf8')) as QuarantineEntry['reason'];
      if (typeof reason !== 'object' || reason === null || typeof reason.code !== 'string') throw new Error('no "code" field');
    } catch (err) {
      const size = await fsp.stat(path).then((s) => s.size, () => 0);
      reason = { code: 'INTERNAL', message: `unreadable reason file ${reasonPath}: ${(err as Error).message}`, quarantinedAt: '', originalPath: '', size };
    }
    out.push({ name, path, reasonPath, reason });
  }
  out.sort((a, b) => (a.reason.quarantinedAt < b.reason.quarantinedAt ? -1 : a.reason.quarantinedAt > b.reason.quarantinedAt ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}
