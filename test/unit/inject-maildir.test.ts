// Maildir injector in real temp dirs: byte-exact delivery, prepended headers (matching line endings),
// unique names, recipient filter, unsafe addresses, de-duplication, fs faults → temp, maildirHasPacket,
// and staging (a large message written once into tmp/, published by commit, removed by discard).
import * as fsp from 'node:fs/promises';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createMaildirInjector,
  maildirHasPacket,
  maildirPathFor,
  type MaildirDeliveryConfig,
} from '../../src/inject/maildir.js';
import { createInjector } from '../../src/inject/index.js';
import type { InjectRequest } from '../../src/inject/types.js';
import { errnoError, maildirFsWith, syncFailsOnCreate } from '../helpers/maildir-fs.js';

const FIX = join(import.meta.dirname, '../../fixtures/mail');
const fixtures = readdirSync(FIX).filter((f) => f.endsWith('.eml'));

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ferry-maildir-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function cfg(extra: Partial<MaildirDeliveryConfig> = {}): MaildirDeliveryConfig {
  return { method: 'maildir', path: join(root, '%d', '%u', 'Maildir'), add_headers: false, ...extra };
}
function req(file: string, from: string, to: string[], packetId = 'pkt1'): InjectRequest {
  return { envelope: { from, to }, file, size: statSync(file).size, packetId };
}
function newFiles(dir: string): string[] {
  return readdirSync(join(dir, 'new'));
}

