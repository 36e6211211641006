// A/B of two builds on the deliver path: alternates them (A B, B A, ...) draining the cached 2,000
// packets into smtp-sink (AB_POSTFIX=1: into a throwaway Postfix), and prints each drain's rate and
// the daemon's CPU per packet (all threads, from /proc), the steadier figure on a shared machine.
// A build is a copy of dist/ INSIDE the repository (module resolution needs node_modules), e.g.
//   npm run build && cp -r dist .work/dist-base    # before the change
//   node bench/ab-deliver.mjs .work/dist-base dist 4
// Env: B_ENV="K=V,K2=V2" applies to B's runs only (e.g. DELIVER_CONCURRENCY=32 or
// BENCH_NODE_FLAGS=--max-semi-space-size=16 with the same build twice); THREADS=1 prints CPU per thread.
// Not part of `npm run bench`: it compares builds, it does not measure against an anchor.
import path from 'node:path';
import { drainOnce } from './deliver.mjs';
import { cachedPacketSet } from './lib/packets.mjs';
import { median, startPostfix, startSmtpSink } from './lib/stack.mjs';

const N = 2000;
const [a, b] = process.argv.slice(2, 4).map((d) => path.resolve(d, 'cli/main.js'));
if (!a || !b) throw new Error('usage: node bench/ab-deliver.mjs BUILD_A BUILD_B [pairs]  (BUILD = a dist/ copy inside the repo)');
const pairs = Number(process.argv[4] ?? 4);
const bEnv = Object.fromEntries((process.env.B_ENV ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

const target = process.env.AB_POSTFIX ? await startPostfix('ab') : await startSmtpSink();
const rate = { A: [], B: [] }, cpu = { A: [], B: [] };
try {
  const { pair, stash } = await cachedPacketSet('deliver', N);
  for (let i = 0; i < pairs; i++) {
    for (const [k, cli] of i % 2 ? [['B', b], ['A', a]] : [['A', a], ['B', b]]) {
      const stats = {};
      const saved = Object.fromEntries(Object.keys(bEnv).map((key) => [key, process.env[key]]));
      if (k === 'B') Object.assign(process.env, bEnv);
      await target.idle?.(); // Postfix: the previous drain's messages delivered first (drainOnce syncs the disk)
      try {
        rate[k].push(+(await drainOnce(pair, stash, { method: 'smtp', host: '127.0.0.1', port: target.port }, { cli, stats })).toFixed(1));
      } finally {
        for (const [key, v] of Object.entries(saved)) if (v === undefined) delete process.env[key]; else process.env[key] = v;
      }
      cpu[k].push(Math.round((stats.cpuMs / N) * 1000));
      console.log(`${k} ${rate[k].at(-1)} pkt/s, ${cpu[k].at(-1)} µs CPU/packet`);
      if (process.env.THREADS) {
        for (const [t, [u, s]] of Object.entries(stats.threads)) {
          if (u + s > 50) console.log(`   ${t}: user ${Math.round((u / N) * 1000)} sys ${Math.round((s / N) * 1000)} µs/packet`);
        }
      }
    }
  }
} finally {
  await target.stop();
}
console.log(`A ${JSON.stringify(rate.A)} median ${median(rate.A)} pkt/s, CPU ${JSON.stringify(cpu.A)} µs/packet`);
console.log(`B ${JSON.stringify(rate.B)} median ${median(rate.B)} pkt/s, CPU ${JSON.stringify(cpu.B)} µs/packet`);
