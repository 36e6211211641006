// Where ingest's CPU goes, per thread: 1,000 x 4 KiB through smtp-source (10 sessions) into one node,
// then utime/stime of each of the daemon's threads from /proc/<pid>/task, per message. The main
// thread, V8's helper threads (GC, compilation) and libuv's pool (fsync, creating opens) show up
// as separate rows. Env: INGEST_N, BENCH_NODE_FLAGS (e.g. --single-threaded). Not part of `npm run bench`.
import fs from 'node:fs';
import { nodePair, rm, smtpSource, startNode, tmp } from './lib/stack.mjs';

const N = Number(process.env.INGEST_N ?? 1000);
const threads = (pid) => Object.fromEntries(fs.readdirSync(`/proc/${pid}/task`).map((t) => {
  const s = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
  const f = s.split(') ')[1].split(' ');
  return [`${t}:${s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'))}`, [Number(f[11]) * 10, Number(f[12]) * 10]]; // USER_HZ 100 → ms
}));

const base = tmp('ingest-threads');
const { a } = await nodePair(base);
const node = await startNode(a);
try {
  await smtpSource(a.port, { count: 50 }); // warm-up
  const before = threads(node.pid);
  const t0 = performance.now();
  await smtpSource(a.port, { count: N });
  const secs = (performance.now() - t0) / 1000;
  const after = threads(node.pid);
  console.log(`${(N / secs).toFixed(0)} msg/s; CPU per message by thread (µs):`);
  let user = 0, sys = 0;
  for (const [k, [u, s]] of Object.entries(after)) {
    const [u0, s0] = before[k] ?? [0, 0];
    const du = ((u - u0) / N) * 1000, ds = ((s - s0) / N) * 1000;
    user += du;
    sys += ds;
    if (du + ds >= 20) console.log(`  ${k}: user ${du.toFixed(0)} sys ${ds.toFixed(0)}`);
  }
  console.log(`  all threads: user ${user.toFixed(0)} sys ${sys.toFixed(0)}`);
} finally {
  await node.stop();
  rm(base);
}
