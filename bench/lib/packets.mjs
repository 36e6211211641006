// Packet fixtures for the receive-side benchmarks: make N real packets on node A (its SMTP
// listener, B stopped), stash them outside the tree, and put them back for each run together with a
// pristine copy of B's state (so B's replay protection does not refuse a re-run). Throws if A does
// not write the expected number of packets.
import fs from 'node:fs';
import path from 'node:path';
import { countFiles, median, smtpSource, startNode, waitFor } from './stack.mjs';

/** Generates n packets A→B (4 KiB smtp-source messages by default) and moves them to stashDir. */
export async function makePackets(pair, n, stashDir, { size = 4096, sessions = 10 } = {}) {
  const node = await startNode(pair.a);
  const t0 = Date.now();
  try {
    await smtpSource(pair.a.port, { count: n, size, sessions, to: 'sink@offline.test' });
  } finally {
    await node.stop();
  }
  const secs = (Date.now() - t0) / 1000;
  const got = countFiles(pair.inboxB);
  if (got !== n) throw new Error(`expected ${n} packets in ${pair.inboxB}, found ${got}`);
  fs.rmSync(stashDir, { recursive: true, force: true });
  fs.renameSync(pair.inboxB, stashDir);
  fs.mkdirSync(pair.inboxB, { recursive: true });
  return { secs };
}

/** Resets B's state_dir to empty (no journal: every packet is new again). */
export function resetState(node) {
  const st = path.join(node.dir, 'state');
  fs.rmSync(st, { recursive: true, force: true });
  fs.mkdirSync(st, { mode: 0o700 });
}

/** Copies stashed packets into a hidden staging dir next to the inbox (same filesystem). */
export function stage(stashDir, inbox) {
  const staging = path.join(path.dirname(inbox), `.stage-${process.pid}`);
  fs.rmSync(staging, { recursive: true, force: true });
  fs.cpSync(stashDir, staging, { recursive: true });
  return { staging, names: fs.readdirSync(staging) };
}

/** Renames every staged packet into the inbox (as Syncthing finishes files); returns t0 (ms). */
export function release({ staging, names }, inbox) {
  fs.mkdirSync(inbox, { recursive: true });
  const t0 = performance.now();
  for (const n of names) fs.renameSync(path.join(staging, n), path.join(inbox, n));
  fs.rmSync(staging, { recursive: true, force: true });
  return t0;
}

/** Waits until the inbox is empty (every packet delivered and deleted); returns seconds since t0. */
export async function drained(inbox, t0, timeoutMs = 600_000, running) {
  await waitFor(`inbox ${inbox} to drain`, timeoutMs, () => {
    if (running && running.proc.exitCode !== null) throw new Error(`receiver exited: ${running.logs().slice(-3000)}`);
    return countFiles(inbox) === 0;
  }, 10);
  return (performance.now() - t0) / 1000;
}

export { median };
