// backlog: BACKLOG_N (10,000) packets waiting in B's inbox when `ferrypost run` starts on B
// (delivering into smtp-sink): seconds from spawn to inbox empty, as a rate next to the deliver
// rate; and `ferrypost queue` wall time on node A with the same packets outgoing (median of 3).
// The packet set is generated once and cached (see lib/packets.mjs); throws on quarantine.
import fs from 'node:fs';
import path from 'node:path';
import { cachedPacketSet, drained, release, resetState, stage } from './lib/packets.mjs';
import { CLI, DAEMON_NODE_FLAGS, countFiles, median, report, run, startNode, startSmtpSink } from './lib/stack.mjs';

const N = Number(process.env.BACKLOG_N ?? 10000);

export async function main() {
  const sink = await startSmtpSink();
  let queueRuns = [], drainS, queueLines;
  try {
    const { pair, stash, genSecs, cached } = await cachedPacketSet('backlog', N);
    console.log(`  (${cached ? 'reusing' : 'generated'} ${N} packets; generation took ${genSecs.toFixed(1)} s = ${(N / genSecs).toFixed(1)} msg/s)`);
    pair.b.edit((doc) => doc.setIn(['delivery'], { method: 'smtp', host: '127.0.0.1', port: sink.port }));
    resetState(pair.b);
    release(stage(stash, pair.inboxB), pair.inboxB);
    if (countFiles(pair.inboxB) !== N) throw new Error('staging failed');
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      // With the installed command's interpreter-line flags, as `ferrypost queue` runs for an admin.
      const r = run(process.execPath, [...DAEMON_NODE_FLAGS, CLI, '--config', pair.a.config, 'queue']);
      queueRuns.push((performance.now() - t0) / 1000);
      queueLines = r.stdout.split('\n').length;
    }
    const t0 = performance.now();
    const node = await startNode(pair.b);
    try {
      drainS = await drained(pair.inboxB, t0, 1_800_000, node);
    } finally {
      await node.stop();
    }
    const q = path.join(pair.b.dir, 'state', 'quarantine');
    if (fs.existsSync(q) && fs.readdirSync(q).length > 0) throw new Error('packets quarantined (stale cache? BENCH_FRESH=1)');
  } finally {
    await sink.stop();
  }
  const qt = median(queueRuns);
  report('backlog', [
    { figure: `drain ${N} packets waiting at start into smtp-sink (spawn → inbox empty)`, value: drainS, unit: 's' },
    { figure: 'backlog drain rate', value: N / drainS, unit: 'pkt/s', target: '= deliver rate into smtp-sink (see deliver)' },
    { figure: `ferrypost queue on ${N} outgoing packets (median of 3, incl. node startup)`, value: qt, unit: 's', target: '< 1 s', met: qt < 1 },
  ], { queue_runs_s: queueRuns.map((x) => +x.toFixed(3)), queue_output_lines: queueLines });
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
