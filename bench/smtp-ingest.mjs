// smtp-ingest: 4 KiB messages (bench/lib/message-4k.eml) over 10 concurrent SMTP sessions
// (Postfix's smtp-source for both sides) into ferrypost's listener (sign + encrypt + compress + fsync + rename; the peer is not
// running, so packets stay in the tree) vs into Postfix's smtpd → queue → discard(8).
// Throws if a daemon does not start, smtp-source reports an error, ferrypost's tree lacks a packet
// or Postfix did not deliver (discard) every message. Env: BENCH_RUNS, INGEST_N.
import fs from 'node:fs';
import path from 'node:path';
import { countFiles, isMain, median, medianRatio, nodePair, report, rm, runs, settleDisk, smtpSource, startNode, startPostfix, tmp } from './lib/stack.mjs';

const N = Number(process.env.INGEST_N ?? 1000);
const nodeArgs = process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];

export async function main() {
  const base = tmp('ingest');
  const fp = [], pf = [];
  const { a, b } = await nodePair(base);
  const outbox = path.join(base, 'tree', b.fpr, a.fpr);
  let postfix, node;
  try {
    postfix = await startPostfix('ingest');
    node = await startNode(a, { nodeArgs });
    await smtpSource(a.port, { count: 50 }); // warm-up (JIT, key cache)
    await smtpSource(postfix.port, { count: 50 });
    const ferrypost = async () => {
      fs.rmSync(outbox, { recursive: true, force: true });
      await postfix.idle(); // the anchor's messages are delivered (discard) before ferrypost's run
      settleDisk();
      const s = await smtpSource(a.port, { count: N });
      const n = countFiles(outbox);
      if (n !== N) throw new Error(`ferrypost: ${n} packets in the tree after ${N} 250s`);
      fp.push(N / s);
    };
    const anchor = async () => pf.push(await postfix.expectDiscards('Postfix', N, async () => N / (await smtpSource(postfix.port, { count: N }))));
    // Paired runs; the anchor goes first in every other one, so a drift over the runs (ferrypost's
    // JIT still warming, the disk's minute) favours neither side.
    for (let i = 0; i < runs(); i++) {
      if (i % 2 === 1) await anchor();
      await ferrypost();
      if (i % 2 === 0) await anchor();
    }
  } finally {
    await node?.stop();
    await postfix?.stop();
    rm(base);
  }
  const f = median(fp), p = median(pf);
  const ratio = medianRatio(fp, pf);
  report('smtp-ingest', [{ figure: `ferrypost SMTP ingest, ${N} x 4 KiB, 10 sessions (median of ${fp.length})`, value: f, unit: 'msg/s',
    anchor: 'Postfix smtpd queue-in', anchorValue: p, ratio, target: '>= 2x', met: ratio >= 2 }],
  { ratio_note: 'ratio = median of the per-run ratios (anchor first in runs 2, 4, ...)', message: 'bench/lib/message-4k.eml (smtp-source -F), both sides', runs_ferrypost: fp.map((x) => +x.toFixed(1)), runs_postfix: pf.map((x) => +x.toFixed(1)) });
  return { f, p };
}

if (isMain(import.meta.url)) await main();
