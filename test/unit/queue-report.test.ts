// `ferrypost queue`'s join of the tree with the outbox index: it forgets only rows that predate its scan
// (the daemon may index a packet it wrote after the scan read its directory), and a missing tree is an
// error, not an empty queue that wipes the index.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import type { Identities } from '../../src/keys/identities.js';
import { openOutbox, type Outbox, type OutboxRecord } from '../../src/queue/outbox.js';
import { formatQueue, queueReport } from '../../src/queue/report.js';
import { openJournal, type Journal } from '../../src/store/journal.js';

const SELF = 'a'.repeat(40);
const PEER = 'b'.repeat(40);
const ids = { self: { fingerprint: SELF, name: 'me' }, peers: new Map([[PEER, { name: 'peer-b', fingerprint: PEER }]]) } as unknown as Identities;
const N1 = 'a'.repeat(52) + '.pgp';
const N2 = 'b'.repeat(51) + 'q.pgp'; // the last character carries one bit only
const GONE = 'c'.repeat(51) + 'q.pgp';
const row = (name: string, created: number): OutboxRecord => ({ name, id: `id-${name.slice(0, 2)}`, peer: 'peer-b', toNode: PEER, from: 's@x.test', recipients: ['r@y.test'], created });

let base: string;
let tree: string;
let outbox: Outbox;
let journal: Journal;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'fp-qreport-'));
  tree = join(base, 'tree');
  mkdirSync(join(tree, PEER, SELF), { recursive: true });
  outbox = openOutbox(join(base, 'state'));
  journal = openJournal(':memory:');
});
afterEach(() => {
  journal.close();
  outbox.close();
  rmSync(base, { recursive: true, force: true });
});

describe('queueReport', () => {
  it('keeps a row the daemon adds after the scan started; forgets one whose packet left long ago', async () => {
    writeFileSync(join(tree, PEER, SELF, N1), 'x'.repeat(100));
    outbox.record([row(N1, Date.now() - 3_600_000), row(GONE, Date.now() - 120_000)]);
    // The daemon writes and indexes N2 between the listing's scan and its pass over the index.
    const racing: Outbox = {
      ...outbox,
      byNames(names) {
        writeFileSync(join(tree, PEER, SELF, N2), 'y'.repeat(50));
        outbox.record([row(N2, Date.now())]);
        return outbox.byNames(names);
      },
    };
    const first = await queueReport(tree, ids, racing, journal);
    expect(first.outgoing.map((o) => o.name)).toEqual([N1]);
    expect([...outbox.byNames([N1, N2, GONE]).keys()].sort()).toEqual([N1, N2]);
    const again = await queueReport(tree, ids, outbox, journal);
    expect(again.outgoing.map((o) => o.id).sort()).toEqual(['id-aa', 'id-bb']);
    expect(formatQueue(again)).not.toContain('<?>');
  });

  it('prints mailq\'s column line first and its total line last (150 bytes in two packets: 1 Kbytes)', async () => {
    writeFileSync(join(tree, PEER, SELF, N1), 'x'.repeat(100));
    writeFileSync(join(tree, PEER, SELF, N2), 'y'.repeat(50));
    outbox.record([row(N1, Date.now() - 3_600_000), row(N2, Date.now())]);
    const lines = formatQueue(await queueReport(tree, ids, outbox, journal)).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^-Packet ID- +--Size-- +--Age-- +Sender\/Recipient$/);
    expect(lines[1]).toMatch(/^Outgoing: 2 packet\(s\)/);
    expect(lines.at(-1)).toBe('-- 1 Kbytes in 2 packet(s).');
  });

  it('a missing tree (or a file in its place) is a CONFIG error and the index is kept', async () => {
    outbox.record([row(N1, Date.now() - 3_600_000)]);
    rmSync(tree, { recursive: true });
    const err = await queueReport(tree, ids, outbox, journal).catch((e: unknown) => e);
    expect(isFerryError(err, 'CONFIG')).toBe(true);
    expect((err as Error).message).toBe(`tree ${tree} does not exist (node.tree in the config; is the Syncthing folder mounted?)`);
    writeFileSync(tree, 'not a dir');
    const err2 = await queueReport(tree, ids, outbox, journal).catch((e: unknown) => e);
    expect(isFerryError(err2, 'CONFIG')).toBe(true);
    expect(outbox.count()).toBe(1);
  });
});
