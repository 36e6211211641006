/**
 * `ferrypost quarantine delete`: removes quarantined packets for good, by name or by age (Postfix's
 * `postsuper -d` for the hold queue). Quarantine never deletes anything by itself (quarantine.ts), so
 * without this an admin's only way to reclaim the space was `rm` by hand, two files per entry.
 *
 * By name: every name must be listed first, or nothing is deleted (USAGE, naming the unknown ones).
 * By age: entries quarantined before `olderThan`; an entry whose reason file cannot be read has no
 * time and is kept (it is reported, and can be deleted by name). The packet goes first, then its
 * reason file (a reason file without its packet is not listed; the reverse would leave a packet that
 * `quarantine list` cannot see), then the directory is fsync'd so the deletions hold after a crash.
 * A reason file a crash left without its packet is removed too, by name or by age.
 * An entry that vanished meanwhile (a concurrent `release` or `delete`) is reported, not an error.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FerryError } from '../errors/index.js';
import { fsyncDir } from '../tree/durable.js';
import { errnoOf, unlinkIfPresent } from '../tree/fs.js';
import { listQuarantine, quarantineDir, REASON_SUFFIX, type QuarantineEntry } from './quarantine.js';

export type DeleteSelection = { names: readonly string[] } | { olderThan: Date };

export interface DeleteResult {
  deleted: QuarantineEntry[];
  /** Listed, but gone before this command removed it. */
  vanished: QuarantineEntry[];
  /** By age only: entries without a readable time, kept. */
  undated: QuarantineEntry[];
  /**
   * Names whose reason file was removed without a packet beside it: left by a crash between the two
   * unlinks of a delete or a release (`quarantine list` does not show them). By name, or by age.
   */
  orphans: string[];
}

/** `unlink` is fsp.unlink; tests pass another to race a concurrent release. */
export async function deleteQuarantined(stateDir: string, selection: DeleteSelection, unlink: (path: string) => Promise<void> = fsp.unlink): Promise<DeleteResult> {
  const list = await listQuarantine(stateDir);
  const orphanTimes = await orphanReasons(stateDir);
  const undated: QuarantineEntry[] = [];
  let chosen: QuarantineEntry[];
  let orphans: string[];
  if ('names' in selection) {
    const byName = new Map(list.map((e) => [e.name, e]));
    const unknown = [...new Set(selection.names)].filter((n) => !byName.has(n) && !orphanTimes.has(n));
    if (unknown.length) {
      throw new FerryError('USAGE', `no quarantined packet named ${unknown.join(', ')} (see "ferrypost quarantine list"); nothing deleted`);
    }
    chosen = [...new Set(selection.names)].flatMap((n) => byName.get(n) ?? []);
    orphans = [...new Set(selection.names)].filter((n) => !byName.has(n));
  } else {
    const cutoff = selection.olderThan.getTime();
    orphans = [...orphanTimes].filter(([, at]) => at < cutoff).map(([n]) => n);
    chosen = [];
    for (const e of list) {
      const at = Date.parse(e.reason.quarantinedAt);
      if (Number.isNaN(at)) undated.push(e);
      else if (at < cutoff) chosen.push(e);
    }
  }

  const deleted: QuarantineEntry[] = [];
  const vanished: QuarantineEntry[] = [];
  for (const e of chosen) {
    if (await unlinkIfPresent(e.path, unlink)) deleted.push(e);
    else vanished.push(e);
    await unlinkIfPresent(e.reasonPath, unlink);
  }
  for (const n of orphans) await unlinkIfPresent(join(quarantineDir(stateDir), n + REASON_SUFFIX), unlink);
  if (chosen.length || orphans.length) await fsyncDir(quarantineDir(stateDir));
  return { deleted, vanished, undated, orphans };
}

/**
 * Reason files without their packet, by name, with the time they say (else their mtime). One younger
 * than a minute may belong to a quarantine in progress (it writes the reason file first); `--older-than`
 * is at least a minute, and a name is only taken when given.
 */
async function orphanReasons(stateDir: string): Promise<Map<string, number>> {
  const dir = quarantineDir(stateDir);
  const names = await fsp.readdir(dir).catch((err: unknown) => {
    if (errnoOf(err) === 'ENOENT') return [] as string[];
    throw err;
  });
  const present = new Set(names);
  const out = new Map<string, number>();
  for (const r of names) {
    if (!r.endsWith(REASON_SUFFIX) || r.startsWith('.')) continue;
    const name = r.slice(0, -REASON_SUFFIX.length);
    if (present.has(name)) continue;
    const file = join(dir, r);
    let at = NaN;
    try {
      at = Date.parse((JSON.parse(await fsp.readFile(file, 'utf8')) as { quarantinedAt?: string }).quarantinedAt ?? '');
    } catch {
      // unreadable: its mtime below
    }
    if (Number.isNaN(at)) at = await fsp.stat(file).then((st) => st.mtimeMs, () => Date.now());
    out.set(name, at);
  }
  return out;
}

