// A/B of two builds on the large-message receiver's FIRST packet after a start (the figure
// large-message judges): alternates them (A B, B A, ...). Each run sets up a fresh pair of nodes,
// node A (build A) turns one LARGE_MIB (100) MiB message into a packet, node B (the build under test)
// is started, and AB_DELAY ms (500) after its "node.started" the packet is renamed into its inbox;
// timed until the Maildir copy is in new/ and the packet is gone. Prints each run's rate, the
// receiver's CPU, minor page faults and peak RSS (VmHWM) from /proc, then the medians and the median
// of the paired ratios B/A. Throws if B quarantines the packet. A build is a copy of dist/ INSIDE
// the repository, e.g.
//   npm run build && cp -r dist .work/dist-base    # before the change
//   node bench/ab-receive.mjs .work/dist-base dist 10
// Not part of `npm run bench`: it compares builds, it does not measure against an anchor.
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { writeLargeMessage } from './lib/large-body.mjs';
import { countFiles, median, medianRatio, minorFaults, nodePair, processCpuMs, rm, startNode, tmp, waitFor } from './lib/stack.mjs';

const MIB = Number(process.env.LARGE_MIB ?? 100);
const DELAY = Number(process.env.AB_DELAY ?? 500);
const [cliA, cliB] = process.argv.slice(2, 4).map((d) => path.resolve(d, 'cli/main.js'));
if (!cliA || !cliB) throw new Error('usage: node bench/ab-receive.mjs BUILD_A BUILD_B [pairs]  (BUILD = a dist/ copy inside the repo)');
for (const c of [cliA, cliB]) if (!fs.existsSync(c)) throw new Error(`${c} does not exist (a build is a dist/ copy)`);
const pairs = Number(process.argv[4] ?? 3);

async function receiveOnce(msg, cli) {
  const base = tmp('ab-receive');
  try {
    const pair = await nodePair(base, {});
    const a = await startNode(pair.a, { cli: cliA });
    try {
      const tr = nodemailer.createTransport({ host: '127.0.0.1', port: pair.a.port, secure: false, ignoreTLS: true, name: 'bench.test', socketTimeout: 600_000 });
      await tr.sendMail({ envelope: { from: 'a@offline.test', to: ['b@example.org'] }, raw: { path: msg } });
      tr.close();
    } finally {
      await a.stop();
    }
    const [name, ...more] = fs.readdirSync(pair.inboxB).filter((n) => !n.startsWith('.'));
    if (!name || more.length) throw new Error(`expected 1 packet for B, found ${more.length + (name ? 1 : 0)}`);
    const held = path.join(pair.tree, `.held-${name}`);
    fs.renameSync(path.join(pair.inboxB, name), held);
    const b = await startNode(pair.b, { cli });
    try {
      await new Promise((r) => setTimeout(r, DELAY));
      const newDir = path.join(pair.b.dir, 'Maildir', 'new');
      const [cpu0, faults0, t0] = [processCpuMs(b.pid), minorFaults(b.pid), performance.now()];
      fs.renameSync(held, path.join(pair.inboxB, name));
      const quarantine = path.join(pair.b.dir, 'state', 'quarantine');
      await waitFor('maildir delivery', 600_000, () => {
        if (countFiles(quarantine) > 0) throw new Error(`B quarantined the packet instead of delivering it: ${b.logs().slice(-2000)}`);
        return countFiles(newDir) === 1 && countFiles(pair.inboxB) === 0;
      }, 10);
      const s = (performance.now() - t0) / 1000;
      return { mibs: MIB / s, cpuS: (processCpuMs(b.pid) - cpu0) / 1000, faults: minorFaults(b.pid) - faults0, hwmMiB: b.vmHWM() / 1024 };
    } finally {
      await b.stop();
    }
  } finally {
    rm(base);
  }
}

const dir = tmp('ab-receive-msg');
const msg = path.join(dir, 'msg.eml');
const res = { A: [], B: [] };
try {
  writeLargeMessage(msg, MIB, 'b64');
  for (let i = 0; i < pairs; i++) {
    // A B, then B A: neither build always runs right after the other's packet was made.
    const order = i % 2 === 0 ? [['A', cliA], ['B', cliB]] : [['B', cliB], ['A', cliA]];
    for (const [label, cli] of order) {
      const r = await receiveOnce(msg, cli);
      res[label].push(r);
      console.log(`${label} ${String(i + 1).padStart(2)}: ${r.mibs.toFixed(1).padStart(6)} MiB/s  CPU ${r.cpuS.toFixed(2)} s  minor faults ${r.faults}  peak RSS ${r.hwmMiB.toFixed(1)} MiB`);
    }
  }
} finally {
  rm(dir);
}
const rates = (l) => res[l].map((r) => r.mibs);
const wins = rates('B').filter((v, i) => v > rates('A')[i]).length;
console.log(`median A ${median(rates('A')).toFixed(1)} MiB/s, B ${median(rates('B')).toFixed(1)} MiB/s; median of paired ratios B/A ${medianRatio(rates('B'), rates('A')).toFixed(3)}; B faster in ${wins} of ${pairs}`);
