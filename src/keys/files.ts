/**
 * Key files on disk, without openpgp.js (commands that only need a node id do not load it).
 * writeSecretKeyFile: exclusive create (never overwrites an existing key), mode 0600, fsync of the
 * file and its directory; on failure the partial file is removed and the error rethrown (EEXIST if
 * the file already exists). readKeyFileBytes: FerryError('CONFIG') naming the file if it cannot be read.
 */
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../errors/index.js';

/** A key file's bytes; `what` names it in the error ("node key", "key file"). */
export async function readKeyFileBytes(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new FerryError('CONFIG', `cannot read ${what} ${file}: ${(e as Error).message}`);
  }
}

export async function writeSecretKeyFile(file: string, armored: string): Promise<void> {
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.chmod(0o600); // in case the umask or the file system ignored the mode
    await fh.writeFile(armored, 'utf8');
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(file, { force: true });
    throw e;
  }
  await fh.close();
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
