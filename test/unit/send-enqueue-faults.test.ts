// Enqueue failure paths: a recipient list too big for one packet header (permanent, nothing read), a
// failed encode that must not leak the spooled message's descriptor, ENOSPC while committing (452
// 4.3.1), and a rollback that cannot remove an already committed packet (logged, named in the error).
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError, replyFor, type FerryError } from '../../src/errors/index.js';
import { MAX_HEADER_BYTES } from '../../src/packet/header.js';
import { createEnqueue, type EnqueueDeps } from '../../src/send/enqueue.js';
import { headerBytesFor, HEADER_BUDGET } from '../../src/send/header-budget.js';
import { errnoError, nodeTreeFs, type TreeFs } from '../../src/tree/fs.js';
import { decodeFile, listFiles, makeWorld, type World } from './send-fixture.js';

let w: World;
beforeAll(async () => {
  w = await makeWorld();
});
afterAll(() => w.cleanup());
beforeEach(() => w.reset());

function deps(over: Partial<EnqueueDeps> = {}): EnqueueDeps {
  return {
    keyring: w.keyring, router: w.router, tree: w.tree, spoolDir: w.spool, expiryMs: 30 * 86_400_000,
    compressionLevel: 6, memorySpoolLimit: 1 << 20, gcPacer: undefined, ...over,
  };
}

/** Long (253 bytes, within SMTP's 256-octet path), valid, distinct addresses routed to carol (*.example.com). */
const longRcpt = (i: number): string => `${String(i).padStart(6, '0')}${'l'.repeat(58)}@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(48)}.example.com`;

/** Descriptors of this process that point into dir (an unlinked spool file reads "... (deleted)"). */
function fdsInto(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(target);
    } catch {
      // closed meanwhile (the readdir's own descriptor)
    }
  }
  return out;
}

function logCapture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

