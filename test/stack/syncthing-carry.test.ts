/**
 * The carry through real Syncthing 1.19: two real ferrypost processes, each with ITS OWN tree,
 * each tree shared by its own Syncthing instance (folder "ferrypost", loopback only). A packet
 * written at one end reaches the other end's tree only through Syncthing, is delivered byte-exact,
 * deleted, and the deletion syncs back. Then the travelling node: A–C and C–B, A and B never meet;
 * C carries the packet over and the deletion back. Fails with the Syncthing/ferrypost log tails.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashFromPacketName, STIGNORE_LINES } from '../../src/tree/layout.js';
import { addPeer, cli, initNode, startNode, tmpdir, type RunningNode, type TestNode } from '../helpers/node.js';
import { freePort } from '../helpers/ports.js';
import { sendSmtp } from '../helpers/stack/smtp-client.js';
import { startSyncthing, type SyncthingInstance } from '../helpers/stack/syncthing.js';

const FOLDER = 'ferrypost';

interface Site {
  node: TestNode;
  tree: string;
  port: number;
  maildir: string;
  run?: RunningNode;
}

/** A (offline.test, default route B) and B (home.test, routes offline.test to A), separate trees. */
async function twoSites(base: string): Promise<{ a: Site; b: Site }> {
  const mk = async (name: string): Promise<Site> => {
    const tree = path.join(base, `tree-${name}`);
    const node = initNode(path.join(base, name), name, ['--tree', tree, '--no-self-peer']);
    const port = await freePort();
    node.edit((d) => {
      d.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]);
      d.setIn(['receive', 'rescan_interval'], '1s');
      d.setIn(['receive', 'retry_initial'], '1s');
      d.setIn(['receive', 'retry_max'], '2s');
    });
    return { node, tree, port, maildir: path.join(node.dir, 'Maildir') };
  };
  const a = await mk('a');
  const b = await mk('b');
  addPeer(a.node, b.node, ['--default']);
  addPeer(b.node, a.node, ['--mail', 'offline.test', '--mail', '*.offline.test']);
  return { a, b };
}

/** Packet files (final names only) under a tree, relative paths. */
function packets(tree: string): string[] {
  if (!existsSync(tree)) return [];
  return (readdirSync(tree, { recursive: true }) as string[]).filter((n) => hashFromPacketName(path.basename(n)) !== undefined).sort();
}

function mails(maildir: string): Buffer[] {
  const dir = path.join(maildir, 'new');
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')).map((n) => readFileSync(path.join(dir, n))) : [];
}

/** Polls until cond holds; resolves with the elapsed ms since `since`. */
async function until(what: string, cond: () => boolean, since: number, ms = 30_000, details = () => ''): Promise<number> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout (${ms} ms) waiting for ${what}\n${details()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - since;
}

/** Records every temp-file name ever seen in the trees (sampled every 20 ms), for the report. */
function tempNameSampler(trees: string[]): { seen: Set<string>; stop(): void } {
  const seen = new Set<string>();
  const timer = setInterval(() => {
    for (const t of trees) {
      try {
        for (const n of readdirSync(t, { recursive: true }) as string[]) {
          if (/^\.(syncthing|ferrypost)\./.test(path.basename(n))) seen.add(`${path.basename(t)}:${path.basename(n).replace(/[0-9a-z]{20,}/g, '…')}`);
        }
      } catch {
        /* a directory vanished mid-scan */
      }
    }
  }, 20);
  return { seen, stop: () => clearInterval(timer) };
}

