// RCPT refuses, with 452 4.5.3, the recipient that would push its node's packet header over the limit
// (MAX_HEADER_BYTES): the client sends the rest in another transaction, instead of getting 451 after
// DATA forever. The budget is per node and per transaction.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { headerBytesFor, HEADER_BUDGET } from '../../src/send/header-budget.js';
import { decodeFile, listFiles } from './send-fixture.js';
import { listenerConfig, listenerHarness, rawClient } from './smtp-fixture.js';

const h = listenerHarness();
const start = async (): Promise<number> => (await h.start(listenerConfig({ max_recipients: 1000, allowed_networks: ['127.0.0.0/8'] }))).port;

/** Long (253 bytes, within SMTP's 256-octet path), valid, distinct addresses routed to carol (*.example.com). */
const longRcpt = (i: number): string => `${String(i).padStart(6, '0')}${'l'.repeat(58)}@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(48)}.example.com`;

describe('RCPT and the packet header limit', () => {
  it('452 4.5.3 for the recipient that would not fit; other nodes still accepted; the rest fit in the next transaction', async () => {
    const from = 'a@example.org';
    const all = Array.from({ length: 300 }, (_, i) => longRcpt(i));
    let fit = 0;
    while (headerBytesFor(from, all.slice(0, fit + 1)) <= HEADER_BUDGET) fit++;
    expect(fit).toBeLessThan(all.length);

    const c = await rawClient(await start());
    await c.cmd('EHLO c.test');
    expect(await c.cmd(`MAIL FROM:<${from}>`)).toMatch(/^250/);
    const refused: number[] = [];
    for (const [i, r] of all.entries()) {
      const reply = await c.cmd(`RCPT TO:<${r}>`);
      if (reply.startsWith('452 4.5.3 ')) refused.push(i);
      else expect(reply).toMatch(/^250/);
    }
    expect(refused[0]).toBe(fit);
    expect(refused).toHaveLength(all.length - fit);
    expect(await c.cmd('RCPT TO:<b@example.net>')).toMatch(/^250/); // bob's packet has its own budget
    expect(await c.cmd('DATA')).toMatch(/^354/);
    expect(await c.cmd('Subject: many\r\n\r\nbody\r\n.')).toMatch(/^250 2\.0\.0 Ok: queued as/);

    // The client's retry of the refused ones: a new transaction, a new budget.
    expect(await c.cmd(`MAIL FROM:<${from}>`)).toMatch(/^250/);
    for (const i of refused) expect(await c.cmd(`RCPT TO:<${all[i]}>`)).toMatch(/^250/);
    expect(await c.cmd('DATA')).toMatch(/^354/);
    expect(await c.cmd('Subject: many\r\n\r\nbody\r\n.')).toMatch(/^250 2\.0\.0 Ok: queued as/);
    c.close();

    const files = listFiles(h.w.tree).filter((f) => f.startsWith(h.w.carol.fpr));
    expect(files).toHaveLength(2);
    const counts = await Promise.all(files.map(async (f) => (await decodeFile(path.join(h.w.tree, f), h.w.carol, h.w.self)).header.envelope.to.length));
    expect(counts.sort((a, b) => a - b)).toEqual([all.length - fit, fit].sort((a, b) => a - b));
  });
});

describe('UTF-8 addresses (RFC 6531)', () => {
  it('553 5.6.7 without the SMTPUTF8 parameter; accepted with it, and the packet carries them unchanged', async () => {
    const c = await rawClient(await start());
    expect(await c.cmd('EHLO c.test')).toMatch(/SMTPUTF8/);
    expect(await c.cmd('MAIL FROM:<jörg@bücher.example>')).toMatch(/^553 5\.6\.7 /);
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<zoë@example.net>')).toMatch(/^553 5\.6\.7 /);
    expect(await c.cmd('RSET')).toMatch(/^250/);
    expect(await c.cmd('MAIL FROM:<jörg@bücher.example> SMTPUTF8')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<zoë@example.net>')).toMatch(/^250/);
    expect(await c.cmd('DATA')).toMatch(/^354/);
    expect(await c.cmd('Subject: utf8\r\n\r\nbody\r\n.')).toMatch(/^250 2\.0\.0 /);
    c.close();
    const files = listFiles(h.w.tree).filter((f) => f.endsWith('.pgp'));
    expect(files).toHaveLength(1);
    const { header } = await decodeFile(path.join(h.w.tree, files[0]!), h.w.bob, h.w.self);
    expect(header.envelope).toEqual({ from: 'jörg@bücher.example', to: ['zoë@example.net'] });
  });
});
