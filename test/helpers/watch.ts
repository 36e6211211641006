/** Test helpers for the inbox watcher (test/unit/tree-watch*.test.ts). */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packetNameForHash } from '../../src/tree/layout.js';

/** Counts onChange calls; next(ms) resolves true at the next call, false after ms. */
export function counter(): { count: () => number; next: (ms: number) => Promise<boolean>; cb: () => void } {
  let n = 0;
  let waiters: Array<() => void> = [];
  return {
    count: () => n,
    cb: () => {
      n++;
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    next: (ms) =>
      new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), ms);
        waiters.push(() => {
          clearTimeout(t);
          resolve(true);
        });
      }),
  };
}

/** Syncthing style: build under a temp name in the same directory, then rename into place. */
export async function deliver(dir: string, tag: string): Promise<void> {
  const name = packetNameForHash(Buffer.alloc(32, tag.charCodeAt(0)));
  await writeFile(join(dir, `.syncthing.${name}.tmp`), tag);
  await rename(join(dir, `.syncthing.${name}.tmp`), join(dir, name));
}