describe('recipients that do not fit in one packet header', () => {
  it('ENVELOPE_TOO_BIG (552 5.5.3, sendmail 64, permanent) before reading the message; nothing written', async () => {
    const to = Array.from({ length: 300 }, (_, i) => longRcpt(i));
    expect(headerBytesFor('a@example.org', to)).toBeGreaterThan(MAX_HEADER_BYTES);
    const src = Readable.from([Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
    const err = await createEnqueue(deps({ memorySpoolLimit: 0 })).submit({ from: 'a@example.org', to }, src).catch((e: unknown) => e);
    expect(isFerryError(err, 'ENVELOPE_TOO_BIG')).toBe(true);
    expect(replyFor(err)).toMatchObject({ smtp: 552, enhanced: '5.5.3', sysexit: 64, temporary: false });
    expect((err as FerryError).message).toMatch(/too many recipients for one message to carol/);
    expect(listFiles(w.dir)).toEqual([]);
  });

  it('the estimate is an upper bound: the longest list it allows encodes, and its header is within the limit', async () => {
    const from = `${'f'.repeat(64)}@${'d'.repeat(63)}.example.org`;
    const to: string[] = [];
    while (headerBytesFor(from, [...to, longRcpt(to.length)]) <= HEADER_BUDGET) to.push(longRcpt(to.length));
    expect(to.length).toBeGreaterThan(200);
    const [p] = await createEnqueue(deps()).submit({ from, to }, Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    const { header } = await decodeFile(p!.path, w.carol, w.self);
    expect(header.envelope.to).toHaveLength(to.length);
    const actual = Buffer.byteLength(JSON.stringify(header));
    expect(actual).toBeLessThanOrEqual(MAX_HEADER_BYTES);
    expect(headerBytesFor(from, to) - actual).toBeLessThan(64); // conservative, not wasteful
  });
});

describe('a failed encode of a spooled message', () => {
  it('closes the spool file it opened (no descriptor left on the unlinked file) and removes it', async () => {
    const message = Buffer.alloc(200_000, 'x\r\n');
    const before = fdsInto(w.dir);
    // compressionLevel 10 makes encodePacket reject before it reads the payload stream.
    const err = await createEnqueue(deps({ memorySpoolLimit: 0, compressionLevel: 10 }))
      .submit({ from: '', to: ['b@example.net', 'c@example.com'] }, Readable.from([message]))
      .catch((e: unknown) => e);
    expect(isFerryError(err, 'STORE_FAILED')).toBe(true);
    for (let i = 0; i < 50 && fdsInto(w.dir).length > before.length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(fdsInto(w.dir)).toEqual(before);
    expect(listFiles(w.dir)).toEqual([]);
  });
});

describe('a missing tree', () => {
  it('is never created: CONFIG (temporary: 451 4.3.5, sendmail 75) naming node.tree, nothing written; sender directories below it are', async () => {
    const tree = path.join(w.tree, 'not-mounted', 'tree');
    const enqueue = createEnqueue(deps({ tree }));
    const err = (await enqueue.submit({ from: 'a@x.org', to: ['b@example.net'] }, Buffer.from('Subject: s\r\n\r\nx\r\n')).catch((e: unknown) => e)) as FerryError;
    expect(isFerryError(err, 'CONFIG')).toBe(true);
    expect(err.message).toBe(`tree ${tree} does not exist (node.tree in the config; is the Syncthing folder mounted?)`);
    expect(replyFor(err)).toMatchObject({ smtp: 451, enhanced: '4.3.5', sysexit: 75 });
    expect(existsSync(path.join(w.tree, 'not-mounted'))).toBe(false);
    // With the tree there, TREE/<to>/<from> is made as before (trailing slash in node.tree too).
    mkdirSync(tree, { recursive: true });
    const [q] = await createEnqueue(deps({ tree: `${tree}/` })).submit({ from: 'a@x.org', to: ['b@example.net'] }, Buffer.from('Subject: s\r\n\r\nx\r\n'));
    expect(existsSync(q!.path)).toBe(true);
  });
});

describe('commit phase failures', () => {
  it('ENOSPC on link: DISK_FULL (452 4.3.1), nothing left in the tree', async () => {
    const full: TreeFs = { ...nodeTreeFs, link: async (_a, b) => Promise.reject(errnoError('ENOSPC', 'no space left on device', b)) };
    const err = await createEnqueue(deps({ fs: full })).submit({ from: '', to: ['b@example.net'] }, Buffer.from('x')).catch((e: unknown) => e);
    expect(isFerryError(err, 'DISK_FULL')).toBe(true);
    expect(replyFor(err)).toMatchObject({ smtp: 452, enhanced: '4.3.1', sysexit: 75 });
    expect(listFiles(w.tree)).toEqual([]);
  });

  it('a committed packet that cannot be taken back is logged at error level with its path, and named in the error', async () => {
    let links = 0;
    const fs: TreeFs = {
      ...nodeTreeFs,
      link: async (a, b) => (++links === 2 ? Promise.reject(errnoError('EIO', 'i/o error', b)) : nodeTreeFs.link(a, b)),
      // Temps can go; removing a committed packet (rollback) fails.
      unlink: async (p) => (path.basename(p).startsWith('.ferrypost.') ? nodeTreeFs.unlink(p) : Promise.reject(errnoError('EROFS', 'read-only file system', p))),
    };
    const { log, lines } = logCapture();
    const err = await createEnqueue(deps({ fs, log })).submit({ from: '', to: ['b@example.net', 'c@example.com'] }, Buffer.from('x')).catch((e: unknown) => e);
    expect(isFerryError(err, 'STORE_FAILED')).toBe(true);
    const left = listFiles(w.tree);
    expect(left).toHaveLength(1);
    const file = path.join(w.tree, left[0]!);
    expect((err as FerryError).detail).toMatchObject({ orphaned: [file] });
    expect((err as FerryError).message).toContain(file);
    const line = lines.find((l) => l['evt'] === 'enqueue.orphaned');
    expect(line).toMatchObject({ level: 50, file, peer: 'bob' });
    expect(readFileSync(file).length).toBeGreaterThan(0);
  });
});
