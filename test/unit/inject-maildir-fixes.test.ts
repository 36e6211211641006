// Maildir injector defects found in review, each pinned by a test: short writes (a truncated message
// delivered as ok), resume skipping recipients the filter refuses, %u/%d from the canonical address,
// and fsyncs of newly created Maildir directories.
import * as fsp from 'node:fs/promises';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMaildirInjector, maildirPathFor, type MaildirDeliveryConfig } from '../../src/inject/maildir.js';
import type { InjectRequest } from '../../src/inject/types.js';
import { maildirFsWith } from '../helpers/maildir-fs.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ferry-maildir-fix-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function cfg(extra: Partial<MaildirDeliveryConfig> = {}): MaildirDeliveryConfig {
  return { method: 'maildir', path: join(root, '%d', '%u', 'Maildir'), add_headers: false, ...extra };
}
function bytesReq(bytes: Buffer, to: string[], packetId = 'pkt1'): InjectRequest {
  return { envelope: { from: 'alice@a.example', to }, bytes, size: bytes.length, packetId };
}
const message = (size: number) => Buffer.concat([Buffer.from('Subject: t\r\n\r\n'), Buffer.alloc(size, 0x61)]);

/** Every tmp/ file written with at most `max` bytes per write(2), as a filling disk or quota does. */
function shortWrites(max: number) {
  return maildirFsWith({
    async open(p, flags, mode) {
      const fh = await fsp.open(p, flags, mode);
      if (flags !== 'wx') return fh;
      const write = fh.write.bind(fh) as (b: Uint8Array, off: number, len: number) => Promise<{ bytesWritten: number }>;
      const short = (b: Uint8Array) => write(b, 0, Math.min(b.length, max));
      Object.assign(fh, {
        write: (b: Uint8Array) => short(b),
        writev: async (bufs: Buffer[]) => {
          const first = bufs.find((b) => b.length > 0);
          const { bytesWritten } = first ? await short(first) : { bytesWritten: 0 };
          return { bytesWritten, buffers: bufs };
        },
      });
      return fh;
    },
  });
}

describe('#1 short writes', () => {
  it('a write(2) that writes less is continued: the whole message reaches new/', async () => {
    const inj = createMaildirInjector(cfg({ add_headers: true, path: join(root, 'md') }), { hostname: 'n', fs: shortWrites(4000) });
    const msg = message(300 * 1024);
    const res = await inj.inject(bytesReq(msg, ['bob@b.example']));
    expect(res[0]).toMatchObject({ status: 'ok' });
    const [f] = readdirSync(join(root, 'md', 'new'));
    const got = readFileSync(join(root, 'md', 'new', f!));
    expect(got.length).toBe(Number(/,S=(\d+)$/.exec(f!)![1]));
    expect(got.subarray(got.length - msg.length).equals(msg)).toBe(true);
  });

  it('a write that makes no progress → temp 4.3.0, nothing delivered', async () => {
    const inj = createMaildirInjector(cfg({ path: join(root, 'md') }), { hostname: 'n', fs: shortWrites(0) });
    const res = await inj.inject(bytesReq(message(1000), ['bob@b.example']));
    expect(res[0]).toMatchObject({ status: 'temp', enhanced: '4.3.0' });
    expect(readdirSync(join(root, 'md', 'new'))).toEqual([]);
    expect(readdirSync(join(root, 'md', 'tmp'))).toEqual([]);
  }, 3000); // without the guard it loops forever

  it('staging: a write that makes no progress fails the sink with EIO instead of looping', async () => {
    const md = join(root, 'md');
    for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(join(md, sub), { recursive: true });
    const inj = createMaildirInjector(cfg({ path: md }), { hostname: 'n', fs: shortWrites(0) });
    const staged = (await inj.stage!({ envelope: { from: 'a@a.example', to: ['bob@b.example'] }, size: 10, packetId: 'pkt1' }))!;
    const done = new Promise((resolve, reject) => {
      staged.sink.once('error', reject);
      staged.sink.once('finish', resolve);
    });
    staged.sink.end(Buffer.from('Subject: x'));
    await expect(done).rejects.toMatchObject({ code: 'EIO' });
    await staged.discard();
    expect(readdirSync(join(md, 'tmp'))).toEqual([]);
  }, 3000);
});

describe('#2 resume with a recipients filter', () => {
  it('alreadyDelivered never reports a recipient that route() refuses, even in a shared Maildir', async () => {
    for (const path of [join(root, 'shared'), join(root, 'by-domain', '%d')]) {
      const inj = createMaildirInjector(cfg({ path, recipients: ['x.org', 'zed@x.org'] }), { hostname: 'n' });
      const to = ['alice@x.org', 'zed@other.org', 'mallory@other.org'];
      const r = bytesReq(message(10), to, path.endsWith('%d') ? 'pktA' : 'pktB');
      const res = await inj.inject(r);
      expect(res.map((x) => x.status)).toEqual(['ok', 'perm', 'perm']);
      expect(await inj.alreadyDelivered!(r)).toEqual(['alice@x.org']);
    }
  });
});

