// RFC 2034 ENHANCEDSTATUSCODES: EHLO announces it, and every reply after that (the greeting, the
// EHLO/HELO reply and 3xx excepted) starts with exactly one enhanced status code of the reply's class:
// smtp-server's own replies get one from its table, ours keep the one they carry (errors/index.ts,
// Postfix's texts) instead of getting a second in front of it ("451 4.3.0 4.3.5 Error: ...").
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import type { Enqueue } from '../../src/send/types.js';
import { listenerConfig, listenerHarness, rawClient } from './smtp-fixture.js';

const h = listenerHarness();

/** Every line: "NNN ", then one enhanced code whose class is the reply's first digit, then text that is not another code. */
function expectOneCode(reply: string): void {
  for (const line of reply.split('\r\n')) {
    expect(line, reply).toMatch(/^([245])\d\d[ -]\1\.\d{1,3}\.\d{1,3} (?!\d\.\d{1,3}\.\d{1,3}\b)/);
  }
}

/** After EHLO, sends each command and expects its exact reply, each with one enhanced code. */
async function dialogue(port: number, steps: Array<[command: string, reply: string]>): Promise<void> {
  const c = await rawClient(port);
  try {
    await c.cmd('EHLO client.test');
    for (const [command, reply] of steps) {
      const got = await c.cmd(command);
      expectOneCode(got);
      expect(got, command).toBe(reply);
    }
  } finally {
    c.close();
  }
}

const MESSAGE = 'Subject: codes\r\n\r\nbody\r\n.';

describe('ENHANCEDSTATUSCODES', () => {
  it('is announced in EHLO; the greeting and the EHLO/HELO replies carry no code, every other reply one', async () => {
    const c = await rawClient((await h.start(listenerConfig())).port);
    expect(c.greeting).toMatch(/^220 mx\.test ESMTP ferrypost ESMTP$/);
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo.split('\r\n')).toContain('250-ENHANCEDSTATUSCODES');
    expect(ehlo).toMatch(/^250-mx\.test Nice to meet you/);
    expect(await c.cmd('HELO client.test')).toMatch(/^250 mx\.test Nice to meet you/);

    expect(await c.cmd('MAIL FROM:<a@example.org>')).toBe('250 2.1.0 Accepted');
    expect(await c.cmd('RCPT TO:<b@example.net>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('DATA')).toMatch(/^354 End data/);
    const queued = await c.cmd(MESSAGE);
    expect(queued).toMatch(/^250 2\.0\.0 Ok: queued as [a-z2-7]{26}$/);
    const noop = await c.cmd('NOOP');
    expectOneCode(noop);
    expect(noop).toMatch(/^250 2\.0\.0 /);
    expect(await c.cmd('QUIT')).toBe('221 2.0.0 Bye');
    c.close();
  });

  it("smtp-server's own refusals (sequence, syntax, unknown command, declared size) carry one code", async () => {
    await dialogue((await h.start(listenerConfig())).port, [
      ['RCPT TO:<b@example.net>', '503 5.5.1 Error: need MAIL command'],
      ['DATA', '503 5.5.1 Error: need RCPT command'],
      ['MAIL FROM:a@example.org', '501 5.1.7 Error: Bad sender address syntax'],
      ['XYZZY', '500 5.5.2 Error: command not recognized'],
      // smtp-server checks SIZE before onMailFrom
      ['MAIL FROM:<a@example.org> SIZE=200000', '552 5.3.4 Error: message exceeds fixed maximum message size 100000'],
      ['MAIL FROM:<a@example.org>', '250 2.1.0 Accepted'],
      ['MAIL FROM:<a@example.org>', '503 5.5.1 Error: nested MAIL command'],
      ['RCPT TO:<>', '501 5.1.3 Error: Bad recipient address syntax'],
    ]);
  });

  it('our refusals keep their own code, once: no route, bad address, unusable peer key, too many recipients', async () => {
    const bob = h.w.bob.fpr;
    const { port } = await h.start(listenerConfig({ max_recipients: 2 }), { peerProblem: (fpr) => (fpr === bob ? 'expired on 2024-01-01' : undefined) });
    await dialogue(port, [
      ['MAIL FROM:<a(b@example.org>', '553 5.1.7 <a(b@example.org>: Sender address rejected: bad address syntax (malformed local part)'],
      ['MAIL FROM:<a@example.org>', '250 2.1.0 Accepted'],
      ['RCPT TO:<x@nowhere.invalid>', '550 5.1.2 <x@nowhere.invalid>: Recipient address rejected: no route to a ferrypost node'],
      ['RCPT TO:<b@-x.net>', '501 5.1.3 <b@-x.net>: bad address syntax (malformed domain)'],
      ['RCPT TO:<b@example.net>', '450 4.7.5 <b@example.net>: Recipient address rejected: the key of node bob expired on 2024-01-01; mail for it waits until its renewed key is installed'],
      ['RCPT TO:<c1@example.com>', '250 2.1.5 Accepted'],
      ['RCPT TO:<c2@example.com>', '250 2.1.5 Accepted'],
      ['RCPT TO:<c3@example.com>', '452 4.5.3 Error: too many recipients'],
    ]);
  });

  it('a message over max_size: 552 5.3.4, once', async () => {
    const c = await rawClient((await h.start(listenerConfig({ max_size: 2048 }))).port);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    expect(await c.cmd('DATA')).toMatch(/^354 /);
    const reply = await c.cmd(`Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(60) + '.');
    c.close();
    expectOneCode(reply);
    expect(reply).toBe('552 5.3.4 Error: message exceeds fixed maximum message size 2048');
  });

  it('a store failure after DATA: the error table\'s code (451 4.3.5 for CONFIG), not smtp-server\'s 4.3.0 in front of it', async () => {
    const failing: Enqueue = {
      async submit(_env, message) {
        if (message instanceof Readable) for await (const _ of message) void _;
        throw new FerryError('CONFIG', 'peer key file unreadable');
      },
    };
    const c = await rawClient((await h.start(listenerConfig(), { enqueue: failing })).port);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    await c.cmd('DATA');
    const reply = await c.cmd(MESSAGE);
    c.close();
    expectOneCode(reply);
    expect(reply).toBe('451 4.3.5 Error: queue file write error');
  });
});
