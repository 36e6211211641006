/**
 * Two sites for end-to-end tests: A (offline.test, "the cabin") and B (home.test, "the connected
 * home server"), each a real ferrypost process, sharing one tree directory as Syncthing would.
 * Each ferrypost listens on a free port and delivers by SMTP (or a command) to its site's MTA.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './ports.js';
import { nodePair, startNode, tmpdir, type RunningNode, type TestNode } from './node.js';

export interface SiteNodes {
  base: string;
  tree: string;
  a: TestNode;
  b: TestNode;
  fpPortA: number;
  fpPortB: number;
  start(which: 'a' | 'b'): Promise<RunningNode>;
  stopAll(): Promise<void>;
}

export type Delivery = { method: 'smtp'; port: number } | { method: 'sendmail'; command: string[] };

export async function twoSites(opts: { deliverA: Delivery; deliverB: Delivery; fpPortA?: number; fpPortB?: number }): Promise<SiteNodes> {
  const base = tmpdir('fp-sites-');
  const { a, b, tree } = nodePair(base, { offlineDomain: 'offline.test' });
  const fpPortA = opts.fpPortA ?? (await freePort());
  const fpPortB = opts.fpPortB ?? (await freePort());
  const configure = (n: TestNode, port: number, d: Delivery) =>
    n.edit((doc) => {
      doc.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]);
      doc.setIn(['smtp', 'hostname'], `ferrypost.${n.name}.test`);
      doc.setIn(['delivery'], d.method === 'smtp' ? { method: 'smtp', host: '127.0.0.1', port: d.port, max_connections: 2 } : { method: 'sendmail', command: d.command });
      doc.setIn(['receive', 'retry_initial'], '1s');
      doc.setIn(['receive', 'retry_max'], '2s');
      doc.setIn(['receive', 'rescan_interval'], '2s');
    });
  configure(a, fpPortA, opts.deliverA);
  configure(b, fpPortB, opts.deliverB);
  const running: RunningNode[] = [];
  return {
    base,
    tree,
    a,
    b,
    fpPortA,
    fpPortB,
    async start(which) {
      const r = await startNode(which === 'a' ? a : b);
      running.push(r);
      return r;
    },
    async stopAll() {
      for (const r of running.splice(0)) await r.stop();
    },
  };
}

export function treePackets(tree: string): string[] {
  if (!existsSync(tree)) return [];
  return (readdirSync(tree, { recursive: true }) as string[]).filter((n) => n.endsWith('.pgp')).map((n) => path.join(tree, n));
}