describe('#3 %u/%d from the canonical address', () => {
  const t = '/m/%d/%u';
  it('a trailing dot, a quoted local part and an IDN domain name the mailbox routing means', () => {
    expect(maildirPathFor(t, 'bob@example.org.')).toEqual({ path: '/m/example.org/bob' });
    expect(maildirPathFor(t, 'Bob@EXAMPLE.org.')).toEqual({ path: '/m/example.org/bob' });
    expect(maildirPathFor(t, '"bob"@example.org')).toEqual({ path: '/m/example.org/bob' });
    expect(maildirPathFor(t, 'bob@münchen.example')).toEqual({ path: '/m/xn--mnchen-3ya.example/bob' });
    expect(maildirPathFor('/m/%a', '"Bob"@MÜNCHEN.example.')).toEqual({ path: '/m/bob@xn--mnchen-3ya.example' });
  });

  it('a non-ASCII local part is refused, so it never collides with an ASCII mailbox (Kelvin sign → "k")', () => {
    expect(maildirPathFor(t, 'kate@x.org')).toEqual({ path: '/m/x.org/kate' });
    expect(maildirPathFor(t, '\u212Aate@x.org')).toMatchObject({ error: expect.stringMatching(/non-ASCII/) });
    expect(maildirPathFor(t, '"\u212Aate"@x.org')).toMatchObject({ error: expect.stringMatching(/non-ASCII/) });
    expect(maildirPathFor(t, 'bøb@x.org')).toHaveProperty('error');
  });

  it('traversal and unsafe names stay refused after canonicalization', () => {
    for (const a of ['../etc@x.org', '"../etc"@x.org', '"a/b"@x.org', '".."@x.org', '"."@x.org', '.hidden@x.org', 'a@..', 'a@.', 'a@x/y', 'a\0b@x.org', '"a\0b"@x.org', '@x.org', 'a@[1.2.3.4]', '"a b"@x.org']) {
      expect(maildirPathFor(t, a), a).toHaveProperty('error');
    }
    expect(maildirPathFor('/m/%a', '"../x"@y.org')).toHaveProperty('error');
  });

  it('inject delivers bob@example.org. and "bob"@example.org into bob\'s Maildir', async () => {
    const inj = createMaildirInjector(cfg(), { hostname: 'n' });
    const res = await inj.inject(bytesReq(message(10), ['bob@example.org.', '"bob"@example.org']));
    expect(res.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(readdirSync(root)).toEqual(['example.org']);
    expect(readdirSync(join(root, 'example.org', 'bob', 'Maildir', 'new'))).toHaveLength(1); // one maildir, one copy
  });
});

describe('#4 new Maildir directories are made durable', () => {
  function recording() {
    const log: string[] = [];
    const fs = maildirFsWith({
      async mkdir(p, o) {
        log.push(`mkdir ${p}`);
        return fsp.mkdir(p, o);
      },
      async open(p, flags, mode) {
        const fh = await fsp.open(p, flags, mode);
        if (flags === 'r') {
          const sync = fh.sync.bind(fh);
          fh.sync = () => (log.push(`fsync ${p}`), sync());
        }
        return fh;
      },
    });
    return { log, fs };
  }

  it('the first delivery fsyncs the parent of every directory it created, top down; the next one only new/', async () => {
    const { log, fs } = recording();
    const inj = createMaildirInjector(cfg(), { hostname: 'n', fs });
    expect((await inj.inject(bytesReq(message(10), ['bob@b.example'])))[0]!.status).toBe('ok');
    const md = join(root, 'b.example', 'bob', 'Maildir');
    const syncs = log.filter((l) => l.startsWith('fsync ')).map((l) => l.slice(6));
    const order = [root, join(root, 'b.example'), join(root, 'b.example', 'bob'), md].map((d) => syncs.indexOf(d));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // the Maildir itself after tmp/, new/ and cur/ were made, all before the message is published
    const mkdirs = log.filter((l) => l.startsWith('mkdir '));
    expect(mkdirs.length).toBeGreaterThan(0);
    expect(log.lastIndexOf(`fsync ${md}`)).toBeGreaterThan(Math.max(...mkdirs.map((m) => log.indexOf(m))));
    expect(syncs.at(-1)).toBe(join(md, 'new'));

    log.length = 0;
    expect((await inj.inject(bytesReq(message(10), ['bob@b.example'], 'pkt2')))[0]!.status).toBe('ok');
    expect(log).toEqual([`fsync ${join(md, 'new')}`]); // the common case: no mkdir, no extra fsync
  });

  it('a failing fsync of a new directory → temp, nothing published', async () => {
    const fs = maildirFsWith({
      async open(p, flags, mode) {
        const fh = await fsp.open(p, flags, mode);
        if (flags === 'r' && p === join(root, 'b.example')) fh.sync = () => Promise.reject(Object.assign(new Error('EIO: injected'), { code: 'EIO' }));
        return fh;
      },
    });
    const inj = createMaildirInjector(cfg(), { hostname: 'n', fs });
    expect((await inj.inject(bytesReq(message(10), ['bob@b.example'])))[0]).toMatchObject({ status: 'temp', enhanced: '4.3.0' });
    const files = readdirSync(root, { recursive: true }).map(String);
    expect(files.filter((f) => f.includes('_pkt1.'))).toEqual([]);
  });
});