/** CRLF message with a leading-dot line, 8-bit text and some bulk, so Syncthing pulls blocks. */
function message(subject: string, from: string, to: string, bulkKiB = 256): Buffer {
  const bulk = Array.from({ length: bulkKiB * 16 }, (_, i) => `${String(i).padStart(6, '0')} ${'y'.repeat(55)}\r\n`).join('');
  return Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${Date.now()}.${subject.replace(/\W/g, '')}@test>\r\n\r\n` +
      `Gr\xfc\xdfe aus der H\xfctte\r\n.a line starting with a dot\r\n${bulk}end\r\n`,
    'latin1',
  );
}

/** Maildir delivery prepends Return-Path + Delivered-To; the message must follow unchanged. */
function expectDelivered(file: Buffer, msg: Buffer, from: string, rcpt: string): void {
  expect(file.toString('latin1')).toMatch(new RegExp(`^Return-Path: <${from}>\\r\\nDelivered-To: ${rcpt}\\r\\n`));
  expect(file.length).toBeGreaterThan(msg.length);
  expect(file.subarray(file.length - msg.length).equals(msg)).toBe(true);
}

function expectQuarantineEmpty(site: Site): void {
  const r = cli(['quarantine', 'list', '--json'], { config: site.node.config });
  expect(r.status, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual([]);
  expect(site.run!.events('rx.quarantined')).toEqual([]);
}

const queuedId = (reply: string) => /queued as ([a-z2-7]{26})/.exec(reply)?.[1];

/** Sends one message into site's SMTP listener and checks the packet is in its own tree. */
async function send(site: Site, from: string, to: string, subject: string): Promise<{ msg: Buffer; id: string; rel: string; t0: number }> {
  const msg = message(subject, from, to);
  const t0 = Date.now();
  const reply = await sendSmtp(site.port, { from, to: [to], raw: msg });
  const id = queuedId(reply);
  expect(id, reply).toBeDefined();
  const pk = packets(site.tree);
  expect(pk).toHaveLength(1);
  return { msg, id: id!, rel: pk[0]!, t0 };
}

const logTails = (...st: SyncthingInstance[]) => () => st.map((s) => `--- syncthing ${s.name}\n${s.log().slice(-2000)}`).join('\n');

describe('carry through real Syncthing, two instances', () => {
  let a: Site;
  let b: Site;
  let stA: SyncthingInstance | undefined;
  let stB: SyncthingInstance | undefined;
  let sampler: ReturnType<typeof tempNameSampler> | undefined;

  beforeAll(async () => {
    ({ a, b } = await twoSites(tmpdir('fp-stcarry-')));
    [stA, stB] = await Promise.all([startSyncthing('a'), startSyncthing('b')]);
    await stA.addDevice({ ...stB, name: 'b' });
    await stB.addDevice({ ...stA, name: 'a' });
    await stA.shareFolder(FOLDER, a.tree, [stB]);
    await stB.shareFolder(FOLDER, b.tree, [stA]);
    await stA.waitConnected(stB);
    a.run = await startNode(a.node);
    b.run = await startNode(b.node);
    sampler = tempNameSampler([a.tree, b.tree]);
  });

  afterAll(async () => {
    sampler?.stop();
    console.log(`temp names seen in the trees: ${[...(sampler?.seen ?? [])].join(', ') || 'none'}`);
    await Promise.all([a?.run?.stop(), b?.run?.stop()]);
    await Promise.all([stA?.stop(), stB?.stop()]);
  });

  it('Syncthing loaded the .stignore lines ferrypost init wrote', async () => {
    const want = STIGNORE_LINES.filter((l) => !l.startsWith('//'));
    for (const st of [stA!, stB!]) expect(await st.ignores(FOLDER)).toEqual(expect.arrayContaining(want));
  });

  it('A → B: packet carried, delivered byte-exact, deleted at B, deletion synced back to A', async () => {
    // Stray temp files: ferrypost's own must stay local (.stignore), Syncthing's must never be read as packets.
    const outA = path.join(a.tree, b.node.fingerprint, a.node.fingerprint);
    const inB = path.join(b.tree, b.node.fingerprint, a.node.fingerprint);
    mkdirSync(outA, { recursive: true });
    mkdirSync(inB, { recursive: true });
    writeFileSync(path.join(outA, '.ferrypost.0123456789abcdef.tmp'), 'half-written packet');
    writeFileSync(path.join(inB, `.syncthing.${'a'.repeat(52)}.pgp.tmp`), 'half-pulled packet');

    const { msg, id, rel, t0 } = await send(a, 'alice@offline.test', 'carol@home.test', 'cabin to home');
    expect(rel.split(path.sep).slice(0, 2)).toEqual([b.node.fingerprint, a.node.fingerprint]);
    const delivered = await b.run!.waitForEvent('rx.delivered', 30_000, (l) => l.packet === id);
    const tDeliver = Date.now() - t0;
    expect(delivered.from).toBe(a.node.fingerprint);
    const tMail = await until('mail in B Maildir', () => mails(b.maildir).length === 1, t0);
    const tGoneB = await until('packet gone at B', () => packets(b.tree).length === 0, t0);
    const tGoneA = await until('deletion synced back to A', () => packets(a.tree).length === 0, t0, 30_000, logTails(stA!, stB!));
    console.log(`A→B: delivered at B after ${tDeliver} ms (Maildir ${tMail} ms), gone at B ${tGoneB} ms, gone at A ${tGoneA} ms (deletion back: ${tGoneA - tDeliver} ms)`);
    expectDelivered(mails(b.maildir)[0]!, msg, 'alice@offline.test', 'carol@home.test');
    expect(b.run!.events('rx.injected')).toHaveLength(1);

    // The stray temp files: not carried, not delivered, not quarantined.
    await new Promise((r) => setTimeout(r, 1500));
    expect(existsSync(path.join(inB, '.ferrypost.0123456789abcdef.tmp'))).toBe(false);
    expect(existsSync(path.join(outA, `.syncthing.${'a'.repeat(52)}.pgp.tmp`))).toBe(false);
    expect(mails(b.maildir)).toHaveLength(1);
    expectQuarantineEmpty(a);
    expectQuarantineEmpty(b);
  }, 90_000);

  it('B → A in the same setup', async () => {
    const { msg, id, rel, t0 } = await send(b, 'carol@home.test', 'bob@offline.test', 'home to cabin');
    expect(rel.split(path.sep).slice(0, 2)).toEqual([a.node.fingerprint, b.node.fingerprint]);
    await a.run!.waitForEvent('rx.delivered', 30_000, (l) => l.packet === id);
    const tDeliver = Date.now() - t0;
    await until('mail in A Maildir', () => mails(a.maildir).length === 1, t0);
    const tGoneB = await until('deletion synced back to B', () => packets(b.tree).length === 0, t0, 30_000, logTails(stA!, stB!));
    console.log(`B→A: delivered at A after ${tDeliver} ms, gone at B after ${tGoneB} ms`);
    expect(packets(a.tree)).toEqual([]);
    expectDelivered(mails(a.maildir)[0]!, msg, 'carol@home.test', 'bob@offline.test');
    expect(mails(b.maildir)).toHaveLength(1); // nothing new at B
    expectQuarantineEmpty(a);
    expectQuarantineEmpty(b);
  }, 90_000);
});

describe('the travelling node: A–C and C–B, A and B never meet', () => {
  let a: Site;
  let b: Site;
  let carrierDir: string;
  let stA: SyncthingInstance | undefined;
  let stB: SyncthingInstance | undefined;
  let stC: SyncthingInstance | undefined;

  beforeAll(async () => {
    const base = tmpdir('fp-sttravel-');
    ({ a, b } = await twoSites(base));
    carrierDir = path.join(base, 'carrier');
    [stA, stB, stC] = await Promise.all([startSyncthing('ta'), startSyncthing('tb'), startSyncthing('tc')]);
    await stC.addDevice({ ...stA, name: 'a' });
    await stC.addDevice({ ...stB, name: 'b' });
    await stC.pause(stB); // C starts at A's place
    await stA.addDevice({ ...stC, name: 'c' });
    await stB.addDevice({ ...stC, name: 'c' });
    await stA.shareFolder(FOLDER, a.tree, [stC]);
    await stB.shareFolder(FOLDER, b.tree, [stC]);
    await stC.shareFolder(FOLDER, carrierDir, [stA, stB]);
    await stC.waitConnected(stA);
    a.run = await startNode(a.node);
    b.run = await startNode(b.node);
  });

  afterAll(async () => {
    await Promise.all([a?.run?.stop(), b?.run?.stop()]);
    await Promise.all([stA?.stop(), stB?.stop(), stC?.stop()]);
  });

  it('C carries the packet to B and the deletion back to A; delivered exactly once', async () => {
    const details = logTails(stA!, stB!, stC!);
    const { msg, id, rel, t0 } = await send(a, 'alice@offline.test', 'carol@home.test', 'by carrier');
    const tAtC = await until('packet at the carrier', () => packets(carrierDir).includes(rel), t0, 30_000, details);
    await new Promise((r) => setTimeout(r, 3000)); // B is not reachable: nothing may arrive
    expect(await stB!.connected(stC!)).toBe(false);
    expect(packets(b.tree)).toEqual([]);
    expect(mails(b.maildir)).toEqual([]);

    // C travels to B.
    await stC!.pause(stA!);
    const t1 = Date.now();
    await stC!.resume(stB!);
    await stC!.waitConnected(stB!, 30_000);
    const tLinkB = Date.now() - t1;
    await b.run!.waitForEvent('rx.delivered', 30_000, (l) => l.packet === id);
    const tDeliver = Date.now() - t1;
    const tGoneC = await until('deletion reaches the carrier', () => packets(carrierDir).length === 0, t1, 30_000, details);
    expect(packets(a.tree)).toEqual([rel]); // A has not heard of it yet
    expectDelivered(mails(b.maildir)[0]!, msg, 'alice@offline.test', 'carol@home.test');

    // C travels back to A.
    await stC!.pause(stB!);
    const t2 = Date.now();
    await stC!.resume(stA!);
    await stC!.waitConnected(stA!, 30_000);
    const tLinkA = Date.now() - t2;
    const tGoneA = await until('deletion reaches A', () => packets(a.tree).length === 0, t2, 30_000, details);
    console.log(
      `travel: at C ${tAtC} ms after 250; C→B link ${tLinkB} ms after resume, delivered at B ${tDeliver} ms, ` +
        `deletion at C ${tGoneC} ms; C→A link ${tLinkA} ms, deletion at A ${tGoneA} ms after resume`,
    );

    // Exactly once, and it stays that way (no resurrection from a stale index).
    await new Promise((r) => setTimeout(r, 2000));
    expect(mails(b.maildir)).toHaveLength(1);
    expect(b.run!.events('rx.injected')).toHaveLength(1);
    expect(b.run!.events('rx.delivered')).toHaveLength(1);
    for (const t of [a.tree, b.tree, carrierDir]) expect(packets(t)).toEqual([]);
    expect(mails(a.maildir)).toEqual([]);
    // A and B never met: each Syncthing knows only the carrier.
    const conns = async (st: SyncthingInstance) => Object.keys(((await st.api('GET', '/rest/system/connections')) as { connections: object }).connections);
    expect(await conns(stA!)).not.toContain(stB!.deviceId);
    expect(await conns(stB!)).not.toContain(stA!.deviceId);
    expectQuarantineEmpty(a);
    expectQuarantineEmpty(b);
  }, 150_000);
});