describe('maildir injector', () => {
  it.each(fixtures)('delivers %s byte-exact', async (name) => {
    const inj = createMaildirInjector(cfg(), { hostname: 'node1' });
    const res = await inj.inject(req(join(FIX, name), 'alice@a.example', ['Bob@B.Example']));
    expect(res).toEqual([expect.objectContaining({ rcpt: 'Bob@B.Example', status: 'ok' })]);
    const dir = join(root, 'b.example', 'bob', 'Maildir');
    const files = newFiles(dir);
    expect(files).toHaveLength(1);
    expect(readFileSync(join(dir, 'new', files[0]!)).equals(readFileSync(join(FIX, name)))).toBe(true);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(readdirSync(join(dir, 'cur'))).toEqual([]);
    expect(statSync(join(dir, 'tmp')).mode & 0o777).toBe(0o700);
    expect(files[0]).toMatch(new RegExp(`^\\d+\\.M\\d+P${process.pid}Q\\d+_pkt1\\.node1,S=${statSync(join(FIX, name)).size}$`));
  });

  it('prepends Return-Path and Delivered-To with the message line ending', async () => {
    const inj = createMaildirInjector(cfg({ add_headers: true }), { hostname: 'node1' });
    for (const [name, eol] of [
      ['crlf-plain.eml', '\r\n'],
      ['bare-lf.eml', '\n'],
    ] as const) {
      const res = await inj.inject(req(join(FIX, name), '', ['carol@c.example'], name.replace(/\W/g, '')));
      expect(res[0]!.status).toBe('ok');
      const dir = join(root, 'c.example', 'carol', 'Maildir');
      const file = newFiles(dir).find((f) => f.includes(name.replace(/\W/g, '')))!;
      const got = readFileSync(join(dir, 'new', file));
      const prefix = Buffer.from(`Return-Path: <>${eol}Delivered-To: carol@c.example${eol}`);
      expect(got.subarray(0, prefix.length).equals(prefix)).toBe(true);
      expect(got.subarray(prefix.length).equals(readFileSync(join(FIX, name)))).toBe(true);
      expect(file.endsWith(`,S=${got.length}`)).toBe(true);
    }
  });

  it('gives every delivery a unique name and writes one copy per maildir', async () => {
    const inj = createMaildirInjector(cfg({ path: join(root, 'shared') }), { hostname: 'h/o:st' });
    const file = join(FIX, 'crlf-plain.eml');
    const res = await Promise.all(
      Array.from({ length: 20 }, (_, i) => inj.inject(req(file, 'a@a.example', [`x${i}@b.example`, `y${i}@b.example`], `p${i}`))),
    );
    expect(res.flat().every((r) => r.status === 'ok')).toBe(true);
    const names = newFiles(join(root, 'shared'));
    expect(names).toHaveLength(20); // two recipients, one maildir → one file per message
    expect(new Set(names).size).toBe(20);
    expect(names.every((n) => n.includes('.h\\057o\\072st,'))).toBe(true);
  });

  it('refuses recipients outside the allowed patterns with 5.1.1, others still delivered', async () => {
    const inj = createMaildirInjector(cfg({ recipients: ['b.example', '*.c.example', 'eve@e.example'] }), { hostname: 'n' });
    const to = ['bob@b.example', 'x@sub.c.example', 'eve@e.example', 'mallory@e.example', 'x@c.example', 'bob@bb.example'];
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', to));
    expect(res.map((r) => [r.rcpt, r.status, r.enhanced])).toEqual([
      ['bob@b.example', 'ok', '2.0.0'],
      ['x@sub.c.example', 'ok', '2.0.0'],
      ['eve@e.example', 'ok', '2.0.0'],
      ['mallory@e.example', 'perm', '5.1.1'],
      ['x@c.example', 'perm', '5.1.1'],
      ['bob@bb.example', 'perm', '5.1.1'],
    ]);
    expect(res[3]!.message).toMatch(/user unknown/);
  });

  it('refuses addresses that are not safe path components with 5.1.3', async () => {
    const inj = createMaildirInjector(cfg(), { hostname: 'n' });
    const to = ['../etc@b.example', '.hidden@b.example', 'a/b@b.example', 'ok+tag@b.example', 'sp ace@b.example', 'nodomain'];
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', to));
    expect(res.map((r) => r.status)).toEqual(['perm', 'perm', 'perm', 'ok', 'perm', 'perm']);
    expect(res.filter((r) => r.status === 'perm').every((r) => r.enhanced === '5.1.3')).toBe(true);
    expect(readdirSync(root)).toEqual(['b.example']);
    expect(maildirPathFor('/m/%a', 'X@Y.org')).toEqual({ path: '/m/x@y.org' });
  });

  it('a maildir path under a regular file → temp, the other recipient is still delivered', async () => {
    writeFileSync(join(root, 'blocked.example'), 'not a directory');
    const inj = createMaildirInjector(cfg(), { hostname: 'n' });
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@blocked.example', 'y@b.example']));
    expect(res.map((r) => [r.status, r.enhanced])).toEqual([
      ['temp', '4.3.0'],
      ['ok', '2.0.0'],
    ]);
    expect(res[0]!.message).toMatch(/ENOTDIR/);
  });

  it.each([
    ['ENOSPC', '4.3.0'],
    ['EDQUOT', '4.2.2'],
    ['EIO', '4.3.0'],
    ['EACCES', '4.2.0'],
  ])('fsync failing with %s → temp %s, no file left in tmp/ or new/', async (code, enhanced) => {
    const faulty = syncFailsOnCreate(code);
    const inj = createMaildirInjector(cfg({ path: join(root, 'md') }), { hostname: 'n', fs: faulty });
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@b.example']));
    expect(res[0]).toMatchObject({ status: 'temp', enhanced });
    expect(readdirSync(join(root, 'md', 'tmp'))).toEqual([]);
    expect(readdirSync(join(root, 'md', 'new'))).toEqual([]);
  });

  it('createInjector picks the maildir injector from the delivery config', async () => {
    const inj = await createInjector(cfg({ path: join(root, 'via-index') }), { hostname: 'n' });
    expect(inj.name).toBe('maildir');
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@b.example']));
    expect(res[0]!.status).toBe('ok');
    expect(newFiles(join(root, 'via-index'))).toHaveLength(1);
  });

  it('maildirHasPacket finds deliveries in new/ and cur/', async () => {
    const dir = join(root, 'md');
    expect(await maildirHasPacket(dir, 'abc')).toBe(false);
    const inj = createMaildirInjector(cfg({ path: dir }), { hostname: 'n' });
    await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@b.example'], 'abc'));
    expect(await maildirHasPacket(dir, 'abc')).toBe(true);
    expect(await maildirHasPacket(dir, 'ab')).toBe(false);
    const [f] = newFiles(dir);
    await fsp.rename(join(dir, 'new', f!), join(dir, 'cur', `${f}:2,S`));
    expect(await maildirHasPacket(dir, 'abc')).toBe(true);
  });
});

