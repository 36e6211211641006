/**
 * Large packets (> IN_MEMORY_PACKET_BYTES) for a Maildir: decoded straight into the Maildir's tmp/
 * file and renamed into new/ only after every check. Byte-exact with and without the prefix lines;
 * a bad packet leaves nothing in the Maildir (tmp/ included) and is quarantined; a failing staged
 * write falls back to the work file and inject() (same result as before staging); a resumed packet
 * whose file is already in new/ is not delivered twice; crash leftovers in tmp/ are removed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMaildirInjector, type MaildirFs } from '../../src/inject/maildir.js';
import { syncFailsOnCreate } from '../helpers/maildir-fs.js';
import type { Injector } from '../../src/inject/types.js';
import type { GcPacer } from '../../src/memory/gc-pacer.js';
import { listQuarantine } from '../../src/quarantine/quarantine.js';
import { IN_MEMORY_MESSAGE_BYTES, IN_MEMORY_PACKET_BYTES } from '../../src/receive/verify.js';
import { packetNameForHash } from '../../src/tree/layout.js';
import { enqueueFor, makeKeys, receivingNode, type NodeKeys, type ReceivingNode } from '../helpers/inproc.js';
import { tmpdir } from '../helpers/node.js';

let A: NodeKeys, B: NodeKeys;
beforeAll(async () => {
  [A, B] = await Promise.all([makeKeys('a'), makeKeys('b')]);
});

let base: string;
let tree: string;
let rx: ReceivingNode | undefined;
afterEach(async () => {
  await rx?.close();
  rx = undefined;
});

/** ~2 MiB of CRLF lines (random base64: the packet stays over the in-memory limit after zlib). */
function largeMessage(eol = '\r\n'): Buffer {
  const body = randomBytes(1536 * 1024).toString('base64').replace(/.{76}/g, `$&${eol}`);
  return Buffer.from(`From: a@offline.test${eol}To: b@home.test${eol}Subject: big${eol}${eol}${body}${eol}`);
}

/** An existing mailbox (staging writes only into one; a missing one is made by inject() after the checks). */
function makeMaildir(dir: string): void {
  for (const sub of ['tmp', 'new', 'cur']) mkdirSync(path.join(dir, sub), { recursive: true });
}

function setup(opts: { addHeaders?: boolean; fs?: MaildirFs; injector?: Injector; gcPacer?: GcPacer; noMaildir?: boolean } = {}): ReceivingNode {
  base = tmpdir('fp-large-md-');
  tree = path.join(base, 'tree');
  const maildir = path.join(base, 'b', 'Maildir');
  if (!opts.noMaildir) makeMaildir(maildir);
  const injector =
    opts.injector ??
    createMaildirInjector({ method: 'maildir', path: maildir, add_headers: opts.addHeaders ?? false }, { hostname: 'test.invalid', ...(opts.fs ? { fs: opts.fs } : {}) });
  rx = receivingNode(B, [A], tree, path.join(base, 'b'), { injector, ...(opts.gcPacer ? { gcPacer: opts.gcPacer } : {}) });
  return rx;
}

async function send(message: Buffer, to = ['b@home.test']): Promise<{ path: string; id: string }> {
  const q = await enqueueFor(A, B, tree, path.join(base, 'a')).submit({ from: 'a@offline.test', to }, message);
  expect(readFileSync(q[0]!.path).length).toBeGreaterThan(IN_MEMORY_PACKET_BYTES);
  return { path: q[0]!.path, id: q[0]!.id };
}

