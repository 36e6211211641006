/**
 * `ferrypost quarantine delete`: by name (all names known, or nothing deleted) and by age (entries
 * without a readable time kept and named), through the real CLI on a node made by `init`; the entries
 * are made by the receiver's own quarantinePacket. The race with a concurrent release is driven
 * through deleteQuarantined's unlink.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { packetNameForHash } from '../../src/tree/layout.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deleteQuarantined } from '../../src/quarantine/delete.js';
import { listQuarantine, quarantineDir, quarantinePacket, REASON_SUFFIX } from '../../src/quarantine/quarantine.js';
import { cli, initNode, tmpdir, type TestNode } from '../helpers/node.js';

const DAY = 86_400_000;
const SENDER = 'a'.repeat(40);

let n: TestNode;
let stateDir: string;
let seq = 0;

/** A packet file quarantined `daysAgo` days ago, as the receiver would; returns its quarantine name. */
async function quarantined(daysAgo: number, bytes = 100): Promise<string> {
  const dir = path.join(n.dir, 'tree', 'incoming-test', SENDER);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, packetNameForHash(createHash('sha256').update(String(++seq)).digest()));
  writeFileSync(file, Buffer.alloc(bytes, 1));
  const e = await quarantinePacket(stateDir, file, { code: 'PACKET_UNKNOWN_SIGNER', message: 'test', fromNode: SENDER }, undefined, new Date(Date.now() - daysAgo * DAY));
  return e.name;
}

const names = async () => (await listQuarantine(stateDir)).map((e) => e.name);

beforeEach(() => {
  n = initNode(tmpdir('fp-qdel-'), 'qdel', ['--no-self-peer']);
  stateDir = path.join(n.dir, 'state');
});
afterEach(() => rmSync(n.dir, { recursive: true, force: true }));

