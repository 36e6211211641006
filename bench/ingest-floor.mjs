// ingest-floor: what the SMTP ingest target (>= 2x Postfix's queue-in rate) asks of CPU, measured.
// Under one smtp-source load (1,000 x 4 KiB, 10 sessions, a connection per message), for each of
//   bare smtp-server that discards (the library's own cost: parse, reply, one connection per message),
//   bare smtp-server + one durable file per message (write, fsync, close, rename),
//   bare smtp-server + one real packet per message (ferrypost's codec and durable write, nothing else),
//   bare smtp-server + several messages per packet (group commit: a design ferrypost does not have),
//   ferrypost (sign + compress + encrypt + durable packet + dir fsync),
//   Postfix smtpd -> cleanup -> qmgr -> discard(8),
// prints msg/s and CPU per message (user + system, every thread; Postfix: the master and all its
// children, including those that exited, via the master's cutime/cstime) and smtp-source's own CPU.
// Not part of `npm run bench` (3 extra servers); no timing is asserted. Env: INGEST_N, FLOOR_SESSIONS
// (default 10; 1 gives each server's latency per message, with nothing queued behind anything),
// BENCH_NODE_FLAGS (extra Node flags for ferrypost and the bare servers, e.g. --cpu-prof), FLOOR_MODES (bare modes to run, default "discard,durable,packet,batch"), BATCH_MAX (bare-smtp.mjs).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { countFiles, isMain, nodePair, processCpuMs, rm, ROOT, settleDisk, smtpSourceRun, startNode, startPostfix, threadCpuMs, tmp } from './lib/stack.mjs';

const N = Number(process.env.INGEST_N ?? 1000);
const SESSIONS = Number(process.env.FLOOR_SESSIONS ?? 10);
/** idle: for Postfix, waits until its queue is empty (qmgr and discard(8) finish after smtpd's 250). */
async function measure(label, port, pid, withChildren, idle = async () => {}) {
  await smtpSourceRun(port, { count: 100, sessions: SESSIONS }); // warm-up
  await idle();
  settleDisk();
  const c0 = processCpuMs(pid, { children: withChildren });
  const t0 = withChildren ? {} : threadCpuMs(pid);
  const r = await smtpSourceRun(port, { count: N, sessions: SESSIONS });
  await idle(); // Postfix's CPU counts the delivery of every message (its tail runs after the last 250)
  const cpu = (processCpuMs(pid, { children: withChildren }) - c0) / N;
  if (process.env.FLOOR_THREADS && !withChildren) {
    // Per thread, µs per message: the main thread (tid = pid), libuv's pool (system time: fsync, creating opens), V8's helpers.
    for (const [t, [u, sy]] of Object.entries(threadCpuMs(pid))) {
      const du = u - (t0[t]?.[0] ?? 0), ds = sy - (t0[t]?.[1] ?? 0);
      if (du + ds > 20) console.log(`    ${t.padEnd(22)} user ${Math.round((du / N) * 1000)} sys ${Math.round((ds / N) * 1000)} µs/msg`);
    }
  }
  const row = { label, rate: N / r.s, serverMs: cpu, sourceMs: r.cpuMs / N };
  console.log(`  ${label.padEnd(44)} ${row.rate.toFixed(0).padStart(5)} msg/s | server CPU ${cpu.toFixed(2)} ms/msg | smtp-source CPU ${row.sourceMs.toFixed(2)} ms/msg`);
  return row;
}

async function bare(mode, dir) {
  const child = spawn(process.execPath, ['--max-semi-space-size=4', ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean), path.join(ROOT, 'bench/lib/bare-smtp.mjs'), mode, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => { err += d; process.stderr.write(d); });
  const port = await new Promise((res, rej) => {
    child.stdout.once('data', (d) => res(Number(String(d).trim())));
    child.once('exit', (c) => rej(new Error(`bare smtp-server exited ${c}`)));
  });
  const exited = new Promise((res) => child.once('close', res));
  return {
    port, pid: child.pid,
    /** Stops the server; resolves with how many messages it answered 250 (from its last words). */
    stop: async () => { child.kill(); await exited; return Number(/bare-smtp answered (\d+)/.exec(err)?.[1] ?? NaN); },
  };
}

export async function main() {
  const base = tmp('ingest-floor');
  const rows = [];
  console.log(`== ingest-floor: ${N} x 4 KiB, ${SESSIONS} sessions, CPU per message (2 cores; see docs/performance.md)`);
  try {
    const LABELS = { discard: 'discard', durable: 'durable file per message', packet: 'one packet per message', batch: 'messages batched per packet' };
    for (const mode of (process.env.FLOOR_MODES ?? 'discard,durable,packet,batch').split(',')) {
      const dir = path.join(base, mode);
      fs.mkdirSync(dir);
      const s = await bare(mode, dir);
      try {
        rows.push(await measure(`bare smtp-server, ${LABELS[mode]}`, s.port, s.pid, false));
      } finally {
        const answered = await s.stop();
        // Every message of the warm-up and the run answered 250 (after its file or packet was durable).
        if (answered !== N + 100) throw new Error(`bare smtp-server ${mode}: ${answered} messages answered, expected ${N + 100}`);
      }
    }
    const { a, b } = await nodePair(base);
    const node = await startNode(a);
    try {
      rows.push(await measure('ferrypost ingest', a.port, node.pid, false));
      const written = countFiles(path.join(base, 'tree', b.fpr, a.fpr));
      if (written !== N + 100) throw new Error(`ferrypost: ${written} packets in the tree, expected ${N + 100}`);
    } finally {
      await node.stop();
    }
    const postfix = await startPostfix('floor');
    try {
      const master = Number(fs.readFileSync(path.join(postfix.dir, 'spool/pid/master.pid'), 'utf8').trim());
      rows.push(await measure('Postfix smtpd -> queue -> discard', postfix.port, master, true, () => postfix.idle()));
    } finally {
      await postfix.stop();
    }
  } finally {
    rm(base);
  }
  const pf = rows.at(-1);
  const cores = 2000; // ms of CPU per second on this machine's two cores
  console.log(`  2x Postfix here = ${(2 * pf.rate).toFixed(0)} msg/s = at most ${(cores / (2 * pf.rate)).toFixed(2)} ms of CPU per message for server + smtp-source together`);
  console.log(`BENCH-JSON ${JSON.stringify({ bench: 'ingest-floor', rows })}`);
  return rows;
}

if (isMain(import.meta.url)) await main();
