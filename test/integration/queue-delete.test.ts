/**
 * `ferrypost queue delete` (postsuper -d for outgoing packets) through the real CLI: by packet id, by
 * the name prefix `queue` shows for a packet the outbox index does not know, by peer; all selectors
 * must match or nothing is deleted. A packet the peer takes meanwhile is reported, not an error.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { loadIdentities } from '../../src/keys/identities.js';
import { deleteOutgoing } from '../../src/queue/delete.js';
import { openOutbox } from '../../src/queue/outbox.js';
import { nodeTreeFs, type TreeFs } from '../../src/tree/fs.js';
import { addPeer, cli, initNode, nodePair, tmpdir, type TestNode } from '../helpers/node.js';

interface Row { peer: string; name: string; id?: string; recipients?: string[] }

let a: TestNode;
let tree: string;
const MSG = 'From: x@cabin.test\r\nSubject: s\r\n\r\nbody\r\n';

function send(...rcpts: string[]): void {
  const r = cli(['sendmail', '-f', 'x@cabin.test', '--', ...rcpts], { config: a.config, input: MSG });
  expect(r.status, r.stderr).toBe(0);
}
const outgoing = (): Row[] => (JSON.parse(cli(['queue', '--json'], { config: a.config }).stdout) as { outgoing: Row[] }).outgoing;
/** Where the packet is: TREE/<its node>/<a>/<name>. */
function packetFile(r: Row): string {
  const rel = (readdirSync(tree, { recursive: true }) as string[]).find((f) => f.endsWith(`/${r.name}`));
  return path.join(tree, rel!);
}

let base: string;
afterEach(() => rmSync(base, { recursive: true, force: true }));
beforeEach(() => {
  base = tmpdir('fp-qdel-out-');
  const pair = nodePair(base, { offlineDomain: 'cabin.test' });
  a = pair.a;
  tree = pair.tree;
  const c = initNode(path.join(base, 'c'), 'c', ['--tree', tree, '--no-self-peer']);
  addPeer(a, c, ['--mail', 'c.test']);
});

describe('queue delete', () => {
  it('by packet id: that packet only, with what it carried; queue no longer lists it', () => {
    send('friend@example.org');
    send('y@c.test');
    const [toB, toC] = [outgoing().find((r) => r.peer === 'b')!, outgoing().find((r) => r.peer === 'c')!];
    const r = cli(['queue', 'delete', toB.id!], { config: a.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^deleted ${toB.id} to b \\(\\d+ bytes, <x@cabin\\.test> -> friend@example\\.org\\)\\n-- 1 packet\\(s\\) deleted here; a device that already carries a copy may still deliver it\\n$`));
    expect(outgoing().map((o) => o.id)).toEqual([toC.id]);
  });

  it('by peer: every packet to it, none to another', () => {
    send('y@c.test');
    send('z@c.test');
    send('friend@example.org');
    const r = cli(['queue', 'delete', '--to', 'c'], { config: a.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/-- 2 packet\(s\) deleted here/);
    expect(outgoing().map((o) => o.peer)).toEqual(['b']);
  });

  it('a packet the outbox index does not know: deleted by the 26 characters queue shows', () => {
    send('friend@example.org');
    rmSync(path.join(a.dir, 'state', 'outbox.sqlite'));
    const shown = cli(['queue'], { config: a.config }).stdout;
    const prefix = /^([a-z2-7]{26}) /m.exec(shown.split('\n').slice(2).join('\n'))![1]!;
    const [row] = outgoing();
    expect(row!.id).toBeUndefined();
    expect(row!.name.startsWith(prefix)).toBe(true);
    const r = cli(['queue', 'delete', prefix], { config: a.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^deleted ${row!.name} to b \\(\\d+ bytes\\)\\n`));
    expect(outgoing()).toEqual([]);
  });

  it('refusals exit 64 and delete nothing: an unknown id beside a known one, no selector, both, an unknown peer', () => {
    send('friend@example.org');
    const [row] = outgoing();
    const cases: Array<[string[], RegExp]> = [
      [['queue', 'delete', row!.id!, 'aaaaaaaaaaaaaaaaaaaaaaaaaa'], /no outgoing packet aaaaaaaaaaaaaaaaaaaaaaaaaa in the tree .*nothing deleted/],
      [['queue', 'delete'], /give either packet ids or --to PEER/],
      [['queue', 'delete', row!.id!, '--to', 'b'], /give either packet ids or --to PEER/],
      [['queue', 'delete', '--to', 'nobody'], /no peer named nobody \(see "ferrypost peer list"; a removed peer: give its fingerprint/],
    ];
    for (const [args, message] of cases) {
      const r = cli(args, { config: a.config });
      expect(r.status, args.join(' ')).toBe(64);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect(outgoing().map((o) => o.id)).toEqual([row!.id]);
  });

  it('a packet its peer takes between the listing and the unlink is reported as taken', async () => {
    send('friend@example.org');
    const [row] = outgoing();
    const file = packetFile(row!);
    expect(existsSync(file)).toBe(true);
    const cfg = loadConfig(a.config);
    const racing: TreeFs = { ...nodeTreeFs, unlink: async (p) => { rmSync(p); await nodeTreeFs.unlink(p); } };
    const outbox = openOutbox(cfg.node.state_dir);
    try {
      const r = await deleteOutgoing(cfg.node.tree, await loadIdentities(cfg), outbox, { ids: [row!.id!] }, racing);
      expect(r.deleted).toEqual([]);
      expect(r.vanished.map((p) => p.id)).toEqual([row!.id]);
    } finally {
      outbox.close();
    }
  });

  it('--to a peer no longer configured: by the fingerprint queue shows for it', () => {
    send('y@c.test');
    send('friend@example.org');
    const toC = outgoing().find((r) => r.peer === 'c') as Row & { toNode: string };
    a.edit((doc) => doc.setIn(['peers'], (doc.toJS() as { peers: Array<{ name: string }> }).peers.filter((p) => p.name !== 'c')));
    const shown = outgoing().find((r) => r.name === toC.name)!;
    expect(shown.peer).toBe(toC.toNode.slice(0, 16)); // no name any more
    expect(cli(['queue', 'delete', '--to', 'c'], { config: a.config }).status).toBe(64);
    const r = cli(['queue', 'delete', '--to', shown.peer.toUpperCase()], { config: a.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/-- 1 packet\(s\) deleted here/);
    expect(outgoing().map((o) => o.peer)).toEqual(['b']);
  });
});