describe('quarantine delete', () => {
  it('by name: deletes the packet and its reason file, durably, and says what it freed', async () => {
    const keep = await quarantined(1);
    const gone = await quarantined(2, 300);
    const r = cli(['quarantine', 'delete', gone], { config: n.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`deleted ${gone} (PACKET_UNKNOWN_SIGNER, 300 bytes)\n-- 1 packet(s) deleted, 300 bytes\n`);
    expect(await names()).toEqual([keep]);
    expect(readdirSync(quarantineDir(stateDir)).sort()).toEqual([keep, keep + REASON_SUFFIX].sort());
  });

  it('by name: one unknown name and nothing is deleted, exit 64 naming it and the list command', async () => {
    const known = await quarantined(1);
    const r = cli(['quarantine', 'delete', known, 'no-such-packet'], { config: n.config });
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/no quarantined packet named no-such-packet .*quarantine list.*nothing deleted/);
    expect(await names()).toEqual([known]);
  });

  it('by age: deletes what is older, keeps the rest and an entry without a readable time (named on stderr)', async () => {
    const old1 = await quarantined(40, 10);
    const old2 = await quarantined(31, 20);
    const young = await quarantined(29);
    const undated = await quarantined(90);
    writeFileSync(path.join(quarantineDir(stateDir), undated + REASON_SUFFIX), 'not json');
    const r = cli(['quarantine', 'delete', '--older-than', '30d'], { config: n.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`deleted ${old1} (PACKET_UNKNOWN_SIGNER, 10 bytes)\ndeleted ${old2} (PACKET_UNKNOWN_SIGNER, 20 bytes)\n-- 2 packet(s) deleted, 30 bytes\n`);
    expect(r.stderr).toBe(`kept ${undated}: its reason file has no time (delete it by name)\n`);
    expect((await names()).sort()).toEqual([young, undated].sort());
    // ... and by name it goes.
    expect(cli(['quarantine', 'delete', undated], { config: n.config }).status).toBe(0);
    expect(await names()).toEqual([young]);
  });

  it('by age on an empty or missing quarantine: nothing to do, exit 0', () => {
    rmSync(quarantineDir(stateDir), { recursive: true, force: true });
    const r = cli(['quarantine', 'delete', '--older-than', '1d'], { config: n.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('-- 0 packet(s) deleted, 0 bytes\n');
    expect(existsSync(quarantineDir(stateDir))).toBe(false);
  });

  it('usage errors exit 64 with what to give, and delete nothing', async () => {
    const e = await quarantined(100);
    const cases: Array<[string[], RegExp]> = [
      [['quarantine', 'delete'], /give either packet names or --older-than DURATION/],
      [['quarantine', 'delete', e, '--older-than', '1d'], /give either packet names or --older-than DURATION/],
      [['quarantine', 'delete', '--older-than', 'soon'], /--older-than "soon" is not a duration \(give e\.g\. 30d, 12h, 90m\)/],
      [['quarantine', 'delete', '--older-than', '30'], /--older-than 30: give a unit \(e\.g\. 30d, 30h, 30m\)/],
      [['quarantine', 'delete', '--older-than', '0s'], /--older-than 0s: must be at least 1m/],
      [['quarantine', 'delete', '--older-than', '59s'], /--older-than 59s: must be at least 1m/],
    ];
    for (const [args, message] of cases) {
      const r = cli(args, { config: n.config });
      expect(r.status, args.join(' ')).toBe(64);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect(await names()).toEqual([e]);
  });

  it('an entry released meanwhile is reported as gone, not an error, and its reason file still goes', async () => {
    const raced = await quarantined(5);
    const other = await quarantined(6);
    const packetPath = path.join(quarantineDir(stateDir), raced);
    // A concurrent `release` takes the packet between the listing and the unlink.
    const racing = async (p: string) => {
      if (p === packetPath) await fsp.unlink(p);
      await fsp.unlink(p);
    };
    const r = await deleteQuarantined(stateDir, { names: [raced, other] }, racing);
    expect(r.vanished.map((e) => e.name)).toEqual([raced]);
    expect(r.deleted.map((e) => e.name)).toEqual([other]);
    expect(readdirSync(quarantineDir(stateDir))).toEqual([]);
  });

  it('a reason file a crash left without its packet: removed by name, and by age when old enough', async () => {
    const byName = await quarantined(1);
    const old = await quarantined(40);
    const young = await quarantined(2);
    for (const n of [byName, old, young]) rmSync(path.join(quarantineDir(stateDir), n)); // the packet went, the reason stayed
    expect(await names()).toEqual([]);
    const r1 = cli(['quarantine', 'delete', byName], { config: n.config });
    expect(r1.status, r1.stderr).toBe(0);
    expect(r1.stdout).toBe(`removed ${byName}.reason.json: its packet was already gone\n-- 0 packet(s) deleted, 0 bytes\n`);
    const r2 = cli(['quarantine', 'delete', '--older-than', '30d'], { config: n.config });
    expect(r2.stdout).toBe(`removed ${old}.reason.json: its packet was already gone\n-- 0 packet(s) deleted, 0 bytes\n`);
    expect(readdirSync(quarantineDir(stateDir))).toEqual([young + REASON_SUFFIX]);
  });

  it('a release whose entry a concurrent delete took meanwhile still succeeds: the packet is back in the tree', async () => {
    const name = await quarantined(3);
    const { releaseQuarantined } = await import('../../src/quarantine/release.js');
    const self = 'b'.repeat(40);
    // The delete runs between the release's link into the tree and its own unlinks.
    const racing = async (p: string) => {
      if (p.endsWith(name)) await deleteQuarantined(stateDir, { names: [name] });
      await fsp.unlink(p);
    };
    const to = await releaseQuarantined(stateDir, path.join(n.dir, 'tree'), self, name, racing);
    expect(existsSync(to)).toBe(true);
    expect(readdirSync(quarantineDir(stateDir))).toEqual([]);
  });
});
