/**
 * Writing a secret key file: exclusive create (never overwrites an existing key), mode 0600, fsync
 * of the file and its directory. On failure the partial file is removed and the error rethrown
 * (EEXIST if the file already exists).
 */
import { open, rm } from 'node:fs/promises';
import path from 'node:path';

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
