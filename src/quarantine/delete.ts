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
 * An entry that vanished meanwhile (a concurrent `release` or `delete`) is reported, not an error.
 */
import { promises as fsp } from 'node:fs';
import { FerryError } from '../errors/index.js';
import { errnoOf } from '../tree/fs.js';
import { listQuarantine, quarantineDir, type QuarantineEntry } from './quarantine.js';

export type DeleteSelection = { names: readonly string[] } | { olderThan: Date };

export interface DeleteResult {
  deleted: QuarantineEntry[];
  /** Listed, but gone before this command removed it. */
  vanished: QuarantineEntry[];
  /** By age only: entries without a readable time, kept. */
  undated: QuarantineEntry[];
}

/** `unlink` is fsp.unlink; tests pass another to race a concurrent release. */
export async function deleteQuarantined(stateDir: string, selection: DeleteSelection, unlink: (path: string) => Promise<void> = fsp.unlink): Promise<DeleteResult> {
  const list = await listQuarantine(stateDir);
  const undated: QuarantineEntry[] = [];
  let chosen: QuarantineEntry[];
  if ('names' in selection) {
    const byName = new Map(list.map((e) => [e.name, e]));
    const unknown = [...new Set(selection.names)].filter((n) => !byName.has(n));
    if (unknown.length) {
      throw new FerryError('USAGE', `no quarantined packet named ${unknown.join(', ')} (see "ferrypost quarantine list"); nothing deleted`);
    }
    chosen = [...new Set(selection.names)].map((n) => byName.get(n)!);
  } else {
    const cutoff = selection.olderThan.getTime();
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
    if (await unlinkIfThere(unlink, e.path)) deleted.push(e);
    else vanished.push(e);
    await unlinkIfThere(unlink, e.reasonPath);
  }
  if (chosen.length) {
    const dir = await fsp.open(quarantineDir(stateDir), 'r');
    await dir.sync().finally(() => dir.close());
  }
  return { deleted, vanished, undated };
}

/** unlink(2); false if the file was already gone. */
async function unlinkIfThere(unlink: (path: string) => Promise<void>, path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}
