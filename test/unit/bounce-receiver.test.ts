// Bounces through the real receiver (codec, journal, process.ts) with a fake next hop and a fake
// enqueue: a DSN that can be stored nowhere keeps the packet, and an expired recipient's DSN keeps
// the actual problem's status.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import type { InjectRequest, Injector, RecipientResult } from '../../src/inject/types.js';
import type { Enqueue } from '../../src/send/types.js';
import { enqueueFor, receiverTests, receivingNode, type ReceivingNode } from '../helpers/inproc.js';

const t = receiverTests('fp-bounce-');

let base: string;
let tree: string;
let rx: ReceivingNode | undefined;

async function send(to: string[]): Promise<string> {
  base = t.dir();
  tree = path.join(base, 'tree');
  const q = await enqueueFor(t.A, t.B, tree, path.join(base, 'a')).submit({ from: 'a@offline.test', to }, Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
  return q[0]!.path;
}

const result = (rcpt: string, status: RecipientResult['status'], extra: Partial<RecipientResult> = {}): RecipientResult => ({
  rcpt,
  status,
  code: status === 'ok' ? 250 : status === 'temp' ? 451 : 550,
  message: status,
  ...extra,
});

/** A next hop that answers the original by `original` and a DSN (null sender) by `dsn`. */
function nextHop(original: (rcpt: string) => RecipientResult, dsn: () => RecipientResult['status']): { injector: Injector; calls: InjectRequest[] } {
  const calls: InjectRequest[] = [];
  const injector: Injector = {
    name: 'smtp:127.0.0.1:25',
    async inject(req) {
      calls.push(req);
      return req.envelope.from === '' ? req.envelope.to.map((r) => result(r, dsn())) : req.envelope.to.map(original);
    },
    async close() {},
  };
  return { injector, calls };
}

const noRoute: Enqueue = { submit: async (env) => { throw new FerryError('NO_ROUTE', `<${env.to[0]}>: no route to a node`); } };

describe('receiver: a DSN that routes to no node', () => {
  it('goes to the next hop; if that fails too the packet stays, the bounced recipient not recorded, until it succeeds', async () => {
    const packet = await send(['ok@home.test', 'gone@home.test']);
    let dsnStatus: RecipientResult['status'] = 'temp';
    const hop = nextHop((r) => result(r, r.startsWith('ok@') ? 'ok' : 'perm'), () => dsnStatus);
    rx = t.track(receivingNode(t.B, [t.A], tree, path.join(base, 'b'), { injector: hop.injector, enqueue: noRoute }));

    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['error']);
    expect(existsSync(packet)).toBe(true);
    const hash = rx.outcomes[0]!.entry.hash.toString('hex');
    expect(rx.journal.byHash(hash)!.doneRecipients).toEqual(['ok@home.test']); // accepted; the bounced one is not done
    expect(hop.calls.map((c) => c.envelope)).toEqual([
      { from: 'a@offline.test', to: ['ok@home.test', 'gone@home.test'] },
      { from: '', to: ['a@offline.test'] },
    ]);

    dsnStatus = 'ok';
    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['error', 'delivered']);
    expect(existsSync(packet)).toBe(false);
    // The accepted recipient is not injected again; the refused one is tried again, then bounced locally.
    expect(hop.calls.slice(2).map((c) => c.envelope)).toEqual([
      { from: 'a@offline.test', to: ['gone@home.test'] },
      { from: '', to: ['a@offline.test'] },
    ]);
  });
});

describe('receiver: queue lifetime expired', () => {
  it('the DSN keeps the recipient\'s own enhanced status (4.4.7 only without one) and says the time expired', async () => {
    const packet = await send(['full@home.test', 'plain@home.test']);
    let now = Date.now();
    const dsns: string[] = [];
    const enqueue: Enqueue = {
      async submit(env, message) {
        dsns.push(Buffer.from(message as Uint8Array).toString('latin1'));
        return [{ id: 'q1', peer: 'a', toNode: t.A.fingerprint, name: 'n', path: '/n', recipients: env.to }];
      },
    };
    const hop = nextHop(
      (r) => (r.startsWith('full@') ? result(r, 'temp', { code: 452, enhanced: '4.2.2', message: '4.2.2 mailbox full' }) : result(r, 'temp', { code: undefined, message: 'connection refused' })),
      () => 'ok',
    );
    rx = t.track(receivingNode(t.B, [t.A], tree, path.join(base, 'b'), { injector: hop.injector, enqueue, now: () => now }));
    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['deferred']);
    now += 6 * 86_400_000; // past the 5-day queue lifetime
    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['deferred', 'delivered']);
    expect(existsSync(packet)).toBe(false);
    expect(dsns).toHaveLength(1);
    const dsn = dsns[0]!.replace(/\r\n[ \t]+/g, ' ');
    expect(dsn).toMatch(/Final-Recipient: rfc822; full@home\.test\r\nAction: failed\r\nStatus: 4\.2\.2\r\n/);
    expect(dsn).toMatch(/Final-Recipient: rfc822; plain@home\.test\r\nAction: failed\r\nStatus: 4\.4\.7\r\n/);
    expect(dsn).toContain('Diagnostic-Code: smtp; 452 delivery time expired; last error: 4.2.2 mailbox full');
    expect(dsn).toContain('Diagnostic-Code: x-ferrypost; delivery time expired; last error: connection refused');
  });
});
