// drain-timeline: where in a drain the time goes. Renames TIMELINE_N (10,000) cached packets into B's
// inbox once B has started, and prints every TIMELINE_STEP ms (1,000) the packets delivered, the rate,
// and the CPU per packet of B's main thread, of its other threads (V8's compiler and GC helpers, the
// libuv pool, the decrypt worker) and of the whole machine. Into smtp-sink, or TIMELINE_POSTFIX=1 into
// a throwaway Postfix (→ discard), after which it measures Postfix's own accept rate (smtp-source,
// 10 sessions, the same count) as the `deliver` anchor. The summary compares the first 2,000 packets
// (what `deliver` times) with the rest: a warm daemon against one still compiling its code.
// DELIVER_CONCURRENCY / DELIVER_CONNECTIONS as in deliver.mjs.
// Not part of `npm run bench`: a diagnostic (docs/performance-history.md, "The deliver drain over time").
import { cachedPacketSet, release, resetState, stage } from './lib/packets.mjs';
import { countFiles, machineBusyMs, settleDisk, sleep, smtpSource, startNode, startPostfix, startSmtpSink, threadCpuMs } from './lib/stack.mjs';

const N = Number(process.env.TIMELINE_N ?? 10000);
const STEP = Number(process.env.TIMELINE_STEP ?? 1000);
const POSTFIX = Boolean(process.env.TIMELINE_POSTFIX);
const SET = N === 2000 ? 'deliver' : N === 10000 ? 'backlog' : `timeline-${N}`; // share deliver's / backlog's cached sets

/** CPU ms of the main thread and of all other threads together. */
function split(pid) {
  let main = 0, other = 0;
  for (const [key, [u, s]] of Object.entries(threadCpuMs(pid))) {
    if (key.startsWith(`${pid}:`)) main += u + s;
    else other += u + s;
  }
  return { main, other };
}

const target = POSTFIX ? await startPostfix('timeline') : await startSmtpSink();
const samples = [];
let anchor;
try {
  if (POSTFIX) await smtpSource(target.port, { count: 50 }); // warm-up, as in deliver.mjs
  const { pair, stash } = await cachedPacketSet(SET, N);
  const conns = process.env.DELIVER_CONNECTIONS; // the same knobs as deliver.mjs
  await pair.b.edit((doc) => doc.setIn(['delivery'], { method: 'smtp', host: '127.0.0.1', port: target.port, ...(conns ? { max_connections: Number(conns) } : {}) }));
  resetState(pair.b);
  const staged = stage(stash, pair.inboxB);
  settleDisk();
  const node = await startNode(pair.b);
  try {
    let last = { t: release(staged, pair.inboxB), left: N, cpu: split(node.pid), machine: machineBusyMs() };
    const t0 = last.t;
    console.log('    s   delivered  pkt/s   CPU ms/packet: main  other  machine');
    while (last.left > 0) {
      await sleep(STEP);
      if (node.proc.exitCode !== null) throw new Error(`receiver exited: ${node.logs().slice(-3000)}`);
      const now = { t: performance.now(), left: countFiles(pair.inboxB), cpu: split(node.pid), machine: machineBusyMs() };
      const done = last.left - now.left;
      const per = (x) => (done ? (x / done).toFixed(2) : '-').padStart(6);
      samples.push({ s: (now.t - t0) / 1000, done, delivered: N - now.left, secs: (now.t - last.t) / 1000 });
      console.log(`${((now.t - t0) / 1000).toFixed(1).padStart(5)}  ${String(N - now.left).padStart(9)}  ${String(Math.round(done / ((now.t - last.t) / 1000))).padStart(5)}  ${' '.repeat(14)}${per(now.cpu.main - last.cpu.main)} ${per(now.cpu.other - last.cpu.other)} ${per(now.machine - last.machine)}`);
      last = now;
    }
  } finally {
    await node.stop();
  }
  if (POSTFIX) {
    await target.idle(); // the drained messages delivered (discard) before the anchor runs
    settleDisk();
    anchor = N / (await smtpSource(target.port, { count: N, to: 'sink@offline.test', reuse: true }));
  }
} finally {
  await target.stop();
}

// Rates of the first 2,000 packets and of the rest, from the samples (to the step's resolution).
const at = samples.findIndex((x) => x.delivered >= Math.min(2000, N));
const head = samples.slice(0, at + 1), tail = samples.slice(at + 1, -1); // the last step is partly idle
const rate = (xs) => xs.reduce((a, x) => a + x.done, 0) / xs.reduce((a, x) => a + x.secs, 0);
console.log(`total ${samples.at(-1).s.toFixed(1)} s for ${N} packets (${(N / samples.at(-1).s).toFixed(0)} pkt/s, to ${STEP} ms)`);
console.log(`first ${head.at(-1).delivered} packets: ${rate(head).toFixed(0)} pkt/s; after them: ${tail.length ? rate(tail).toFixed(0) : '-'} pkt/s`);
if (anchor) console.log(`Postfix accept (smtp-source, 10 sessions, ${N} messages): ${anchor.toFixed(0)} msg/s; ratios ${(rate(head) / anchor).toFixed(3)} / ${tail.length ? (rate(tail) / anchor).toFixed(3) : '-'}`);
