/**
 * The benchmark suite itself (bench/, `npm run bench`) on tiny loads, so a fresh machine's CI proves
 * every benchmark still runs against the real daemons (Postfix, smtp-source/smtp-sink, NNCP, gpg)
 * and reports its figures, its anchor's and its checks (delivered, not bounced; Postfix's discard
 * count). Nothing about speed is asserted: the machine is shared (docs/performance.md).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(tmpdir(), 'fp-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench/run-all.mjs on tiny loads', () => {
  it('runs every benchmark to its report, each with its anchor where it has one', () => {
    const results = path.join(dir, 'latest.json');
    const env = {
      ...process.env,
      BENCH_RESULTS: results, BENCH_CACHE: path.join(dir, 'cache'), BENCH_RUNS: '1',
      INGEST_N: '40', DELIVER_N: '40', NNCP_N: '10', LATENCY_N: '10', BACKLOG_N: '60', BACKLOG_REF_N: '30', LARGE_MIB: '2',
    };
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bench/run-all.mjs')], { env, encoding: 'utf8', timeout: 600_000 });
    expect(r.status, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`).toBe(0);
    const out = JSON.parse(readFileSync(results, 'utf8')) as { failed: string[]; results: Array<{ bench: string; rows: Array<{ value: number; anchorValue?: number; ratio?: number }> }> };
    expect(out.failed).toEqual([]);
    const byName = new Map(out.results.map((b) => [b.bench, b.rows]));
    expect([...byName.keys()].sort()).toEqual(['backlog', 'carrier-bytes', 'deliver', 'large-message', 'latency', 'smtp-ingest', 'vs-nncp']);
    for (const [name, rows] of byName) {
      expect(rows.length, name).toBeGreaterThan(0);
      for (const row of rows) expect(Number.isFinite(row.value), `${name}: ${JSON.stringify(row)}`).toBe(true);
    }
    // The compared benchmarks carry their anchor's figure and the ratio measured in the same run.
    for (const name of ['smtp-ingest', 'deliver', 'vs-nncp', 'large-message', 'backlog']) {
      const anchored = byName.get(name)!.filter((row) => row.anchorValue !== undefined);
      expect(anchored.length, name).toBeGreaterThan(0);
      for (const row of anchored) expect(row.anchorValue! > 0 && Number.isFinite(row.ratio ?? 1), `${name}: ${JSON.stringify(row)}`).toBe(true);
    }
    expect(r.stdout).toMatch(/^\| benchmark \| figure \| ferrypost \| anchor \|/m);
  }, 900_000);
});
