/**
 * Every way a packet can be wrong ends in quarantine with its reason, and nothing is injected.
 * Real codec, real files, real journal and Maildir injector; packets are altered on disk as a
 * hostile or broken carrier would.
 */
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Readable, Writable } from 'node:stream';
import { decodePacket, encodePacket } from '../../src/packet/codec.js';
import { listQuarantine } from '../../src/quarantine/quarantine.js';
import { releaseQuarantined } from '../../src/quarantine/release.js';
import { packetDir, packetNameForHash } from '../../src/tree/layout.js';
import { DecryptWorker } from '../../src/packet/decrypt-offload.js';
import { enqueueFor, makeKeys, receivingNode, type NodeKeys, type ReceivingNode } from '../helpers/inproc.js';
import { FerryError } from '../../src/errors/index.js';
import type { MailEnvelope } from '../../src/packet/header.js';
import type { Enqueue } from '../../src/send/types.js';
import { tmpdir } from '../helpers/node.js';

const MSG = Buffer.from('From: a@offline.test\r\nTo: b@home.test\r\nSubject: t\r\n\r\nhello\r\n');

let A: NodeKeys, B: NodeKeys, C: NodeKeys, X: NodeKeys;
beforeAll(async () => {
  [A, B, C, X] = await Promise.all([makeKeys('a'), makeKeys('b'), makeKeys('c'), makeKeys('x')]);
});

let base: string;
let tree: string;
let rx: ReceivingNode | undefined;
afterEach(async () => {
  await rx?.close();
  rx = undefined;
});

function setup(decryptWorker?: DecryptWorker): ReceivingNode {
  base = tmpdir('fp-refuse-');
  tree = path.join(base, 'tree');
  rx = receivingNode(B, [A, C], tree, path.join(base, 'b'), decryptWorker ? { decryptWorker } : {});
  return rx;
}

async function send(from: NodeKeys, opts: { now?: () => Date; expiryMs?: number; message?: Buffer } = {}): Promise<string> {
  const q = await enqueueFor(from, B, tree, path.join(base, from.name), opts).submit({ from: 'a@offline.test', to: ['b@home.test'] }, opts.message ?? MSG);
  return q[0]!.path;
}

