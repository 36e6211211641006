import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import { createNetworkList, limitSize, parseUsersFile } from '../../src/smtp/policy.js';

describe('createNetworkList', () => {
  const nets = createNetworkList(['127.0.0.0/8', '::1/128', '192.168.1.0/24', '2001:db8::/32', '::ffff:10.0.0.0/104', '203.0.113.7']);
  it.each([
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['::ffff:127.0.0.1', true],
    ['::1', true],
    ['192.168.1.200', true],
    ['192.168.2.1', false],
    ['2001:db8:1::5', true],
    ['2001:db9::1', false],
    ['10.9.8.7', true], // from the v4-mapped entry
    ['::ffff:10.1.1.1', true],
    ['203.0.113.7', true],
    ['203.0.113.8', false],
    ['8.8.8.8', false],
    ['not-an-ip', false],
  ])('%s → %s', (ip, want) => {
    expect(nets.contains(ip)).toBe(want);
  });
  it.each(['10.0.0.0/33', 'example.org', '10.0.0.0/8/1', '::/129', '10.0.0.0/x'])('refuses %s', (bad) => {
    expect(() => createNetworkList([bad])).toThrow(/is not an address or CIDR/);
  });
  it('an empty list allows nothing', () => {
    expect(createNetworkList([]).contains('127.0.0.1')).toBe(false);
  });
});

describe('parseUsersFile', () => {
  const hex = createHash('sha256').update('hunter2').digest('hex');
  const t = parseUsersFile(`# comment\n\nann:{PLAIN}open sesame:1\nben:{SHA256}${hex.toUpperCase()}\r\n`, 'users');
  it('checks passwords', () => {
    expect(t.verify('ann', 'open sesame:1')).toBe(true);
    expect(t.verify('ann', 'open sesame')).toBe(false);
    expect(t.verify('ben', 'hunter2')).toBe(true);
    expect(t.verify('ben', 'Hunter2')).toBe(false);
    expect(t.verify('nobody', 'hunter2')).toBe(false);
    expect(t.verify('', '')).toBe(false);
  });
  it.each(['ann', 'ann:open', 'ann:{MD5}x', 'ann:{SHA256}abc', 'ann:{PLAIN}'])('refuses line %j with file:line', (line) => {
    expect(() => parseUsersFile(`# ok\n${line}\n`, '/etc/users')).toThrow(/^\/etc\/users:2: expected/);
  });
});

describe('limitSize', () => {
  const collect = async (s: NodeJS.ReadableStream) => {
    const chunks: Buffer[] = [];
    for await (const c of s) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  it('passes up to max bytes through unchanged', async () => {
    const src = new PassThrough();
    const out = limitSize(src, 10);
    src.write('01234');
    src.end('56789');
    expect((await collect(out)).toString()).toBe('0123456789');
  });
  it('errors with TOO_BIG past max and drains the source to its end', async () => {
    const src = new PassThrough();
    const out = limitSize(src, 10);
    let ended = false;
    src.on('end', () => (ended = true));
    src.write('0123456789');
    src.write('x');
    for (let i = 0; i < 100; i++) src.write(Buffer.alloc(1024));
    src.end();
    const err = await collect(out).catch((e: unknown) => e);
    expect(isFerryError(err, 'TOO_BIG')).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(ended).toBe(true);
  });
  it('errors if the source closes without ending (client gone)', async () => {
    const src = new PassThrough();
    const out = limitSize(src, 100);
    src.write('abc');
    setTimeout(() => src.destroy(), 5);
    const err = await collect(out).catch((e: unknown) => e);
    expect(isFerryError(err, 'STORE_FAILED')).toBe(true);
  });
});
