/**
 * `ferrypost quarantine release`: puts a quarantined packet back where it was found, under its own
 * name, so the receiver checks it again from the start (after the admin added the missing peer key,
 * fixed the clock, ...). A packet that still fails goes back to quarantine with a new reason; a replay
 * is still a replay (the journal remembers). Never overwrites a file in the tree.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FerryError } from '../errors/index.js';
import { prepareDurable } from '../tree/durable.js';
import { errnoOf, requireTree, unlinkIfPresent } from '../tree/fs.js';
import { hashFromPacketName, inboxDir, isNodeId } from '../tree/layout.js';
import { listQuarantine, type QuarantineEntry } from './quarantine.js';

/** `unlink` is fsp.unlink; tests pass another to race a concurrent `quarantine delete`. */
export async function releaseQuarantined(stateDir: string, tree: string, self: string, name: string, unlink: (path: string) => Promise<void> = fsp.unlink): Promise<string> {
  const entry = (await listQuarantine(stateDir)).find((e) => e.name === name);
  if (!entry) throw new FerryError('USAGE', `no quarantined packet named ${name} (see "ferrypost quarantine list")`);
  const target = targetFor(entry, tree, self);
  const dir = dirname(target);
  // The tree itself is never made here: missing, it is a wrong node.tree or an unmounted folder.
  await requireTree(tree);
  try {
    await fsp.mkdir(dir, { recursive: true });
    await fsp.link(entry.path, target);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'EEXIST') throw new FerryError('USAGE', `${target} already exists in the tree; nothing released`);
    if (errno !== 'EXDEV' && errno !== 'EPERM' && errno !== 'ENOTSUP') throw err;
    const copy = await prepareDurable(dir, createReadStream(entry.path));
    await copy.commit(basename(target)).catch(async (e: unknown) => {
      await copy.abort();
      throw errnoOf(e) === 'EEXIST' ? new FerryError('USAGE', `${target} already exists in the tree; nothing released`) : e;
    });
  }
  const d = await fsp.open(dir, 'r');
  await d.sync().finally(() => d.close());
  // The packet first: a reason file without its packet is not listed, while a packet without its
  // reason file would stay in the quarantine directory unseen by `quarantine list`.
  // A concurrent `quarantine delete` may have taken either already: the release itself is done.
  await unlinkIfPresent(entry.path, unlink);
  await unlinkIfPresent(entry.reasonPath, unlink);
  const q = await fsp.open(dirname(entry.path), 'r');
  await q.sync().finally(() => q.close());
  return target;
}

/** Where the packet was found: TREE/<self>/<sender>/<packet name>, rebuilt from the reason file. */
function targetFor(entry: QuarantineEntry, tree: string, self: string): string {
  const original = entry.reason.originalPath;
  const from = entry.reason.fromNode ?? basename(dirname(original));
  const packetName = basename(original);
  if (!isNodeId(from) || hashFromPacketName(packetName) === undefined) {
    throw new FerryError('USAGE', `${entry.name}: its reason file does not say where it came from; move it into the tree by hand`);
  }
  return join(inboxDir(tree, self), from, packetName);
}
