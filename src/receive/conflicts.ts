/**
 * Syncthing conflict copies of packets in the inbox (`<name>.sync-conflict-<date>-<time>-<device>.pgp`).
 * Packet names are content hashes, so a conflict means two different files under one name: one is
 * damaged (a carrier's bad copy), and Syncthing may have let the damaged one keep the name. Left as it
 * was, the good copy would sit in the tree forever, ignored: a lost message. So, once the original
 * name is free (the packet never came, or its damaged file was quarantined as PACKET_HASH):
 * - a copy whose bytes hash to the original name IS that packet: it takes the name (link, never over
 *   a file; then the copy's name is removed) and is delivered like any packet (`rx.conflict-adopted`);
 * - a copy that does not is damaged: quarantined as PACKET_HASH with that reason, so it leaves the tree.
 * While the original name is taken, nothing is done: that file is handled first, the copy at a later scan.
 */
import { link, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { quarantinePacket } from '../quarantine/quarantine.js';
import { fsyncDir } from '../tree/durable.js';
import { errnoOf, pathExists } from '../tree/fs.js';
import { conflictOriginal, packetNameForHash } from '../tree/layout.js';
import { hashFile } from '../tree/scan.js';

export interface ConflictAdopter {
  /** ScanOptions.onConflict: handles the copy in the background (once at a time per file). */
  found(dir: string, name: string): void;
  /** Resolves when every copy in hand is handled (tests, scanOnce). */
  idle(): Promise<void>;
}

export function createConflictAdopter(deps: { stateDir: string; log: Logger; adopted: () => void }): ConflictAdopter {
  const inHand = new Map<string, Promise<void>>();
  return {
    found(dir, name) {
      const file = join(dir, name);
      if (inHand.has(file)) return;
      const p = handle(deps, dir, name)
        .catch((err: unknown) => deps.log.warn({ evt: 'rx.conflict-error', file, err: (err as Error).message }, 'could not handle a Syncthing conflict copy; trying again at the next scan'))
        .finally(() => inHand.delete(file));
      inHand.set(file, p);
    },
    async idle() {
      while (inHand.size) await Promise.all(inHand.values());
    },
  };
}

async function handle(deps: { stateDir: string; log: Logger; adopted: () => void }, dir: string, name: string): Promise<void> {
  const original = conflictOriginal(name)!;
  const file = join(dir, name);
  const target = join(dir, original);
  if (await pathExists(target)) return;
  const hash = await hashFile(file).catch((e: unknown) => (errnoOf(e) === 'ENOENT' ? undefined : Promise.reject(e)));
  if (!hash) return; // gone meanwhile (Syncthing resolved it)
  if (packetNameForHash(hash) === original) {
    try {
      await link(file, target);
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') return; // the name came back meanwhile: handled first
      throw e;
    }
    await unlink(file);
    await fsyncDir(dir);
    deps.log.info({ evt: 'rx.conflict-adopted', file: name, as: original }, 'a Syncthing conflict copy is the intact packet: it takes the packet\'s name');
    deps.adopted();
    return;
  }
  const q = await quarantinePacket(deps.stateDir, file, {
    code: 'PACKET_HASH',
    message: `Syncthing conflict copy of ${original} whose content does not match that name (a damaged copy)`,
    fromNode: basename(dir),
  });
  deps.log.warn({ evt: 'rx.quarantined', code: 'PACKET_HASH', file: name, from: basename(dir), to: q.path }, 'damaged Syncthing conflict copy quarantined');
}