describe('maildir staging (large messages written once into tmp/)', () => {
  async function writeAll(sink: NodeJS.WritableStream & { end(cb?: () => void): unknown }, parts: Buffer[]): Promise<void> {
    for (const p of parts) sink.write(p);
    await new Promise<void>((resolve, reject) => {
      sink.once('error', reject);
      sink.once('finish', () => resolve());
      sink.end();
    });
  }
  const sreq = (to: string[], size: number) => ({ envelope: { from: 'alice@a.example', to }, size, packetId: 'pkt9' });
  // Staging only writes into a Maildir that exists (it runs before the packet is authenticated).
  beforeEach(() => {
    for (const u of ['bob', 'x', 'y']) for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(root, 'b.example', u, 'Maildir', sub), { recursive: true });
  });

  it('a Maildir that does not exist yet is not staged, and staging creates nothing (inject() makes it after the checks)', async () => {
    const inj = createMaildirInjector(cfg(), { hostname: 'n' });
    expect(await inj.stage!(sreq(['newcomer@c.example'], 10))).toBeUndefined();
    expect(readdirSync(root)).toEqual(['b.example']);
    // half a Maildir (no cur/) is not one either
    mkdirSync(join(root, 'c.example', 'half', 'Maildir', 'tmp'), { recursive: true });
    mkdirSync(join(root, 'c.example', 'half', 'Maildir', 'new'));
    expect(await inj.stage!(sreq(['half@c.example'], 10))).toBeUndefined();
    expect(readdirSync(join(root, 'c.example', 'half', 'Maildir')).sort()).toEqual(['new', 'tmp']);
  });

  it('only the plain case is staged: several maildirs or a refused recipient → undefined (inject() then)', async () => {
    const inj = createMaildirInjector(cfg({ recipients: ['b.example'] }), { hostname: 'n' });
    expect(await inj.stage!(sreq(['x@b.example', 'y@b.example'], 10))).toBeUndefined(); // two maildirs (%u)
    expect(await inj.stage!(sreq(['x@c.example'], 10))).toBeUndefined(); // refused
    expect(await inj.stage!(sreq(['x@b.example'], 10))).toBeDefined();
  });

  it.each(fixtures)('%s staged with prefix lines: invisible until commit, then byte-exact in new/', async (name) => {
    const msg = readFileSync(join(FIX, name));
    const inj = createMaildirInjector(cfg({ add_headers: true }), { hostname: 'n' });
    const staged = (await inj.stage!(sreq(['bob@b.example'], msg.length)))!;
    // in small pieces, as the decoder writes them
    await writeAll(staged.sink, Array.from({ length: Math.ceil(msg.length / 1000) }, (_, i) => msg.subarray(i * 1000, (i + 1) * 1000)));
    const md = join(root, 'b.example', 'bob', 'Maildir');
    expect(newFiles(md)).toEqual([]);
    expect(readdirSync(join(md, 'tmp'))).toHaveLength(1);
    const res = await staged.commit();
    expect(res).toMatchObject([{ rcpt: 'bob@b.example', status: 'ok', code: 250 }]);
    const [f] = newFiles(md);
    const got = readFileSync(join(md, 'new', f!));
    // the same bytes inject() writes for this message
    const viaInject = createMaildirInjector(cfg({ add_headers: true, path: join(root, 'ref', '%u') }), { hostname: 'n' });
    await viaInject.inject(req(join(FIX, name), 'alice@a.example', ['bob@b.example'], 'pkt9'));
    const [ref] = newFiles(join(root, 'ref', 'bob'));
    expect(got.equals(readFileSync(join(root, 'ref', 'bob', 'new', ref!)))).toBe(true);
    expect(f).toMatch(new RegExp(`_pkt9\\.n,S=${got.length}$`));
    expect(readdirSync(join(md, 'tmp'))).toEqual([]);
    expect(staged.headerBlock().toString('latin1')).toMatch(/^(From|Return-Path|Received|Date|Subject|To|Message-ID|MIME-Version|Content-Type)/i);
    await staged.discard(); // after commit: nothing
    expect(newFiles(md)).toHaveLength(1);
  });

  it('discard before, during and after the writing leaves nothing', async () => {
    const inj = createMaildirInjector(cfg(), { hostname: 'n' });
    const md = join(root, 'b.example', 'bob', 'Maildir');
    const before = (await inj.stage!(sreq(['bob@b.example'], 10)))!;
    await before.discard();
    const during = (await inj.stage!(sreq(['bob@b.example'], 300_000)))!;
    during.sink.write(Buffer.alloc(200_000, 0x61)); // past the head: the file exists
    await new Promise((r) => setTimeout(r, 50));
    during.sink.destroy();
    await during.discard();
    const after = (await inj.stage!(sreq(['bob@b.example'], 100_000)))!;
    await writeAll(after.sink, [Buffer.alloc(100_000, 0x62)]);
    expect(readdirSync(join(md, 'tmp'))).toHaveLength(1);
    await after.discard();
    expect(readdirSync(join(md, 'tmp'))).toEqual([]);
    expect(newFiles(md)).toEqual([]);
  });

  it('a large message is flushed while staged; a failed background flush fails the sink although the final fsync succeeds', async () => {
    let datasyncs = 0;
    const faulty = maildirFsWith({
      async open(p, flags, mode) {
        const fh = await fsp.open(p, flags, mode);
        if (flags === 'wx') fh.datasync = () => (++datasyncs === 1 ? Promise.reject(errnoError('EIO')) : Promise.resolve());
        return fh;
      },
    });
    const inj = createMaildirInjector(cfg(), { hostname: 'n', fs: faulty });
    const size = 20 << 20;
    const staged = (await inj.stage!(sreq(['bob@b.example'], size)))!;
    await expect(writeAll(staged.sink, Array.from({ length: 20 }, () => Buffer.alloc(1 << 20, 0x61)))).rejects.toMatchObject({ code: 'EIO' });
    expect(datasyncs).toBe(1);
    await staged.discard();
    const md = join(root, 'b.example', 'bob', 'Maildir');
    expect(readdirSync(join(md, 'tmp'))).toEqual([]);
    expect(newFiles(md)).toEqual([]);
    // Without the fault: flushed while written (datasync counted), then delivered whole.
    const ok = (await createMaildirInjector(cfg(), { hostname: 'n', fs: maildirFsWith({
      async open(p, flags, mode) {
        const fh = await fsp.open(p, flags, mode);
        const real = fh.datasync.bind(fh);
        if (flags === 'wx') fh.datasync = () => (datasyncs++, real());
        return fh;
      },
    }) }).stage!(sreq(['bob@b.example'], size)))!;
    await writeAll(ok.sink, Array.from({ length: 20 }, () => Buffer.alloc(1 << 20, 0x61)));
    expect(datasyncs).toBeGreaterThanOrEqual(2);
    expect(await ok.commit()).toMatchObject([{ rcpt: 'bob@b.example', status: 'ok' }]);
    expect(statSync(join(md, 'new', newFiles(md)[0]!)).size).toBe(size);
  });

  it('destroyed while a large write is under way: no flush starts once the file is being closed', async () => {
    const log: string[] = [];
    const fs = maildirFsWith({
      async open(p, flags, mode) {
        const fh = await fsp.open(p, flags, mode);
        if (flags === 'wx') {
          const datasync = fh.datasync.bind(fh);
          const close = fh.close.bind(fh);
          fh.datasync = () => (log.push('datasync'), datasync());
          fh.close = () => (log.push('close'), close());
        }
        return fh;
      },
    });
    const inj = createMaildirInjector(cfg(), { hostname: 'n', fs });
    const staged = (await inj.stage!(sreq(['bob@b.example'], 20 << 20)))!;
    await new Promise<void>((r) => staged.sink.write(Buffer.alloc(65536, 0x61), () => r())); // the head: the file is open
    staged.sink.write(Buffer.alloc(8 << 20, 0x61)); // a write of 8 MiB under way: its end would start a flush
    staged.sink.on('error', () => undefined);
    staged.sink.destroy();
    await staged.discard();
    await new Promise((r) => setTimeout(r, 200));
    expect(log.indexOf('close')).toBeGreaterThanOrEqual(0);
    expect(log.slice(log.indexOf('close')), 'a flush after close').not.toContain('datasync');
    expect(readdirSync(join(root, 'b.example', 'bob', 'Maildir', 'tmp'))).toEqual([]);
  });

  it('a failing rename → temp results, tmp/ file removed', async () => {
    const faulty = maildirFsWith({ rename: () => Promise.reject(errnoError('EIO')) });
    const inj = createMaildirInjector(cfg(), { hostname: 'n', fs: faulty });
    const staged = (await inj.stage!(sreq(['bob@b.example'], 5)))!;
    await writeAll(staged.sink, [Buffer.from('hello')]);
    expect(await staged.commit()).toMatchObject([{ rcpt: 'bob@b.example', status: 'temp', enhanced: '4.3.0' }]);
    const md = join(root, 'b.example', 'bob', 'Maildir');
    expect(readdirSync(join(md, 'tmp'))).toEqual([]);
    expect(newFiles(md)).toEqual([]);
  });
});
