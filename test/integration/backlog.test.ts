/** A tree with thousands of waiting packets is drained completely, each message delivered once. */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { scanInbox } from '../../src/tree/scan.js';
import { enqueueFor, makeKeys, receivingNode, type ReceivingNode } from '../helpers/inproc.js';
import { tmpdir } from '../helpers/node.js';

let rx: ReceivingNode | undefined;
afterAll(async () => rx?.close());

it('drains 1,500 waiting packets, every message delivered exactly once', async () => {
  const [A, B] = await Promise.all([makeKeys('a'), makeKeys('b')]);
  const base = tmpdir('fp-backlog-');
  const tree = path.join(base, 'tree');
  const enqueue = enqueueFor(A, B, tree, path.join(base, 'a'));
  const N = 1500;
  const t0 = Date.now();
  for (let i = 0; i < N; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, N - i) }, (_, j) =>
        enqueue.submit({ from: 'a@offline.test', to: ['b@home.test'] }, Buffer.from(`Subject: ${i + j}\r\n\r\n${'text '.repeat(800)}\r\n`)),
      ),
    );
  }
  const t1 = Date.now();
  expect(await scanInbox(tree, B.fingerprint)).toHaveLength(N);
  rx = receivingNode(B, [A], tree, path.join(base, 'b'));
  await rx.receiver.scanOnce();
  const t2 = Date.now();
  const newDir = path.join(rx.maildir, 'new');
  const delivered = existsSync(newDir) ? readdirSync(newDir) : [];
  expect(delivered).toHaveLength(N);
  expect(new Set(delivered.map((n) => /_([a-z2-7]{26})\./.exec(n)?.[1])).size).toBe(N);
  expect(await scanInbox(tree, B.fingerprint)).toHaveLength(0);
  expect(rx.outcomes.filter((o) => o.outcome !== 'delivered')).toEqual([]);
  console.log(`backlog: wrote ${N} packets in ${t1 - t0} ms, drained in ${t2 - t1} ms (${Math.round((N * 1000) / (t2 - t1))}/s, noisy machine)`);
}, 300_000);
