// vs-nncp: NNCP_N (1,000) 4 KiB messages node A → node B end to end into the same Postfix
// (→ discard). ferrypost: smtp-source (10 sessions) into A's listener, B running and injecting by
// SMTP; time until B's inbox is empty after the last 250. NNCP 8.8 (Debian): `nncp-exec B sendmail`
// per message (2 at a time, as a pipe transport with maxproc 2 would), `nncp-xfer` out and in, then
// `nncp-toss` whose exec handler is Postfix's sendmail(1) into the same instance. BENCH_RUNS (3)
// pairs of runs. Throws on failure.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { drained } from './lib/packets.mjs';
import { benchMessageBytes, isMain, median, nodePair, report, rm, run, runs, settleDisk, smtpSource, startNode, startPostfix, tmp } from './lib/stack.mjs';

const N = Number(process.env.NNCP_N ?? 1000);

function nncpConfigs(dir, postfixEtc) {
  const keys = (txt) => Object.fromEntries([...txt.slice(txt.indexOf('self: {'), txt.indexOf('neigh:')).matchAll(/(\w+): (\w+)/g)].map((m) => [m[1], m[2]]));
  const a = keys(run('nncp-cfgnew', ['-nocomments']).stdout), b = keys(run('nncp-cfgnew', ['-nocomments']).stdout);
  const pub = (k) => ({ id: k.id, exchpub: k.exchpub, signpub: k.signpub, noisepub: k.noisepub });
  const cfg = (name, self, peerName, peer, exec) => {
    const spool = path.join(dir, name, 'spool');
    fs.mkdirSync(spool, { recursive: true });
    const c = { spool, log: path.join(dir, name, 'log'), self, neigh: { self: pub(self), [peerName]: { ...pub(peer), ...(exec ? { exec } : {}) } } };
    const f = path.join(dir, `${name}.json`);
    fs.writeFileSync(f, JSON.stringify(c, null, 1));
    return f;
  };
  return {
    a: cfg('A', a, 'B', b),
    b: cfg('B', b, 'A', a, { sendmail: ['/usr/sbin/sendmail', '-C', postfixEtc, '-i', '-f', 'bench@gw.test', '--'] }),
  };
}

function execOne(cfgA, msg) {
  return new Promise((resolve, reject) => {
    const c = spawn('nncp-exec', ['-quiet', '-cfg', cfgA, 'B', 'sendmail', 'sink@discard.test'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`nncp-exec ${code}: ${err}`))));
    c.stdin.end(msg);
  });
}

async function nncpRun(dir, postfix) {
  const cfg = nncpConfigs(dir, postfix.etc);
  run('nncp-check', ['-cfg', cfg.a]);
  const msg = benchMessageBytes(); // the bytes smtp-source sends ferrypost
  const xfer = path.join(dir, 'xfer');
  fs.mkdirSync(xfer);
  const t0 = performance.now();
  let next = 0;
  await Promise.all([0, 1].map(async () => { while (next < N) { next++; await execOne(cfg.a, msg); } }));
  const tExec = performance.now();
  run('nncp-xfer', ['-quiet', '-cfg', cfg.a, '-mkdir', xfer]);
  run('nncp-xfer', ['-quiet', '-cfg', cfg.b, '-rx', xfer]);
  const tXfer = performance.now();
  run('nncp-toss', ['-quiet', '-cfg', cfg.b]);
  const tEnd = performance.now();
  const left = fs.readdirSync(path.join(dir, 'B', 'spool'), { recursive: true }).filter((p) => /\/rx\/[A-Z0-9]{52}$/.test(p)).length;
  if (left > 0) throw new Error(`nncp-toss left ${left} packets`);
  return { total: (tEnd - t0) / 1000, exec: (tExec - t0) / 1000, xfer: (tXfer - tExec) / 1000, toss: (tEnd - tXfer) / 1000 };
}

/** One ferrypost run: A and B started fresh, 20 messages to warm up, then N timed. */
async function ferrypostRun(pair, postfix) {
  const a = await startNode(pair.a), b = await startNode(pair.b);
  try {
    await smtpSource(pair.a.port, { count: 20, to: 'sink@discard.test' }); // warm-up
    await drained(pair.inboxB, performance.now(), 60_000, b);
    await postfix.idle();
    settleDisk();
    const before = b.events('rx.delivered');
    const t0 = performance.now();
    const ingest = await smtpSource(pair.a.port, { count: N, to: 'sink@discard.test' });
    const total = await drained(pair.inboxB, t0, 1_200_000, b);
    await b.assertDelivered(N, before, 'ferrypost B into Postfix');
    return { total, ingest };
  } finally {
    await a.stop();
    await b.stop();
  }
}

export async function main() {
  const base = tmp('nncp');
  const postfix = await startPostfix('nncp');
  const fp = [], nn = [];
  try {
    const pair = await nodePair(base, { delivery: { method: 'smtp', host: '127.0.0.1', port: postfix.port } });
    // BENCH_RUNS (3) runs, each ferrypost then NNCP (fresh NNCP nodes), so each ratio compares the
    // same minutes of this shared machine; the figures are medians, the ratio the median of the runs'.
    // Each side's messages must all reach Postfix's discard(8) (ferrypost's run also sends 20 to warm up).
    const delivered = (what, step) => postfix.expectDiscards(what, N, step, { atLeast: true });
    // NNCP first in every other run, so a drift over the runs favours neither side.
    for (let i = 0; i < runs(); i++) {
      const dir = path.join(base, `nncp-${i}`);
      fs.mkdirSync(dir);
      const nncp = async () => nn.push(await delivered('NNCP', () => nncpRun(dir, postfix)));
      if (i % 2 === 1) await nncp();
      fp.push(await delivered('ferrypost', () => ferrypostRun(pair, postfix))); // (+20 warm-up messages)
      if (i % 2 === 0) await nncp();
      console.log(`  run ${i + 1}: ferrypost ${(N / fp[i].total).toFixed(0)} msg/s, NNCP ${(N / nn[i].total).toFixed(1)} msg/s, ratio ${(nn[i].total / fp[i].total).toFixed(2)}`);
    }
  } finally {
    await postfix.stop();
    rm(base);
  }
  const fpRate = median(fp.map((r) => N / r.total)), nnRate = median(nn.map((r) => N / r.total));
  const ratio = median(fp.map((r, i) => nn[i].total / r.total));
  report('vs-nncp', [{ figure: `ferrypost A → B end to end, ${N} x 4 KiB into Postfix`, value: fpRate, unit: 'msg/s', anchor: 'NNCP exec → xfer → toss → sendmail', anchorValue: nnRate, ratio, target: '>= 20x', met: ratio >= 20 }],
    {
      ratio_note: 'figures: medians of the runs; ratio: median of the per-run ratios (each run: ferrypost and NNCP; NNCP first in runs 2, 4, ...)',
      load: 'the same 4 KiB message (bench/lib/message-4k.eml); ferrypost: smtp-source, 10 sessions; NNCP: nncp-exec 2 at a time (a pipe transport with maxproc 2), as each is fed by an MTA',
      ferrypost_s: fp.map((r) => ({ total: +r.total.toFixed(2), smtp_ingest_done: +r.ingest.toFixed(2) })),
      nncp_s: nn.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, +v.toFixed(1)]))),
    });
}

if (isMain(import.meta.url)) await main();
