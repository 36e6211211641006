// deliver-floor: what the deliver target (>= 0.9x Postfix's own accept rate into the same Postfix)
// asks of CPU, measured. Into one Postfix (smtpd -> queue -> discard(8)), 2,000 x 4 KiB messages:
//   smtp-source, 10 sessions (the anchor of bench/deliver.mjs),
//   ferrypost's own SMTP client pool alone (dist/inject/smtp-pool.js, 10 connections, the receiver's
//     default delivery.max_connections), messages already in memory: no tree, no decryption, no journal,
//   ferrypost's receiver draining 2,000 waiting packets (bench/deliver.mjs's drain, cached packet set;
//     its CPU and the machine's from the moment the packets appear, so the daemon's start-up is not in it),
// printing msg/s and CPU per message of the client and of Postfix (master + children, reaped ones
// included via the master's cutime/cstime), and the whole machine's busy CPU per message from
// /proc/stat (which also holds what no process is charged for). Not part of `npm run bench`; no timing
// is asserted. Env: DELIVER_N (the first two rows; the receiver row uses the cached 2,000).
import fs from 'node:fs';
import path from 'node:path';
import { createSmtpPool } from '../dist/inject/smtp-pool.js';
import { drainOnce } from './deliver.mjs';
import { cachedPacketSet } from './lib/packets.mjs';
import { isMain, machineBusyMs, processCpuMs, settleDisk, smtpSourceRun, startPostfix } from './lib/stack.mjs';

const N = Number(process.env.DELIVER_N ?? 2000);
/** 4 KiB messages like smtp-source's, CRLF lines. */
function messages(n) {
  const body = `${'x'.repeat(78)}\r\n`.repeat(50);
  return Array.from({ length: n }, (_, i) => Buffer.from(`From: <bench@gw.test>\r\nTo: <sink@discard.test>\r\nSubject: floor ${i}\r\nMessage-ID: <${i}.floor@gw.test>\r\n\r\n${body}`));
}

async function poolRun(port, msgs) {
  const pool = createSmtpPool({ host: '127.0.0.1', port, lmtp: false, max: 10, timeout: 60_000, heloName: 'floor.test' });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => { // receive.concurrency default: 16 at once
    while (next < msgs.length) {
      const m = msgs[next++];
      await pool.send({ from: 'bench@gw.test', to: ['sink@discard.test'] }, m);
    }
  }));
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  pool.close();
  return { s, cpuMs: (c.user + c.system) / 1000 };
}

let postfix; // the instance every row measures against

async function measure(label, master, fn, n = N) {
  await postfix.idle(); // the previous row's messages delivered: they would share the cores with this one
  settleDisk();
  const p0 = processCpuMs(master, { children: true }), m0 = machineBusyMs();
  const r = await fn();
  // Postfix's CPU and the machine's count its tail too: qmgr and discard(8) finish after the last 250.
  const m1 = machineBusyMs();
  await postfix.idle();
  const machine = (r.machineMs ?? m1 - m0) + (machineBusyMs() - m1);
  const row = { label, rate: n / r.s, clientMs: r.cpuMs / n, postfixMs: (processCpuMs(master, { children: true }) - p0) / n, machineMs: machine / n };
  console.log(`  ${label.padEnd(52)} ${row.rate.toFixed(0).padStart(5)} msg/s | client CPU ${row.clientMs.toFixed(2)} | Postfix CPU ${row.postfixMs.toFixed(2)} | machine busy ${row.machineMs.toFixed(2)} ms/msg`);
  return row;
}

/** The receiver draining the cached packet set into this Postfix; its CPU from /proc. */
async function receiverRun(set, port) {
  const stats = {};
  const rate = await drainOnce(set.pair, set.stash, { method: 'smtp', host: '127.0.0.1', port }, { stats });
  return { s: 2000 / rate, cpuMs: stats.cpuMs, machineMs: stats.machineMs }; // both from the release on: start-up excluded
}

export async function main() {
  console.log(`== deliver-floor: ${N} x 4 KiB into Postfix -> discard, CPU per message (2 cores; see docs/performance.md)`);
  postfix = await startPostfix('dfloor');
  const rows = [];
  try {
    const master = Number(fs.readFileSync(path.join(postfix.dir, 'spool/pid/master.pid'), 'utf8').trim());
    const msgs = messages(N);
    const set = await cachedPacketSet('deliver', 2000);
    await smtpSourceRun(postfix.port, { count: 200 }); // warm-up both
    await poolRun(postfix.port, msgs.slice(0, 200));
    for (let i = 0; i < 2; i++) {
      rows.push(await measure('smtp-source, 10 sessions, connections kept (-d)', master, () => smtpSourceRun(postfix.port, { count: N, reuse: true })));
      rows.push(await measure("ferrypost's SMTP client pool alone, 10 connections", master, () => poolRun(postfix.port, msgs)));
      rows.push(await measure('ferrypost receiver, 2,000 waiting packets', master, () => receiverRun(set, postfix.port), 2000));
    }
  } finally {
    await postfix.stop();
  }
  console.log(`BENCH-JSON ${JSON.stringify({ bench: 'deliver-floor', rows })}`);
  return rows;
}

if (isMain(import.meta.url)) await main();
