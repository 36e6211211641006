// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function (file:line) and inclusive
// time for functions matching a filter, as shares of the sampled time. Usage:
//   node bench/lib/profile-summary.mjs FILE.cpuprofile [topN] [inclusiveRegex]
// Throws on an unreadable or malformed profile.
import fs from 'node:fs';

const [file, topArg, incRe] = process.argv.slice(2);
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const top = Number(topArg ?? 25);
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const dt = prof.timeDeltas;
const selfUs = new Map();
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const d = dt[i] ?? 0;
  total += d;
  selfUs.set(prof.samples[i], (selfUs.get(prof.samples[i]) ?? 0) + d);
}
const label = (n) => {
  const cf = n.callFrame;
  const url = cf.url.replace(/^file:\/\//, '').replace(/.*\/(node_modules\/)/, '$1').replace(/.*\/dist\//, 'dist/');
  return `${cf.functionName || '(anonymous)'} ${url}:${cf.lineNumber + 1}`;
};
const agg = new Map();
for (const [id, us] of selfUs) {
  const l = label(byId.get(id));
  agg.set(l, (agg.get(l) ?? 0) + us);
}
const pct = (us) => ((100 * us) / total).toFixed(1).padStart(5) + '%';
console.log(`total sampled ${(total / 1e6).toFixed(2)} s; self time:`);
for (const [l, us] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${l}`);
// inclusive time by file (a sample counts once per file on its stack)
const incl = new Map();
const re = incRe ? new RegExp(incRe) : null;
for (const [id, us] of selfUs) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    const key = re ? (re.test(label(n)) ? label(n) : null) : (n.callFrame.url.replace(/.*\/(node_modules\/[^/]+|dist\/.*)/, '$1') || n.callFrame.functionName);
    if (key && !seen.has(key)) { seen.add(key); incl.set(key, (incl.get(key) ?? 0) + us); }
  }
}
console.log(`\ninclusive time ${re ? `for functions matching ${re}` : 'by module (dist file or npm package)'}:`);
for (const [l, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${l}`);
