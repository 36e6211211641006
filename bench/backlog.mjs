// backlog: BACKLOG_N (10,000) packets waiting in B's inbox when `ferrypost run` starts on B
// (delivering into smtp-sink): seconds from spawn to inbox empty, as a rate next to the deliver
// rate; and `ferrypost queue` wall time on node A with the same packets outgoing (median of 3).
// The deliver rate it is compared with is measured in the same run: BACKLOG_REF_N (2,000) of the same
// packets renamed into the running receiver (as `deliver` does). The packet set is generated once and
// cached (see lib/packets.mjs); throws on quarantine, a bounce, or `queue` not listing every packet.
import fs from 'node:fs';
import path from 'node:path';
import { cachedPacketSet, drained, release, resetState, stage } from './lib/packets.mjs';
import { CLI, countFiles, DAEMON_NODE_FLAGS, isMain, median, report, run, settleDisk, startNode, startSmtpSink } from './lib/stack.mjs';

const N = Number(process.env.BACKLOG_N ?? 10000);

const REF_N = Number(process.env.BACKLOG_REF_N ?? 2000);

/** Drains what is staged into B's inbox; from `startAt` ('spawn': the backlog; 'release': packets arriving at a running B). */
async function drain(pair, staged, n, startAt) {
  resetState(pair.b);
  fs.rmSync(pair.inboxB, { recursive: true, force: true }); // nothing but what is staged (a failed run may have left packets)
  if (startAt === 'spawn') {
    release(staged, pair.inboxB);
    if (countFiles(pair.inboxB) !== n) throw new Error('staging failed');
  }
  settleDisk(); // the staged copies' dirty pages written before the clock starts
  let t0 = performance.now();
  const node = await startNode(pair.b);
  try {
    // Spawned with the packets waiting, B delivers from its first moment (before node.started):
    // count from the spawn, not from here.
    const before = startAt === 'spawn' ? 0 : node.events('rx.delivered');
    if (startAt === 'release') t0 = release(staged, pair.inboxB);
    const s = await drained(pair.inboxB, t0, 1_800_000, node);
    await node.assertDelivered(n, before, `drain of ${n}`);
    const q = path.join(pair.b.dir, 'state', 'quarantine');
    if (fs.existsSync(q) && fs.readdirSync(q).length > 0) throw new Error('packets quarantined (stale cache? BENCH_FRESH=1)');
    return s;
  } finally {
    await node.stop();
  }
}

export async function main() {
  let sink;
  let queueRuns = [], drainS, refS, queueLines, packets;
  try {
    sink = await startSmtpSink();
    const { pair, stash, genSecs, cached, packetSet } = await cachedPacketSet('backlog', N);
    packets = packetSet;
    console.log(`  (${cached ? 'reusing' : 'generated'} ${N} packets; generation took ${genSecs.toFixed(1)} s = ${(N / genSecs).toFixed(1)} msg/s)`);
    pair.b.edit((doc) => doc.setIn(['delivery'], { method: 'smtp', host: '127.0.0.1', port: sink.port }));
    // The deliver rate in the same minutes, as `deliver` measures it: REF_N packets renamed into a running B.
    refS = await drain(pair, stage(stash, pair.inboxB, REF_N), REF_N, 'release');
    // `queue` on node A with all N packets outgoing (they wait in B's inbox; B is not running).
    resetState(pair.b);
    release(stage(stash, pair.inboxB), pair.inboxB);
    if (countFiles(pair.inboxB) !== N) throw new Error('staging failed');
    settleDisk();
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      // With the installed command's interpreter-line flags, as `ferrypost queue` runs for an admin.
      const r = run(process.execPath, [...DAEMON_NODE_FLAGS, CLI, '--config', pair.a.config, 'queue']);
      queueRuns.push((performance.now() - t0) / 1000);
      // mailq's total line: "-- K Kbytes in N packet(s)."
      queueLines = { output_lines: r.stdout.split('\n').length, total_line: r.stdout.split('\n').find((l) => /^-- \d+ Kbytes in /.test(l)) ?? '' };
      if (!queueLines.total_line.includes(` in ${N} packet(s).`)) throw new Error(`ferrypost queue does not list the ${N} packets: ${JSON.stringify(queueLines)}`);
    }
    // The backlog: the same N packets waiting when B starts; the clock runs from the spawn.
    drainS = await drain(pair, stage(stash, pair.inboxB), N, 'spawn');
  } finally {
    await sink?.stop();
  }
  const qt = median(queueRuns);
  const rate = N / drainS, ref = REF_N / refS, ratio = rate / ref;
  report('backlog', [
    { figure: `drain ${N} packets waiting at start into smtp-sink (spawn → inbox empty)`, value: drainS, unit: 's' },
    { figure: 'backlog drain rate', value: rate, unit: 'pkt/s', anchor: `deliver rate, same run: ${REF_N} packets renamed into the running receiver, into the same smtp-sink`, anchorValue: ref, ratio, target: '= deliver rate (>= 0.9x: one run each, +-10 % is this machine\'s noise)', met: ratio >= 0.9 },
    { figure: `ferrypost queue on ${N} outgoing packets (median of 3, incl. node startup)`, value: qt, unit: 's', target: '< 1 s', met: qt < 1 },
  ], { packet_set: packets, queue_runs_s: queueRuns.map((x) => +x.toFixed(3)), queue_output: queueLines, checks: 'each drain: N rx.delivered, no rx.bounce, nothing quarantined; queue lists all N' });
}

if (isMain(import.meta.url)) await main();
