// disk-floor: what one durable 5 KB file costs on this machine's disk, three ways, 3,000 files each,
// alternating, with sync(1) before every round (docs/performance-history.md, "The machine of the afternoon"):
//   sync       one at a time, synchronous calls: open, write, fsync, close, link, unlink, directory fsync;
//   promises   10 writers through fs.promises: open, writeFile, fsync, close, rename (no directory
//              fsync: not durable the way the other two are, the plain library cost for comparison);
//   ferrypost  10 writers through src/tree/durable.ts (prepareDurable + commit: temp, fsync, link,
//              unlink, group-committed directory fsync), as the SMTP listener writes packets.
// Prints files/s and the process's CPU per file (user, system). Not part of `npm run bench`; no timing
// is asserted. Env: DISK_ROUNDS (2), DISK_DIR (default /var/tmp/ferrypost-disk-floor).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createDirSync, prepareDurable } from '../dist/tree/durable.js';
import { nodeTreeFs } from '../dist/tree/fs.js';
import { settleDisk } from './lib/stack.mjs';

const N = 3000, WRITERS = 10;
const ROUNDS = Number(process.env.DISK_ROUNDS ?? 2);
const DIR = process.env.DISK_DIR ?? '/var/tmp/ferrypost-disk-floor';
const data = crypto.randomBytes(5000);

async function writeAll(mode, dir) {
  let i = 0;
  if (mode === 'sync') {
    const dfd = fs.openSync(dir, 'r');
    try {
      for (; i < N; i++) {
        const tmp = path.join(dir, `.t${i}`);
        const fd = fs.openSync(tmp, 'wx');
        try {
          fs.writeSync(fd, data);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        fs.linkSync(tmp, path.join(dir, `f${i}`));
        fs.unlinkSync(tmp);
        fs.fsyncSync(dfd);
      }
    } finally {
      fs.closeSync(dfd);
    }
    return;
  }
  const dirSync = createDirSync(nodeTreeFs); // one for all writers, as the SMTP listener shares one (send/enqueue.ts)
  const writer = mode === 'promises'
    ? async () => {
      for (let k = i++; k < N; k = i++) {
        const tmp = path.join(dir, `.t${k}`);
        const fh = await fs.promises.open(tmp, 'wx');
        try {
          await fh.writeFile(data);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fs.promises.rename(tmp, path.join(dir, `f${k}`));
      }
    }
    : async () => {
      for (let k = i++; k < N; k = i++) {
        const p = await prepareDurable(dir, data, { dirSync });
        await p.commit(`f${k}`);
      }
    };
  await Promise.all(Array.from({ length: WRITERS }, writer));
}

const rows = [];
console.log(`== disk-floor: ${N} durable 5 KB files per round, ${ROUNDS} rounds, sync(1) before each (${DIR})`);
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of ['sync', 'promises', 'ferrypost']) {
      fs.rmSync(DIR, { recursive: true, force: true });
      fs.mkdirSync(DIR, { recursive: true });
      settleDisk();
      const c0 = process.cpuUsage(), t0 = performance.now();
      await writeAll(mode, DIR);
      const c = process.cpuUsage(c0), s = (performance.now() - t0) / 1000;
      const row = { mode, round: r + 1, rate: N / s, userMs: c.user / 1000 / N, sysMs: c.system / 1000 / N };
      rows.push(row);
      console.log(`  round ${r + 1} ${mode.padEnd(9)} ${row.rate.toFixed(0).padStart(5)} files/s | CPU ${(row.userMs + row.sysMs).toFixed(3)} ms/file (user ${row.userMs.toFixed(3)}, system ${row.sysMs.toFixed(3)})`);
    }
  }
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}
console.log(`BENCH-JSON ${JSON.stringify({ bench: 'disk-floor', rows })}`);
