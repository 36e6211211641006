// A/B of two builds on the large-message sender: alternates them (A B, B A, ...) receiving the same
// LARGE_MIB (100) MiB message over SMTP into node A, and prints each run's rate (DATA until 250, the
// packet durable), peak RSS (VmHWM) and the daemon's CPU (user/system ms, minor faults) from /proc.
// Body (fourth argument): b64 (large-message's), prose or repeat (lib/large-body.mjs).
// A build is a copy of dist/ INSIDE the repository (module resolution needs node_modules), e.g.
//   npm run build && cp -r dist .work/dist-base    # before the change
//   node bench/ab-send.mjs .work/dist-base dist 4 prose
// AB_SMALL=N: smtp-source sends N x 4 KiB messages (10 sessions) into the same daemon while the large
// message streams (starting 300 ms in), and their rate is printed too: a mixed load.
// Not part of `npm run bench`: it compares builds, it does not measure against an anchor.
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { BODIES, writeLargeMessage } from './lib/large-body.mjs';
import { median, nodePair, procStatFields, rm, smtpSourceRun, startNode, tmp } from './lib/stack.mjs';

const MIB = Number(process.env.LARGE_MIB ?? 100);
const [a, b] = process.argv.slice(2, 4).map((d) => path.resolve(d, 'cli/main.js'));
if (!a || !b) throw new Error('usage: node bench/ab-send.mjs BUILD_A BUILD_B [pairs] [b64|prose|repeat]  (BUILD = a dist/ copy inside the repo)');
const pairs = Number(process.argv[4] ?? 3);
const body = process.argv[5] ?? 'b64';
const small = Number(process.env.AB_SMALL ?? 0);

if (!BODIES.includes(body)) throw new Error(`body must be one of ${BODIES.join(', ')}, not ${body}`);

/** [minor faults, user ms, system ms] of a running process. */
function procStat(pid) {
  const f = procStatFields(pid);
  return [Number(f[7]), Number(f[11]) * 10, Number(f[12]) * 10];
}

const base = tmp('ab-send');
const msg = path.join(base, 'msg.eml');
const size = writeLargeMessage(msg, MIB, body);
const pair = await nodePair(base);
const res = { A: [], B: [] };
try {
  for (let i = 0; i < pairs; i++) {
    for (const [k, cli] of i % 2 ? [['B', b], ['A', a]] : [['A', a], ['B', b]]) {
      const node = await startNode(pair.a, { cli });
      let row;
      try {
        const tr = nodemailer.createTransport({ host: '127.0.0.1', port: pair.a.port, secure: false, ignoreTLS: true, name: 'bench.test', socketTimeout: 600_000 });
        const s0 = procStat(node.pid);
        const t0 = performance.now();
        const large = tr.sendMail({ envelope: { from: 'a@offline.test', to: ['b@example.org'] }, raw: { path: msg } });
        const smallRun = small ? new Promise((r) => setTimeout(r, 300)).then(() => smtpSourceRun(pair.a.port, { count: small, to: 'x@example.org' })) : undefined;
        await large;
        const s = (performance.now() - t0) / 1000;
        const smallS = smallRun ? (await smallRun).s : undefined;
        const [flt, usr, sys] = procStat(node.pid).map((v, j) => v - s0[j]);
        row = { mibs: size / 1048576 / s, hwm: node.vmHWM() / 1024, usr, sys, flt, ...(smallS ? { smallRate: small / smallS } : {}) };
        tr.close();
      } finally {
        await node.stop();
      }
      for (const f of fs.readdirSync(pair.inboxB)) fs.rmSync(path.join(pair.inboxB, f), { force: true, recursive: true });
      res[k].push(row);
      console.log(`${k} ${row.mibs.toFixed(1)} MiB/s, peak RSS ${row.hwm.toFixed(0)} MiB, CPU user ${row.usr} sys ${row.sys} ms, ${row.flt} minor faults${row.smallRate ? `; small messages ${row.smallRate.toFixed(0)} msg/s` : ''}`);
    }
  }
} finally {
  rm(base);
}
for (const k of ['A', 'B']) {
  const r = res[k];
  const smallMedian = small ? `, small messages median ${median(r.map((x) => x.smallRate)).toFixed(0)} msg/s` : '';
  console.log(`${k} median ${median(r.map((x) => x.mibs)).toFixed(1)} MiB/s${smallMedian}, peak RSS ${Math.min(...r.map((x) => x.hwm)).toFixed(0)}–${Math.max(...r.map((x) => x.hwm)).toFixed(0)} MiB, user CPU median ${median(r.map((x) => x.usr))} ms`);
}
