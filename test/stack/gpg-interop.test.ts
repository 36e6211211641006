/** Packets against real GnuPG (/usr/bin/gpg): gpg decrypts and verifies ours, we decode gpg's, gpg refuses tampering. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpgHome, type GpgHome } from '../helpers/gpg.js';
import { decodeBuffer, encodeToBuffer, makeHeader, makeKey, plaintextOf, type TestKey } from '../unit/packet-helpers.js';

let G: GpgHome;
let work: string;
let sender: TestKey;
let recipient: TestKey;

const gpg = (args: string[], allowFail = false) => G.gpg(args, { allowFail });

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'ferrypost-gpgwork-'));
  [sender, recipient] = await Promise.all([makeKey('sender'), makeKey('recipient')]);
  G = await gpgHome([recipient.priv, sender.priv]);
});

afterAll(async () => {
  await G.close();
  await rm(work, { recursive: true, force: true });
});

describe('gpg reads ferrypost packets', () => {
  for (const level of [0, 6]) {
    it(`decrypts and verifies a packet (compression level ${level})`, async () => {
      const payload = Buffer.concat([Buffer.from('From: a@example.org\r\nSubject: caf\xe9\r\n\r\n.\r\nbody\n'), Buffer.from([0, 0xff, 0x80, 0x0d])]);
      const header = makeHeader(sender, recipient, payload);
      const file = path.join(work, `p${level}.pgp`);
      await writeFile(file, await encodeToBuffer(sender, recipient, payload, level, header));
      const out = path.join(work, `p${level}.out`);
      const r = await gpg(['--status-fd', '1', '--output', out, '--decrypt', file]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^\\[GNUPG:\\] GOODSIG ${sender.fpr.slice(-16).toUpperCase()} `, 'm'));
      expect(r.stdout).toMatch(new RegExp(`^\\[GNUPG:\\] VALIDSIG ${sender.fpr.toUpperCase()} `, 'm'));
      expect(r.stdout).toMatch(/^\[GNUPG:\] DECRYPTION_OKAY/m);
      expect(r.stdout).toMatch(/^\[GNUPG:\] GOODMDC/m);
      const plain = await readFile(out);
      expect(plain.equals(plaintextOf(header, payload))).toBe(true);

      const listed = await gpg(['--list-packets', file]);
      expect(listed.stdout).toContain('mdc_method: 2');
      expect(listed.stdout.includes('compressed packet: algo=2')).toBe(level > 0);
      expect(listed.stdout).toMatch(/literal data packet:\s*\n?\s*mode b .* name=""/);
    });
  }

  it('refuses a tampered packet', async () => {
    const payload = Buffer.from('x'.repeat(5000));
    const good = await encodeToBuffer(sender, recipient, payload, 6);
    for (const pos of [Math.floor(good.length / 2), good.length - 1]) {
      const bad = Buffer.from(good);
      bad[pos]! ^= 0x01;
      const file = path.join(work, `bad${pos}.pgp`);
      await writeFile(file, bad);
      const r = await gpg(['--status-fd', '1', '--output', path.join(work, `bad${pos}.out`), '--decrypt', file], true);
      expect(r.code, `flip at ${pos}`).not.toBe(0);
    }
  });
});

describe('ferrypost reads gpg-made packets', () => {
  for (const level of [0, 6]) {
    it(`decodes a 3 MiB message gpg signed and encrypted at -z ${level} (gpg's partial body lengths pass ferrypost's 512-byte minimum)`, async () => {
      const payload = Buffer.from(`Subject: big from gpg\r\n\r\n${randomBytes(2304 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`);
      const header = makeHeader(sender, recipient, payload);
      const plainFile = path.join(work, `plain-big-${level}`);
      await writeFile(plainFile, plaintextOf(header, payload));
      const out = path.join(work, `gpg-made-big-${level}.pgp`);
      await gpg(['--trust-model', 'always', '-z', String(level), '--compress-algo', 'zlib', '-u', sender.fpr, '-r', recipient.fpr, '--output', out, '--sign', '--encrypt', plainFile]);
      const decoded = await decodeBuffer(await readFile(out), recipient, [sender]);
      expect(decoded.header).toEqual(header);
      expect(decoded.payload.equals(payload)).toBe(true);
    });
  }

  it('decodes a message gpg signed and encrypted with the same framing', async () => {
    const payload = Buffer.from('Subject: from gpg\r\n\r\nhello\r\n');
    const header = makeHeader(sender, recipient, payload);
    const plainFile = path.join(work, 'plain');
    await writeFile(plainFile, plaintextOf(header, payload));
    const out = path.join(work, 'gpg-made.pgp');
    await gpg(['--trust-model', 'always', '-z', '6', '-u', sender.fpr, '-r', recipient.fpr, '--output', out, '--sign', '--encrypt', plainFile]);
    const decoded = await decodeBuffer(await readFile(out), recipient, [sender]);
    expect(decoded.header).toEqual(header);
    expect(decoded.signer).toBe(sender.fpr);
    expect(decoded.payload.equals(payload)).toBe(true);
  });
});
