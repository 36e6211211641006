/**
 * Pickup while a packet is slow: the running receiver (watch + rescan) starts a new packet in a free
 * slot while another one's injection hangs, instead of waiting for the slowest packet of the previous
 * scan. Real codec, journal, tree watcher and receiver; the injector is held by the test.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { messageStream, type Injector, type RecipientResult } from '../../src/inject/types.js';
import { enqueueFor, receiverTests, receivingNode, type ReceivingNode } from '../helpers/inproc.js';

const t = receiverTests('fp-rx-pickup-');

let base: string;
let rx: ReceivingNode | undefined;
let release: () => void = () => undefined;
afterEach(() => release()); // before the receiver closes: it waits for the held packet

async function until(what: string, probe: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('receiver pickup', () => {
  it('a packet written while another one\'s injection hangs is delivered in a free slot', async () => {
    base = t.dir();
    const tree = path.join(base, 'tree');
    const enqueue = enqueueFor(t.A, t.B, tree, path.join(base, 'a'));
    const send = (subject: string) => enqueue.submit({ from: 'a@offline.test', to: ['b@home.test'] }, Buffer.from(`Subject: ${subject}\r\n\r\nhello\r\n`));
    const held = new Promise<void>((r) => (release = r));
    const injected: string[] = [];
    const injector: Injector = {
      name: 'held',
      async inject(req): Promise<RecipientResult[]> {
        let text = '';
        for await (const c of messageStream(req)) text += Buffer.from(c).toString('latin1');
        const subject = /^Subject: (\S+)/.exec(text)?.[1] ?? '?';
        injected.push(subject);
        if (subject === 'slow') await held; // the MTA takes its time with this one
        return req.envelope.to.map((rcpt) => ({ rcpt, status: 'ok', code: 250, enhanced: '2.0.0', message: '250 ok' }));
      },
      async close() {},
    };
    rx = t.track(receivingNode(t.B, [t.A], tree, path.join(base, 'b'), { injector, concurrency: 4 }));
    await send('slow');
    await rx.receiver.start();
    await until('the slow packet in injection', () => injected.includes('slow'));
    await send('next');
    // Picked up by the watcher (or the receiver's own triggers) while "slow" still holds its slot.
    await until('the next packet delivered', () => rx!.outcomes.some((o) => o.outcome === 'delivered'));
    expect(injected).toEqual(['slow', 'next']);
    expect(rx.outcomes).toHaveLength(1);
    release();
    await until('the slow packet delivered', () => rx!.outcomes.length === 2);
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['delivered', 'delivered']);
  });
});
