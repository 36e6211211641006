// latency: a packet appears in B's inbox the way Syncthing finishes a file (write
// `.syncthing.NAME.tmp`, then rename to NAME); time from the rename to the moment a tiny SMTP sink
// (smtp-server, in this process; it neither queues nor fsyncs) has written its 250 to B's injection. One packet at a time, LATENCY_N
// (500) packets or until LATENCY_MAX_S (60 s) has passed, whichever comes first. Anchor: the same
// sink's 250 for a message sent straight by nodemailer (no ferrypost), i.e. the floor of the path.
// Throws if a packet is not delivered within 30 s.
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { makePackets, resetState } from './lib/packets.mjs';
import { isMain, nodePair, percentile, report, rm, startNode, tmp, waitFor } from './lib/stack.mjs';

const N = Number(process.env.LATENCY_N ?? 500);
const MAX_S = Number(process.env.LATENCY_MAX_S ?? 60);

function startSink() {
  const state = { count: 0, last: 0 };
  const server = new SMTPServer({ disabledCommands: ['AUTH', 'STARTTLS'], disableReverseLookup: true, logger: false, onData(stream, _s, cb) {
    stream.on('data', () => {});
    stream.on('end', () => { cb(); state.count++; state.last = performance.now(); }); // after the 250 is written
  } });
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res({ server, state, port: server.server.address().port })));
}

export async function main() {
  const base = tmp('latency');
  const sink = await startSink();
  const pair = await nodePair(base, { delivery: { method: 'smtp', host: '127.0.0.1', port: sink.port } });
  const stash = path.join(base, 'stash');
  const lat = [], direct = [];
  const gen = await makePackets(pair, N, stash, { sessions: 10 });
  console.log(`  (generated ${N} packets in ${gen.secs.toFixed(1)} s)`);
  resetState(pair.b);
  const node = await startNode(pair.b);
  const names = fs.readdirSync(stash);
  const deadline = Date.now() + MAX_S * 1000;
  try {
    for (const name of names) {
      if (Date.now() > deadline) break;
      const before = sink.state.count;
      const tmpName = path.join(pair.inboxB, `.syncthing.${name}.tmp`);
      fs.copyFileSync(path.join(stash, name), tmpName);
      const t0 = performance.now();
      fs.renameSync(tmpName, path.join(pair.inboxB, name));
      await waitFor(`delivery of ${name}`, 30_000, () => sink.state.count > before, 1);
      lat.push(sink.state.last - t0);
    }
    const tr = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true, name: 'bench.test', pool: true, maxConnections: 1 });
    const raw = `From: a@offline.test\r\nTo: b@x.test\r\nSubject: t\r\n\r\n${'x'.repeat(4000)}\r\n`;
    for (let i = 0; i < 100; i++) {
      const t0 = performance.now();
      await tr.sendMail({ envelope: { from: 'a@offline.test', to: ['b@x.test'] }, raw });
      direct.push(performance.now() - t0);
    }
    tr.close();
  } finally {
    await node.stop();
    sink.server.close();
    rm(base);
  }
  const p50 = percentile(lat, 50), p99 = percentile(lat, 99), d50 = percentile(direct, 50);
  report('latency', [
    { figure: `rename into tree → MTA 250, p50 over ${lat.length} packets one by one`, value: p50, unit: 'ms', anchor: 'direct SMTP send (nodemailer, pooled) to the same sink, p50', anchorValue: d50, ratio: p50 / d50, target: 'p50 <= 200 ms', met: p50 <= 200 },
    { figure: 'rename → 250, p99', value: p99, unit: 'ms', anchor: 'direct SMTP p99', anchorValue: percentile(direct, 99) },
    { figure: 'rename → 250, max', value: Math.max(...lat), unit: 'ms' },
  ], { packets: lat.length, note: lat.length < N ? `stopped after ${MAX_S} s (LATENCY_MAX_S)` : 'all packets' });
}

if (isMain(import.meta.url)) await main();
