import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import { createEnqueue, type EnqueueDeps } from '../../src/send/enqueue.js';
import { errnoError, nodeTreeFs, type TreeFs } from '../../src/tree/fs.js';
import { packetDir, packetNameForHash } from '../../src/tree/layout.js';
import { createHash } from 'node:crypto';
import { decodeFile, listFiles, makeWorld, type World } from './send-fixture.js';

let w: World;
beforeAll(async () => {
  w = await makeWorld();
});
afterAll(() => w.cleanup());

const fixture = (name: string) => readFileSync(path.resolve('fixtures/mail', name));

function deps(over: Partial<EnqueueDeps> = {}): EnqueueDeps {
  return {
    keyring: w.keyring,
    router: w.router,
    tree: w.tree,
    spoolDir: w.spool,
    expiryMs: 30 * 86_400_000,
    compressionLevel: 6,
    memorySpoolLimit: 1 << 20,
    gcPacer: undefined,
    now: () => new Date('2026-02-03T04:05:06.000Z'),
    ...over,
  };
}

async function fresh(): Promise<void> {
  w.reset();
  w.tree = path.join(w.dir, 'tree');
  w.spool = path.join(w.dir, 'state', 'spool');
}

describe('createEnqueue', () => {
  it.each([
    ['in memory', 1 << 20],
    ['spooled (limit 0)', 0],
  ])('writes one packet per node for 3 recipients over 2 nodes (%s)', async (_label, limit) => {
    await fresh();
    const message = fixture('8bit-latin1.eml');
    const q = createEnqueue(deps({ memorySpoolLimit: limit }));
    const env = { from: 'alice@example.org', to: ['b1@example.net', 'c1@x.example.com', 'B2@Example.NET', 'b1@EXAMPLE.net'] };
    // Stream in small chunks so the spool path really spools across chunks.
    const chunks = Array.from({ length: Math.ceil(message.length / 100) }, (_, i) => message.subarray(i * 100, i * 100 + 100));
    const packets = await q.submit(env, Readable.from(chunks));

    expect(packets.map((p) => [p.peer, p.recipients])).toEqual([
      ['bob', ['b1@example.net', 'B2@Example.NET']],
      ['carol', ['c1@x.example.com']],
    ]);
    const files = listFiles(w.tree);
    expect(files).toHaveLength(2);
    for (const p of packets) {
      const to = p.peer === 'bob' ? w.bob : w.carol;
      expect(p.path).toBe(path.join(packetDir(w.tree, to.fpr, w.self.fpr), p.name));
      expect(p.name).toBe(packetNameForHash(createHash('sha256').update(readFileSync(p.path)).digest()));
      const d = await decodeFile(p.path, to, w.self);
      expect(d.signer).toBe(w.self.fpr);
      expect(d.payload.equals(message)).toBe(true);
      expect(d.header).toMatchObject({
        v: 1,
        type: 'mail',
        id: p.id,
        from_node: w.self.fpr,
        to_node: to.fpr,
        created: '2026-02-03T04:05:06.000Z',
        expires: '2026-03-05T04:05:06.000Z',
        envelope: { from: 'alice@example.org', to: p.recipients },
        size: message.length,
        sha256: createHash('sha256').update(message).digest('hex'),
      });
    }
    expect(new Set(packets.map((p) => p.id)).size).toBe(2);
    expect(listFiles(w.spool)).toEqual([]); // spool file removed
  });

  it('passes bytes through unchanged (bare LF, dot lines, Uint8Array input)', async () => {
    await fresh();
    const q = createEnqueue(deps({ memorySpoolLimit: 10 }));
    for (const name of ['bare-lf.eml', 'dot-lines.eml']) {
      const message = fixture(name);
      const [p] = await q.submit({ from: '', to: ['x@example.net'] }, message);
      const d = await decodeFile(p!.path, w.bob, w.self);
      expect(d.payload.equals(message)).toBe(true);
      expect(d.header.envelope.from).toBe('');
      const [p2] = await q.submit({ from: '', to: ['x@example.net'] }, Readable.from([message]));
      expect((await decodeFile(p2!.path, w.bob, w.self)).payload.equals(message)).toBe(true);
    }
  });

  it('spools a large message and reads it once per node', async () => {
    await fresh();
    const message = randomBytes(300_000);
    const q = createEnqueue(deps({ memorySpoolLimit: 1000, compressionLevel: 0 }));
    const packets = await q.submit({ from: 'a@example.org', to: ['b@example.net', 'c@example.com'] }, Readable.from([message.subarray(0, 5000), message.subarray(5000)]));
    expect(packets).toHaveLength(2);
    expect((await decodeFile(packets[0]!.path, w.bob, w.self)).payload.equals(message)).toBe(true);
    expect((await decodeFile(packets[1]!.path, w.carol, w.self)).payload.equals(message)).toBe(true);
    expect(listFiles(w.spool)).toEqual([]);
  });

  it('counts a streamed message for the GC pacer: once as it is spooled, once per packet as it is encoded', async () => {
    await fresh();
    const message = randomBytes(300_000);
    let counted = 0;
    const q = createEnqueue(deps({ memorySpoolLimit: 1000, compressionLevel: 6, gcPacer: { account: (n) => (counted += n), active: () => true } }));
    const packets = await q.submit({ from: 'a@example.org', to: ['b@example.net', 'c@example.com'] }, Readable.from([message.subarray(0, 5000), message.subarray(5000)]));
    expect(packets).toHaveLength(2);
    expect(counted).toBe(3 * message.length);
  });

  it('drops duplicates as routing spells them: ASCII case and quotes merge, a KELVIN SIGN is not "k"', async () => {
    await fresh();
    const q = createEnqueue(deps());
    const env = { from: 'a@x.org', to: ['\u212Aate@example.net', 'kate@example.net', 'KATE@example.net', '"kate"@example.net'] };
    const [p] = await q.submit(env, Buffer.from('Subject: s\r\n\r\nx\r\n'));
    expect(p!.recipients).toEqual(['\u212Aate@example.net', 'kate@example.net']); // kate is not lost behind \u212Aate
  });

  it('NO_ROUTE: names the recipient and writes nothing', async () => {
    await fresh();
    const q = createEnqueue(deps());
    const err = await q.submit({ from: 'a@example.org', to: ['ok@example.net', 'nobody@nowhere.test'] }, Buffer.from('x')).catch((e: unknown) => e);
    expect(isFerryError(err, 'NO_ROUTE')).toBe(true);
    expect((err as Error).message).toBe('<nobody@nowhere.test>: no route to a node');
    expect(listFiles(w.dir)).toEqual([]);
  });

  it('no recipients: NO_RECIPIENTS', async () => {
    const err = await createEnqueue(deps()).submit({ from: '', to: [] }, Buffer.from('x')).catch((e: unknown) => e);
    expect(isFerryError(err, 'NO_RECIPIENTS')).toBe(true);
  });

  it('a failing second prepare leaves no packet and no temp file (two-phase)', async () => {
    await fresh();
    let opens = 0;
    const failing: TreeFs = {
      ...nodeTreeFs,
      async open(p, flags, mode) {
        if (flags === 'wx' && ++opens === 2) {
          const h = await nodeTreeFs.open(p, flags, mode);
          return { ...h, write: async () => Promise.reject(errnoError('ENOSPC', 'no space left on device', p)) };
        }
        return nodeTreeFs.open(p, flags, mode);
      },
    };
    const q = createEnqueue(deps({ fs: failing }));
    const err = await q.submit({ from: 'a@example.org', to: ['b@example.net', 'c@example.com'] }, Buffer.from('Subject: x\r\n\r\nbody\r\n')).catch((e: unknown) => e);
    expect(opens).toBe(2);
    expect(isFerryError(err, 'DISK_FULL')).toBe(true);
    expect(listFiles(w.tree)).toEqual([]);

    // Other errors are STORE_FAILED with the cause kept.
    opens = 0;
    const eio: TreeFs = { ...nodeTreeFs, open: async (p, f, m) => (f === 'wx' && ++opens === 2 ? Promise.reject(errnoError('EIO', 'i/o error', p)) : nodeTreeFs.open(p, f, m)) };
    const err2 = await createEnqueue(deps({ fs: eio })).submit({ from: '', to: ['b@example.net', 'c@example.com'] }, Buffer.from('x')).catch((e: unknown) => e);
    expect(isFerryError(err2, 'STORE_FAILED')).toBe(true);
    expect(((err2 as Error).cause as NodeJS.ErrnoException).code).toBe('EIO');
    expect(listFiles(w.tree)).toEqual([]);
  });

  it('a failing second commit removes the first committed packet', async () => {
    await fresh();
    let links = 0;
    const failing: TreeFs = {
      ...nodeTreeFs,
      link: async (a, b) => (++links === 2 ? Promise.reject(errnoError('EIO', 'i/o error', b)) : nodeTreeFs.link(a, b)),
    };
    const q = createEnqueue(deps({ fs: failing }));
    const err = await q.submit({ from: '', to: ['b@example.net', 'c@example.com'] }, Buffer.from('x')).catch((e: unknown) => e);
    expect(links).toBe(2);
    expect(isFerryError(err, 'STORE_FAILED')).toBe(true);
    expect(listFiles(w.tree)).toEqual([]);
  });

  it('a source stream error fails the submit and writes nothing', async () => {
    await fresh();
    const src = new Readable({ read() {} });
    src.push(Buffer.from('partial'));
    setTimeout(() => src.destroy(new Error('client went away')), 10);
    const err = await createEnqueue(deps({ memorySpoolLimit: 0 })).submit({ from: '', to: ['b@example.net'] }, src).catch((e: unknown) => e);
    expect(isFerryError(err, 'STORE_FAILED')).toBe(true);
    expect(listFiles(w.dir)).toEqual([]);
  });
});