function delivered(r: ReceivingNode): string[] {
  const dir = path.join(r.maildir, 'new');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Rewrites a file under the name its new bytes hash to, as a careful attacker would. */
function renameToHash(file: string): string {
  const name = packetNameForHash(createHash('sha256').update(readFileSync(file)).digest());
  const to = path.join(path.dirname(file), name);
  renameSync(file, to);
  return to;
}

async function expectQuarantined(r: ReceivingNode, code: string | RegExp): Promise<void> {
  await r.receiver.scanOnce();
  const q = await listQuarantine(r.stateDir);
  expect(q).toHaveLength(1);
  expect(q[0]!.reason.code).toMatch(code);
  expect(q[0]!.reason.message.length).toBeGreaterThan(5);
  expect(existsSync(q[0]!.path)).toBe(true);
  expect(delivered(r)).toHaveLength(0);
  // nor a staged copy of a large packet in the Maildir's tmp/
  const tmp = path.join(r.maildir, 'tmp');
  expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  // nothing left in the inbox either
  const inbox = path.join(tree, B.fingerprint);
  const left = existsSync(inbox) ? readdirSync(inbox, { recursive: true }).filter((n) => String(n).endsWith('.pgp')) : [];
  expect(left).toEqual([]);
}

describe('receiver refusals', () => {
  it('delivers a good packet byte-exact and removes it (baseline)', async () => {
    const r = setup();
    const p = await send(A);
    await r.receiver.scanOnce();
    expect(existsSync(p)).toBe(false);
    const files = delivered(r);
    expect(files).toHaveLength(1);
    expect(readFileSync(path.join(r.maildir, 'new', files[0]!))).toEqual(MSG);
    expect(await listQuarantine(r.stateDir)).toHaveLength(0);
  });

  it('unknown sender directory', async () => {
    const r = setup();
    await send(X);
    await expectQuarantined(r, 'PACKET_UNKNOWN_SIGNER');
  });

  it('unknown signer inside a known peer directory', async () => {
    const r = setup();
    const p = await send(X);
    const dest = path.join(packetDir(tree, B.fingerprint, A.fingerprint), path.basename(p));
    rmSync(path.dirname(dest), { recursive: true, force: true });
    (await import('node:fs')).mkdirSync(path.dirname(dest), { recursive: true });
    renameSync(p, dest);
    rmSync(path.dirname(p), { recursive: true });
    await expectQuarantined(r, 'PACKET_UNKNOWN_SIGNER');
  });

  it('packet signed by one peer in another peer\'s directory', async () => {
    const r = setup();
    const p = await send(A);
    const dest = path.join(packetDir(tree, B.fingerprint, C.fingerprint), path.basename(p));
    (await import('node:fs')).mkdirSync(path.dirname(dest), { recursive: true });
    renameSync(p, dest);
    await expectQuarantined(r, 'PACKET_WRONG_SENDER');
  });

  it('tampered bytes under the original name', async () => {
    const r = setup();
    const p = await send(A);
    const b = readFileSync(p);
    b.writeUInt8(b[b.length >> 1]! ^ 0x01, b.length >> 1);
    writeFileSync(p, b);
    await expectQuarantined(r, 'PACKET_HASH');
  });

  it('tampered bytes renamed to match their hash', async () => {
    const r = setup();
    const p = await send(A);
    const b = readFileSync(p);
    b.writeUInt8(b[b.length - 40]! ^ 0x80, b.length - 40);
    writeFileSync(p, b);
    renameToHash(p);
    await expectQuarantined(r, /^PACKET_(DECRYPT|BAD_SIGNATURE|MALFORMED)$/);
  });

  it.each([['in front'], ['after the key packet']])('an OpenPGP Marker packet put %s (renamed to match its hash) → PACKET_MALFORMED', async (where) => {
    const r = setup();
    const p = await send(A);
    const b = readFileSync(p);
    const marker = Buffer.from([0xca, 0x03, 0x50, 0x47, 0x50]); // new-format tag 10, "PGP": ignored by OpenPGP readers
    const pkeskEnd = 2 + b[1]!; // our PKESK has a one-octet new-format length
    writeFileSync(p, where === 'in front' ? Buffer.concat([marker, b]) : Buffer.concat([b.subarray(0, pkeskEnd), marker, b.subarray(pkeskEnd)]));
    renameToHash(p);
    await expectQuarantined(r, 'PACKET_MALFORMED');
  });

  // Packets over 1 MiB are name-checked while decryption reads them: the verdict must be the same,
  // with the daemon's decrypt worker (which decrypts what this thread reads and hashes) and without it.
  const LARGE = Buffer.concat([Buffer.from('From: a@offline.test\r\nSubject: big\r\n\r\n'), Buffer.from(randomBytes(1536 * 1024).toString('base64'))]);
  const WORKER_URL = new URL('../../dist/packet/decrypt-worker.js', import.meta.url);

  for (const withWorker of [false, true]) {
    const how = withWorker ? ', decrypt worker' : '';
    let worker: DecryptWorker | undefined;
    const largeSetup = (): ReceivingNode => {
      worker = withWorker ? new DecryptWorker({ workerUrl: WORKER_URL }) : undefined;
      return setup(worker);
    };
    afterEach(async () => {
      await worker?.close();
      worker = undefined;
    });

    it(`large packet${how}: tampered bytes under the original name → PACKET_HASH, nothing left in work/`, async () => {
      const r = largeSetup();
      const p = await send(A, { message: LARGE });
      const b = readFileSync(p);
      expect(b.length).toBeGreaterThan(1 << 20);
      b.writeUInt8(b[b.length >> 1]! ^ 0x01, b.length >> 1);
      writeFileSync(p, b);
      await expectQuarantined(r, 'PACKET_HASH');
      expect(existsSync(path.join(r.stateDir, 'work')) ? readdirSync(path.join(r.stateDir, 'work')) : []).toEqual([]);
    });

    it(`large packet${how}: intact but under another packet's name → PACKET_HASH, not delivered`, async () => {
      const r = largeSetup();
      const p = await send(A, { message: LARGE });
      const other = path.join(path.dirname(p), packetNameForHash(createHash('sha256').update('another packet').digest()));
      renameSync(p, other);
      await expectQuarantined(r, 'PACKET_HASH');
      expect(delivered(r)).toEqual([]);
    });

    it(`large packet${how}: truncated, and with bytes appended → PACKET_HASH`, async () => {
      for (const cut of [(b: Buffer) => b.subarray(0, b.length - 1000), (b: Buffer) => Buffer.concat([b, Buffer.from('junk')])]) {
        const r = largeSetup();
        const p = await send(A, { message: LARGE });
        writeFileSync(p, cut(readFileSync(p)));
        await expectQuarantined(r, 'PACKET_HASH');
        await r.close();
        rx = undefined;
        await worker?.close();
      }
    });

    it(`large packet${how}: tampered and renamed to match its hash → a decryption error, not PACKET_HASH`, async () => {
      const r = largeSetup();
      const p = await send(A, { message: LARGE });
      const b = readFileSync(p);
      b.writeUInt8(b[b.length >> 1]! ^ 0x01, b.length >> 1);
      writeFileSync(p, b);
      renameToHash(p);
      await expectQuarantined(r, /^PACKET_(DECRYPT|BAD_SIGNATURE|MALFORMED)$/);
      expect(delivered(r)).toEqual([]);
    });

    it(`large packet${how} intact → delivered byte-exact`, async () => {
      const r = largeSetup();
      let jobs = 0;
      if (worker) {
        const open = worker.open.bind(worker);
        worker.open = (...args) => {
          const job = open(...args);
          if (job) jobs++;
          return job;
        };
      }
      await send(A, { message: LARGE });
      await r.receiver.scanOnce();
      expect(await listQuarantine(r.stateDir)).toEqual([]);
      const got = delivered(r);
      expect(got).toHaveLength(1);
      expect(readFileSync(path.join(r.maildir, 'new', got[0]!)).equals(LARGE)).toBe(true);
      expect(jobs).toBe(withWorker ? 1 : 0);
    });
  }

  it('truncated file', async () => {
    const r = setup();
    const p = await send(A);
    const b = readFileSync(p);
    writeFileSync(p, b.subarray(0, b.length - 30));
    await expectQuarantined(r, 'PACKET_HASH');
  });

  it('truncated file renamed to match its hash', async () => {
    const r = setup();
    const p = await send(A);
    const b = readFileSync(p);
    writeFileSync(p, b.subarray(0, b.length - 30));
    renameToHash(p);
    await expectQuarantined(r, /^PACKET_(DECRYPT|BAD_SIGNATURE|MALFORMED)$/);
  });

  it('random bytes under a valid name', async () => {
    const r = setup();
    const dir = packetDir(tree, B.fingerprint, A.fingerprint);
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    const junk = path.join(dir, 'junk');
    writeFileSync(junk, randomBytes(2000));
    renameToHash(junk);
    await expectQuarantined(r, /^PACKET_(DECRYPT|MALFORMED)$/);
  });

  it('replayed packet after delivery', async () => {
    const r = setup();
    const p = await send(A);
    const copy = path.join(base, 'copy.pgp');
    copyFileSync(p, copy);
    await r.receiver.scanOnce();
    expect(delivered(r)).toHaveLength(1);
    copyFileSync(copy, p);
    await r.receiver.scanOnce();
    const q = await listQuarantine(r.stateDir);
    expect(q.map((e) => e.reason.code)).toEqual(['PACKET_REPLAY']);
    expect(delivered(r)).toHaveLength(1);
  });

  it('the same packet id under another file name (re-encrypted and re-signed by its sender)', async () => {
    // A carrier cannot make such a packet (it needs A's key), but a confused or compromised sender can:
    // the id, not the file name, is what says "this message was delivered".
    const r = setup();
    const p = await send(A);
    const payload: Buffer[] = [];
    const { header } = await decodePacket({
      input: Readable.from([readFileSync(p)]),
      decryptionKey: B.privateKey,
      verificationKeys: [A.publicKey],
      payloadSink: new Writable({ write: (c: Buffer, _e, cb) => (payload.push(c), cb()) }),
    });
    await r.receiver.scanOnce();
    expect(delivered(r)).toHaveLength(1);
    const again = await encodePacket({ header, payload: Buffer.concat(payload), signingKey: A.privateKey, encryptionKey: B.publicKey, compressionLevel: 6 });
    const chunks: Buffer[] = [];
    for await (const c of again) chunks.push(c as Buffer);
    const tmp = path.join(path.dirname(p), 'again');
    writeFileSync(tmp, Buffer.concat(chunks));
    expect(path.basename(renameToHash(tmp))).not.toBe(path.basename(p)); // fresh session key: other bytes
    await r.receiver.scanOnce();
    const q = await listQuarantine(r.stateDir);
    expect(q.map((e) => e.reason.code)).toEqual(['PACKET_REPLAY']);
    expect(q[0]!.reason.message).toContain(header.id);
    expect(delivered(r)).toHaveLength(1);
  });

  it('expired packet: quarantined, and its sender told once (DSN 5.4.7), also after a release', async () => {
    const dsns: Array<{ envelope: MailEnvelope; text: string }> = [];
    const recording: Enqueue = {
      async submit(envelope, message) {
        dsns.push({ envelope, text: Buffer.from(message as Uint8Array).toString('utf8') });
        return [];
      },
    };
    base = tmpdir('fp-refuse-');
    tree = path.join(base, 'tree');
    const r = (rx = receivingNode(B, [A, C], tree, path.join(base, 'b'), { enqueue: recording }));
    await send(A, { now: () => new Date(Date.now() - 2 * 86_400_000), expiryMs: 86_400_000 });
    await expectQuarantined(r, 'PACKET_EXPIRED');
    const [q] = await listQuarantine(r.stateDir);
    expect(q!.reason.message).toMatch(/expired at .*; DSN sent to <a@offline\.test>/);
    expect(dsns).toHaveLength(1);
    expect(dsns[0]!.envelope).toEqual({ from: '', to: ['a@offline.test'] });
    expect(dsns[0]!.text).toMatch(/^Action: failed\r?$/m);
    expect(dsns[0]!.text).toMatch(/^Status: 5\.4\.7\r?$/m);
    const unfolded = dsns[0]!.text.replace(/\r?\n[ \t]+/g, ' ');
    expect(unfolded).toMatch(/^Diagnostic-Code: x-ferrypost; packet expired at \S+ in transit, before test\.invalid received it/m);
    expect(dsns[0]!.text).not.toMatch(/^Remote-MTA:/m); // no next hop was involved
    expect(dsns[0]!.text).toContain('Subject: t'); // the original headers
    // The admin releases it: refused again (it is still expired), without a second DSN.
    await releaseQuarantined(r.stateDir, tree, B.fingerprint, q!.name);
    await r.receiver.scanOnce();
    const again = await listQuarantine(r.stateDir);
    expect(again.map((e) => e.reason.code)).toEqual(['PACKET_REPLAY']);
    expect(again[0]!.reason.message).toMatch(/already refused and bounced: packet \S+ expired at/);
    expect(dsns).toHaveLength(1);
    expect(delivered(r)).toHaveLength(0);
  });

  it('packet expired longer ago than the journal keeps delivery records: quarantined, no DSN (it may be an old copy)', async () => {
    const dsns: unknown[] = [];
    base = tmpdir('fp-refuse-');
    tree = path.join(base, 'tree');
    const r = (rx = receivingNode(B, [A, C], tree, path.join(base, 'b'), { enqueue: { submit: async (e) => (dsns.push(e), []) } }));
    await send(A, { now: () => new Date(Date.now() - 100 * 86_400_000), expiryMs: 30 * 86_400_000 }); // expired 70 days ago
    await expectQuarantined(r, 'PACKET_EXPIRED');
    expect((await listQuarantine(r.stateDir))[0]!.reason.message).toMatch(/sender not told: it expired more than 7 days ago/);
    expect(dsns).toEqual([]);
  });

  it('expired packet from the null sender: quarantined, no DSN', async () => {
    const dsns: unknown[] = [];
    base = tmpdir('fp-refuse-');
    tree = path.join(base, 'tree');
    const r = (rx = receivingNode(B, [A, C], tree, path.join(base, 'b'), { enqueue: { submit: async (e) => (dsns.push(e), []) } }));
    await enqueueFor(A, B, tree, path.join(base, 'a'), { now: () => new Date(Date.now() - 2 * 86_400_000), expiryMs: 86_400_000 })
      .submit({ from: '', to: ['b@home.test'] }, MSG);
    await expectQuarantined(r, 'PACKET_EXPIRED');
    expect((await listQuarantine(r.stateDir))[0]!.reason.message).toMatch(/sender not told \(null sender\)/);
    expect(dsns).toEqual([]);
  });

  it('expired packet whose DSN cannot be stored stays in the inbox (retried), not quarantined', async () => {
    base = tmpdir('fp-refuse-');
    tree = path.join(base, 'tree');
    const full: Enqueue = { submit: async () => { throw new FerryError('DISK_FULL', 'disk full'); } };
    const r = (rx = receivingNode(B, [A, C], tree, path.join(base, 'b'), { enqueue: full }));
    const p = await send(A, { now: () => new Date(Date.now() - 2 * 86_400_000), expiryMs: 86_400_000 });
    await r.receiver.scanOnce();
    expect(existsSync(p)).toBe(true);
    expect(await listQuarantine(r.stateDir)).toEqual([]);
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['error']);
    expect(r.journal.inState('removed')).toEqual([]); // nothing recorded: the next scan tries again
  });

  it('ignores Syncthing temp files and conflict copies without touching them', async () => {
    const r = setup();
    const p = await send(A);
    const dir = path.dirname(p);
    const tmp = path.join(dir, `.syncthing.${path.basename(p)}.tmp`);
    const conflict = path.join(dir, `${path.basename(p, '.pgp')}.sync-conflict-20260101-120000-ABCDEFG.pgp`);
    writeFileSync(tmp, 'partial');
    writeFileSync(conflict, 'other');
    await r.receiver.scanOnce();
    expect(delivered(r)).toHaveLength(1);
    expect(existsSync(tmp)).toBe(true);
    expect(existsSync(conflict)).toBe(true);
    expect(await listQuarantine(r.stateDir)).toHaveLength(0);
  });

  it('a released packet is checked again: unknown signer, then the peer is added, then delivered', async () => {
    const r = setup();
    await send(X);
    await r.receiver.scanOnce();
    const [q] = await listQuarantine(r.stateDir);
    expect(q!.reason.code).toBe('PACKET_UNKNOWN_SIGNER');
    await r.close();
    rx = undefined;
    // The admin adds X as a peer and releases the packet.
    const again = receivingNode(B, [A, C, X], tree, path.join(base, 'b'));
    rx = again;
    const to = await releaseQuarantined(again.stateDir, tree, B.fingerprint, q!.name);
    expect(to).toBe(q!.reason.originalPath);
    expect(await listQuarantine(again.stateDir)).toEqual([]);
    await again.receiver.scanOnce();
    expect(delivered(again)).toHaveLength(1);
    await expect(releaseQuarantined(again.stateDir, tree, B.fingerprint, q!.name)).rejects.toThrow(/no quarantined packet/);
  });
});