function files(r: ReceivingNode, sub: 'tmp' | 'new' | 'cur'): string[] {
  const dir = path.join(r.maildir, sub);
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** The work file path was not taken (it creates work/): the message went straight into the Maildir. */
function expectStaged(r: ReceivingNode): void {
  expect(existsSync(path.join(r.stateDir, 'work'))).toBe(false);
}

/** No work file left behind. */
function expectNoWorkFile(r: ReceivingNode): void {
  const work = path.join(r.stateDir, 'work');
  expect(existsSync(work) ? readdirSync(work) : []).toEqual([]);
}

describe('large packet into a Maildir', () => {
  it('without prefix lines: byte-exact in new/, tmp/ empty, no work file, packet removed', async () => {
    const r = setup();
    const msg = largeMessage();
    const p = await send(msg);
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    const got = files(r, 'new');
    expect(got).toHaveLength(1);
    expect(got[0]).toContain(`_${p.id}.`);
    expect(got[0]).toMatch(new RegExp(`,S=${msg.length}$`));
    expect(readFileSync(path.join(r.maildir, 'new', got[0]!)).equals(msg)).toBe(true);
    expect(files(r, 'tmp')).toEqual([]);
    expect(existsSync(p.path)).toBe(false);
    expectStaged(r);
  });

  it('into a Maildir that does not exist yet: through the work file, the Maildir made only after the checks', async () => {
    const r = setup({ noMaildir: true });
    const msg = largeMessage();
    await send(msg);
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    const got = files(r, 'new');
    expect(got).toHaveLength(1);
    expect(readFileSync(path.join(r.maildir, 'new', got[0]!)).equals(msg)).toBe(true);
    expectNoWorkFile(r);
  });

  it.each([['\r\n'], ['\n']])('with Return-Path/Delivered-To (line ending %j): prefix + exact message, size in the name', async (eol) => {
    const r = setup({ addHeaders: true });
    const msg = largeMessage(eol);
    await send(msg);
    await r.receiver.scanOnce();
    const got = files(r, 'new');
    expect(got).toHaveLength(1);
    const bytes = readFileSync(path.join(r.maildir, 'new', got[0]!));
    const prefix = Buffer.from(`Return-Path: <a@offline.test>${eol}Delivered-To: b@home.test${eol}`);
    expect(bytes.subarray(0, prefix.length).equals(prefix)).toBe(true);
    expect(bytes.subarray(prefix.length).equals(msg)).toBe(true);
    expect(got[0]).toMatch(new RegExp(`,S=${bytes.length}$`));
    expect(files(r, 'tmp')).toEqual([]);
    expectStaged(r);
  });

  it('counts the packet file and the decoded message for the GC pacer', async () => {
    let counted = 0;
    const r = setup({ gcPacer: { account: (n) => (counted += n), active: () => true } });
    const msg = largeMessage();
    const p = await send(msg);
    const size = statSync(p.path).size;
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    expect(counted).toBe(size + msg.length);
  });

  it('through a work file (an injector that does not stage): the read-back is counted too', async () => {
    let counted = 0;
    const r = setup({ injector: spyInjector(false).injector, gcPacer: { account: (n) => (counted += n), active: () => true } });
    const msg = largeMessage();
    const p = await send(msg);
    const size = statSync(p.path).size;
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    expect(counted).toBe(size + 2 * msg.length); // the packet, the decoded message, the work file read back
    expectNoWorkFile(r);
  });

  /** A message of exactly `size` bytes of one repeated line: its packet stays small whatever the size. */
  function repeatedMessage(size: number): Buffer {
    const line = 'All work and no play makes Jack a dull boy, said the ship to the cabin.\r\n';
    return Buffer.from(`Subject: repeated\r\n\r\n${line.repeat(Math.ceil(size / line.length))}`).subarray(0, size);
  }

  /** A Maildir injector whose stage() calls are counted, or which does not stage at all. */
  function spyInjector(staging: boolean): { injector: Injector; maildir: string; staged: () => number } {
    let staged = 0;
    const maildir = path.join(tmpdir('fp-large-md-inj-'), 'Maildir');
    makeMaildir(maildir);
    const inner = createMaildirInjector({ method: 'maildir', path: maildir, add_headers: false }, { hostname: 'test.invalid' });
    const injector: Injector = {
      name: inner.name,
      inject: (req) => inner.inject(req),
      ...(staging ? { stage: async (req: Parameters<NonNullable<Injector['stage']>>[0]) => ((staged += 1), inner.stage!(req)) } : {}),
      close: () => inner.close(),
    };
    return { injector, maildir, staged: () => staged };
  }

  it.each([
    [IN_MEMORY_MESSAGE_BYTES, 0],
    [IN_MEMORY_MESSAGE_BYTES + 1, 1],
  ])('a small packet holding a %i-byte message of one repeated line: staged only over the in-memory limit (%i)', async (size, stagedCalls) => {
    const spy = spyInjector(true);
    const r = setup({ injector: spy.injector });
    const msg = repeatedMessage(size);
    const q = await enqueueFor(A, B, tree, path.join(base, 'a')).submit({ from: 'a@offline.test', to: ['b@home.test'] }, msg);
    expect(statSync(q[0]!.path).size).toBeLessThan(IN_MEMORY_PACKET_BYTES); // read into memory, but...
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    expect(spy.staged()).toBe(stagedCalls); // ...over the limit the message went to its destination as it was decoded
    const got = readdirSync(path.join(spy.maildir, 'new'));
    expect(got).toHaveLength(1);
    expect(readFileSync(path.join(spy.maildir, 'new', got[0]!)).equals(msg)).toBe(true);
    expectStaged(r);
  });

  it('the same into an injector that does not stage: through a work file, removed after delivery', async () => {
    const spy = spyInjector(false);
    let counted = 0;
    const r = setup({ injector: spy.injector, gcPacer: { account: (n) => (counted += n), active: () => true } });
    const msg = repeatedMessage(IN_MEMORY_MESSAGE_BYTES + 1);
    const q = await enqueueFor(A, B, tree, path.join(base, 'a')).submit({ from: 'a@offline.test', to: ['b@home.test'] }, msg);
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    const got = readdirSync(path.join(spy.maildir, 'new'));
    expect(readFileSync(path.join(spy.maildir, 'new', got[0]!)).equals(msg)).toBe(true);
    expect(existsSync(q[0]!.path)).toBe(false);
    expect(counted).toBe(2 * msg.length); // decoded into the work file, read back (the packet came in memory)
    expectNoWorkFile(r);
  });

  it('two recipients in one maildir: one staged copy, both recorded', async () => {
    const r = setup({ addHeaders: true });
    const msg = largeMessage();
    await send(msg, ['b@home.test', 'c@home.test']);
    await r.receiver.scanOnce();
    const got = files(r, 'new');
    expect(got).toHaveLength(1);
    expect(readFileSync(path.join(r.maildir, 'new', got[0]!)).subarray(-msg.length).equals(msg)).toBe(true);
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    expectStaged(r);
  });

  it('tampered late (renamed to match its hash): staged, then removed; quarantined, nothing in new/ or tmp/', async () => {
    const r = setup();
    const p = await send(largeMessage());
    const b = readFileSync(p.path);
    // In the last bytes (MDC / signature): the whole message has been staged when the check fails.
    b.writeUInt8(b[b.length - 100]! ^ 0x01, b.length - 100);
    writeFileSync(p.path, b);
    renameSync(p.path, path.join(path.dirname(p.path), packetNameForHash(createHash('sha256').update(b).digest())));
    await r.receiver.scanOnce();
    const q = await listQuarantine(r.stateDir);
    expect(q.map((e) => e.reason.code)).toEqual([expect.stringMatching(/^PACKET_(DECRYPT|BAD_SIGNATURE|MALFORMED)$/)]);
    expect(existsSync(path.join(r.maildir, 'tmp'))).toBe(true); // the staged file was written...
    expect(files(r, 'tmp')).toEqual([]); // ...and removed
    expect(files(r, 'new')).toEqual([]);
    expectStaged(r);
  });

  it('tampered mid-stream (renamed to match its hash): quarantined, nothing in new/ or tmp/', async () => {
    const r = setup();
    const p = await send(largeMessage());
    const b = readFileSync(p.path);
    // Mid-stream the inflater fails at once (a bad deflate block). The decoder reads the first 1 MiB of
    // plaintext before it knows a message is large (small ones are verified from one buffer), and the
    // middle of this packet is ~1 MiB of plaintext: whether staging had begun varies with the random
    // content, so only the outcome is checked.
    b.writeUInt8(b[b.length >> 1]! ^ 0x01, b.length >> 1);
    writeFileSync(p.path, b);
    renameSync(p.path, path.join(path.dirname(p.path), packetNameForHash(createHash('sha256').update(b).digest())));
    await r.receiver.scanOnce();
    const q = await listQuarantine(r.stateDir);
    expect(q.map((e) => e.reason.code)).toEqual([expect.stringMatching(/^PACKET_(DECRYPT|BAD_SIGNATURE|MALFORMED)$/)]);
    expect(files(r, 'tmp')).toEqual([]);
    expect(files(r, 'new')).toEqual([]);
    expectStaged(r);
  });

  it('tampered under its original name: PACKET_HASH, nothing in new/ or tmp/', async () => {
    const r = setup({ addHeaders: true });
    const p = await send(largeMessage());
    const b = readFileSync(p.path);
    b.writeUInt8(b[b.length - 100]! ^ 0x01, b.length - 100); // late: most of the message is staged already
    writeFileSync(p.path, b);
    await r.receiver.scanOnce();
    expect((await listQuarantine(r.stateDir)).map((e) => e.reason.code)).toEqual(['PACKET_HASH']);
    expect(files(r, 'tmp')).toEqual([]);
    expect(files(r, 'new')).toEqual([]);
    expectStaged(r);
  });

  it('a staged write that fails (quota) falls back to inject(): deferred 4.2.2 as before, nothing left', async () => {
    let stagedOpens = 0;
    // Every tmp/ write fails, staged or copied: the fallback must still classify it.
    const quotaOnStage = syncFailsOnCreate('EDQUOT', () => (stagedOpens += 1));
    const r = setup({ fs: quotaOnStage });
    const p = await send(largeMessage());
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['deferred']);
    expect(stagedOpens).toBe(2); // the staged attempt, then inject()'s copy
    expect(r.journal.byId(p.id)?.lastError).toMatch(/quota/);
    expect(existsSync(p.path)).toBe(true);
    expect(files(r, 'tmp')).toEqual([]);
    expect(files(r, 'new')).toEqual([]);
    expectNoWorkFile(r);
  });

  it('resumed after a crash that had already published the file: not delivered again', async () => {
    const r = setup();
    const msg = largeMessage();
    const p = await send(msg);
    // What a kill -9 between the rename into new/ and the journal leaves: "injecting" + the file in new/.
    r.journal.begin({ hash: hashOfFile(p.path), id: p.id, fromNode: A.fingerprint, recipients: ['b@home.test'], expires: Date.now() + 86_400_000, size: msg.length }, Date.now());
    mkdirSync(path.join(r.maildir, 'new'), { recursive: true });
    writeFileSync(path.join(r.maildir, 'new', `1.M1P1Q1_${p.id}.test.invalid,S=${msg.length}`), msg);
    await r.receiver.scanOnce();
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
    expect(files(r, 'new')).toHaveLength(1);
    expect(files(r, 'tmp')).toEqual([]);
    expect(existsSync(p.path)).toBe(false);
    expectStaged(r); // staged, then discarded: the Maildir already held it
  });

  it('a tmp/ file a crash left for the same packet is removed when it is staged again', async () => {
    const r = setup();
    const msg = largeMessage();
    const p = await send(msg);
    const leftover = path.join(r.maildir, 'tmp', `1.M1P1Q1_${p.id}.test.invalid,S=${msg.length}`);
    const other = path.join(r.maildir, 'tmp', '1.M1P1Q2_someotherpacketid234567ab.test.invalid,S=5');
    mkdirSync(path.dirname(leftover), { recursive: true });
    writeFileSync(leftover, msg.subarray(0, 1000));
    writeFileSync(other, 'other');
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(leftover, old, old);
    utimesSync(other, old, old);
    await r.receiver.scanOnce();
    expect(files(r, 'tmp')).toEqual([path.basename(other)]);
    expect(files(r, 'new')).toHaveLength(1);
  });
});

function hashOfFile(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}
