// deliver: DELIVER_N (2,000) waiting 4 KiB packets renamed into B's inbox at once, drained by
// `ferrypost run` on B into (a) Postfix by SMTP (→ discard) and (b) Postfix's smtp-sink; anchor:
// Postfix's own accept rate of the same messages (smtp-source, 10 sessions keeping their connections
// as ferrypost's pool does, into the same Postfix).
// Rate = packets / (first rename → inbox empty). Throws if a packet is quarantined or bounced instead
// of delivered, or Postfix did not deliver (discard) every message.
import fs from 'node:fs';
import path from 'node:path';
import { cachedPacketSet, release, resetState, stage, drained } from './lib/packets.mjs';
import { isMain, machineBusyMs, median, medianRatio, processCpuMs, report, runs, settleDisk, smtpSource, startNode, startPostfix, startSmtpSink, threadCpuMs } from './lib/stack.mjs';

const N = Number(process.env.DELIVER_N ?? 2000);
const nodeArgs = process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];

function quarantined(node) {
  const q = path.join(node.dir, 'state', 'quarantine');
  return fs.existsSync(q) ? fs.readdirSync(q, { recursive: true }).length : 0;
}

/** One drain of the stash into `delivery`; returns packets/s. */
export async function drainOnce(pair, stash, delivery, { cli, stats } = {}) {
  const conns = process.env.DELIVER_CONNECTIONS;
  await pair.b.edit((doc) => {
    doc.setIn(['delivery'], conns ? { ...delivery, max_connections: Number(conns) } : delivery);
    // Set or removed on every drain: ab-deliver's B_ENV changes it between drains of one config.
    if (process.env.DELIVER_CONCURRENCY) doc.setIn(['receive', 'concurrency'], Number(process.env.DELIVER_CONCURRENCY));
    else doc.deleteIn(['receive', 'concurrency']);
  });
  resetState(pair.b);
  fs.rmSync(pair.inboxB, { recursive: true, force: true }); // only what is staged (an aborted run may have left packets)
  const staged = stage(stash, pair.inboxB);
  settleDisk();
  const node = await startNode(pair.b, { nodeArgs, ...(cli ? { cli } : {}) });
  try {
    // CPU from here on only: the daemon's start-up (~750 ms of CPU here) is not part of the drain.
    const cpu0 = stats ? processCpuMs(node.pid) : 0;
    const threads0 = stats ? threadCpuMs(node.pid) : {};
    const machine0 = machineBusyMs();
    const before = node.events('rx.delivered');
    const t0 = release(staged, pair.inboxB);
    const s = await drained(pair.inboxB, t0, 600_000, node);
    await node.assertDelivered(N, before, `drain into ${delivery.host}:${delivery.port}`);
    if (stats) {
      const threads = Object.fromEntries(Object.entries(threadCpuMs(node.pid)).map(([t, [u, sy]]) => [t, [u - (threads0[t]?.[0] ?? 0), sy - (threads0[t]?.[1] ?? 0)]]));
      Object.assign(stats, { cpuMs: processCpuMs(node.pid) - cpu0, threads, machineMs: machineBusyMs() - machine0 });
    }
    const q = quarantined(pair.b);
    if (q > 0) throw new Error(`${q} packets quarantined (stale cached packets? rerun with BENCH_FRESH=1): ${node.logs().slice(-2000)}`);
    return N / s;
  } finally {
    await node.stop();
  }
}

export async function main() {
  const postfix = await startPostfix('deliver');
  let sink;
  const res = { pf: [], sink: [], anchor: [] };
  let settings, packets;
  try {
    sink = await startSmtpSink();
    const { pair, stash, genSecs, cached, packetSet } = await cachedPacketSet('deliver', N);
    packets = packetSet;
    console.log(`  (${cached ? 'reusing' : 'generated'} ${N} packets; generation took ${genSecs.toFixed(1)} s)`);
    await smtpSource(postfix.port, { count: 50 }); // warm-up
    // BENCH_RUNS (3) runs, each ferrypost into Postfix, into smtp-sink, then the anchor, so each
    // ratio compares the same minutes of this shared machine (single runs scatter by +-15 % here).
    // Postfix must have taken every message: its discard(8) lines count them.
    const intoPostfix = async () => res.pf.push(await postfix.expectDiscards('ferrypost into Postfix', N, () => drainOnce(pair, stash, { method: 'smtp', host: '127.0.0.1', port: postfix.port })));
    const intoSink = async () => res.sink.push(await drainOnce(pair, stash, { method: 'smtp', host: '127.0.0.1', port: sink.port }));
    // The anchor keeps its connections (-d), as ferrypost's pooled SMTP client does: a connection per
    // message costs Postfix more CPU (docs/performance-history.md, "Floors") and would flatter ferrypost.
    const anchor = async () => res.anchor.push(await postfix.expectDiscards('smtp-source into Postfix', N, async () => N / (await smtpSource(postfix.port, { count: N, to: 'sink@offline.test', reuse: true }))));
    // BENCH_RUNS (3) runs; in each, ferrypost into Postfix and into smtp-sink and the anchor, so each
    // ratio compares the same minutes of this shared machine (single runs scatter by +-15 % here). The
    // anchor goes first in every other run, so a drift over the runs favours neither side. Each
    // measurement starts with Postfix's queue empty: qmgr and discard(8) working off the previous
    // run's 2,000 messages would otherwise share the two cores with it.
    for (let i = 0; i < runs(); i++) {
      if (i % 2 === 1) await anchor();
      await intoPostfix();
      await intoSink();
      await postfix.idle();
      if (i % 2 === 0) await anchor();
    }
    settings = pair.b.receiverSettings();
  } finally {
    await sink?.stop();
    await postfix.stop();
  }
  const [p, s, a] = [median(res.pf), median(res.sink), median(res.anchor)];
  const ratio = medianRatio(res.pf, res.anchor);
  report('deliver', [
    { figure: `ferrypost deliver ${N} waiting packets into Postfix (SMTP, median of ${res.pf.length})`, value: p, unit: 'pkt/s', anchor: 'Postfix accept (smtp-source, 10 sessions, connections kept)', anchorValue: a, ratio, target: '>= 0.9x', met: ratio >= 0.9 },
    { figure: `ferrypost deliver ${N} waiting packets into smtp-sink (median of ${res.sink.length})`, value: s, unit: 'pkt/s', target: '>= 500 pkt/s', met: s >= 500 },
  ], { ratio_note: 'ratio = median of the per-run ratios (each run: ferrypost into Postfix, into smtp-sink and the anchor; the anchor first in runs 2, 4, ...)', runs: Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.map((x) => +x.toFixed(1))])), packet_set: packets, receiver: { ...settings, delivery: 'the last drain\'s (into smtp-sink)', defaults: 'config/ferrypost.example.yaml' }, checks: 'every drain: N rx.delivered, no rx.bounce, nothing quarantined; into Postfix and the anchor: N more discard(8) deliveries' });
  return { p, s, a };
}

if (isMain(import.meta.url)) await main();
