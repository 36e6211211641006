// Packet fixtures for the receive-side benchmarks: make N real packets on node A (its SMTP
// listener, B stopped), stash them outside the tree, and put them back for each run together with a
// pristine copy of B's state (so B's replay protection does not refuse a re-run). Throws if A does
// not write the expected number of packets.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BENCH_MESSAGE, CLI, countFiles, median, nodePair, ROOT, smtpSource, startNode } from './stack.mjs';

/** Where generated packet sets are kept between runs (generation runs at ferrypost's ingest rate). */
export const CACHE_DIR = process.env.BENCH_CACHE ?? '/var/tmp/ferrypost-bench';

/**
 * A node pair with n stashed packets A→B, reused from CACHE_DIR when present (BENCH_FRESH=1
 * regenerates). Fresh ports are put into both configs on every call. Returns { pair, stash, genSecs }.
 */
export async function cachedPacketSet(name, n, opts = {}) {
  // Keyed on the message the packets carry and on the build's packet codec (dist/packet): a set made
  // from another message, or by a build that encodes differently, is not reused.
  const h = createHash('sha256').update(fs.readFileSync(BENCH_MESSAGE));
  const codec = path.join(path.dirname(CLI), '..', 'packet');
  for (const f of fs.readdirSync(codec, { recursive: true }).map(String).filter((f) => f.endsWith('.js')).sort()) h.update(f).update(fs.readFileSync(path.join(codec, f)));
  const tag = h.digest('hex').slice(0, 8);
  const base = path.join(CACHE_DIR, `${name}-${n}-${tag}`);
  for (const old of fs.existsSync(CACHE_DIR) ? fs.readdirSync(CACHE_DIR) : []) {
    if ((old === `${name}-${n}` || old.startsWith(`${name}-${n}-`)) && path.join(CACHE_DIR, old) !== base) fs.rmSync(path.join(CACHE_DIR, old), { recursive: true, force: true });
  }
  const meta = path.join(base, 'meta.json');
  if (process.env.BENCH_FRESH === '1' || !fs.existsSync(meta)) {
    fs.rmSync(base, { recursive: true, force: true });
    fs.mkdirSync(base, { recursive: true, mode: 0o755 });
    const pair = await nodePair(base, opts.pairOpts);
    const stash = path.join(base, 'stash');
    const { secs } = await makePackets(pair, n, stash, opts);
    const madeBy = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() || 'unknown';
    fs.writeFileSync(meta, JSON.stringify({ pair: { ...pair, a: { ...pair.a }, b: { ...pair.b } }, stash, genSecs: secs, madeBy, tag }));
    return { pair, stash, genSecs: secs, cached: false, packetSet: { cached: false, made_by: madeBy, key: tag } };
  }
  const m = JSON.parse(fs.readFileSync(meta, 'utf8'));
  const pair = await nodePair(null, { ...opts.pairOpts, existing: m.pair });
  return { pair, stash: m.stash, genSecs: m.genSecs, cached: true, packetSet: { cached: true, made_by: m.madeBy ?? 'unknown', key: tag } };
}

/** Generates n packets A→B (smtp-source with bench/lib/message-4k.eml by default) and moves them to stashDir. */
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

/** Copies stashed packets (the first `limit` by name, default all) into a hidden staging dir next to the inbox (same filesystem). */
export function stage(stashDir, inbox, limit = Infinity) {
  const staging = path.join(path.dirname(inbox), `.stage-${process.pid}`);
  fs.rmSync(staging, { recursive: true, force: true });
  if (limit === Infinity) {
    fs.cpSync(stashDir, staging, { recursive: true });
  } else {
    fs.mkdirSync(staging);
    for (const n of fs.readdirSync(stashDir).sort().slice(0, limit)) fs.copyFileSync(path.join(stashDir, n), path.join(staging, n));
  }
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

/**
 * Waits until the inbox is empty (every packet delivered and deleted); returns seconds since t0.
 * Each look is a readdir of what is left (~0.9 ms of CPU for 2,000 entries here, ~4.5 ms for 10,000),
 * taken from the same two cores as the receiver: it looks every 10 ms only once at most 100 packets
 * are left, and every 100 ms before (every 10 ms throughout cost the receiver 5-45 % of a core).
 */
export async function drained(inbox, t0, timeoutMs = 600_000, running) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (running && running.proc.exitCode !== null) throw new Error(`receiver exited: ${running.logs().slice(-3000)}`);
    const left = countFiles(inbox);
    if (left === 0) return (performance.now() - t0) / 1000;
    if (Date.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms waiting for inbox ${inbox} to drain (${left} left)`);
    await new Promise((r) => setTimeout(r, left > 100 ? 100 : 10));
  }
}

export { median };
