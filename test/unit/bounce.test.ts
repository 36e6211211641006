// receive/bounce.ts with a fake enqueue and a fake injector: who gets a DSN, where it goes when the
// sender's address routes to no node, and what its Remote-MTA says.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { FerryError, isFerryError } from '../../src/errors/index.js';
import type { InjectRequest, Injector, RecipientResult } from '../../src/inject/types.js';
import type { PacketHeader } from '../../src/packet/header.js';
import { bounce, remoteMtaOf } from '../../src/receive/bounce.js';
import type { Enqueue } from '../../src/send/types.js';

const header = (from: string): PacketHeader => ({
  v: 1,
  type: 'mail',
  id: 'abcdefghijklmnopqrstuvwxyz',
  from_node: 'a'.repeat(40),
  to_node: 'b'.repeat(40),
  created: '2026-11-27T10:00:00.000Z',
  expires: '2026-12-27T10:00:00.000Z',
  envelope: { from, to: ['x@home.test', 'y@home.test'] },
  size: 100,
  sha256: '0'.repeat(64),
});

const failed: RecipientResult[] = [{ rcpt: 'x@home.test', status: 'perm', code: 550, enhanced: '5.1.1', message: '5.1.1 no such user' }];
const plain = { bytes: Buffer.from('From: a@away.test\r\nSubject: hi\r\n\r\nbody\r\n') };

interface Rig {
  enqueue: Enqueue;
  injector: Injector;
  submitted: Array<{ from: string; to: string[]; message: string }>;
  injected: InjectRequest[];
  events: () => string[];
  log: pino.Logger;
}

function rig(opts: { route?: 'ok' | 'none' | 'fail'; local?: (to: string[]) => RecipientResult[]; injectorName?: string } = {}): Rig {
  const submitted: Rig['submitted'] = [];
  const injected: InjectRequest[] = [];
  const enqueue: Enqueue = {
    async submit(envelope, message) {
      if (opts.route === 'none') throw new FerryError('NO_ROUTE', `<${envelope.to[0]}>: no route to a node`);
      if (opts.route === 'fail') throw new FerryError('STORE_FAILED', 'disk I/O error');
      submitted.push({ ...envelope, message: Buffer.from(message as Uint8Array).toString('latin1') });
      return [{ id: 'q1', peer: 'p', toNode: 'c'.repeat(40), name: 'n', path: '/x/n', recipients: envelope.to }];
    },
  };
  const local = opts.local ?? ((to) => to.map((rcpt): RecipientResult => ({ rcpt, status: 'ok', code: 250, enhanced: '2.0.0', message: '250 2.0.0 queued' })));
  const injector: Injector = {
    name: opts.injectorName ?? 'smtp:127.0.0.1:25',
    async inject(req) {
      injected.push(req);
      return local(req.envelope.to);
    },
    async close() {},
  };
  const lines: Array<{ evt?: string }> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { evt?: string }) });
  return { enqueue, injector, submitted, injected, log, events: () => lines.map((l) => l.evt ?? '') };
}

const depsOf = (r: Rig) => ({ enqueue: r.enqueue, injector: r.injector, hostname: 'gw.test', log: r.log });

/** Remote-MTA values of a DSN's per-recipient groups (unfolded). */
const remoteMtas = (dsn: string): string[] => [...dsn.replace(/\r\n[ \t]+/g, ' ').matchAll(/^Remote-MTA: (.*)$/gm)].map((m) => m[1]!);

describe('bounce: who gets a DSN', () => {
  it('every non-null sender, also for Auto-Submitted mail and for a report (RFC 5321 §6.1)', async () => {
    const r = rig();
    const auto = { bytes: Buffer.from('From: alerts@away.test\r\nAuto-Submitted: auto-generated\r\nSubject: x\r\n\r\nbody\r\n') };
    const report = { bytes: Buffer.from('Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b--\r\n') };
    await bounce(depsOf(r), header('alerts@away.test'), auto, failed);
    await bounce(depsOf(r), header('reporter@away.test'), report, failed);
    expect(r.submitted.map((s) => [s.from, s.to])).toEqual([
      ['', ['alerts@away.test']],
      ['', ['reporter@away.test']],
    ]);
    expect(r.events()).not.toContain('rx.bounce-suppressed');
  });

  it('never the null sender (every DSN carries it: no loops)', async () => {
    const r = rig();
    await bounce(depsOf(r), header(''), plain, failed);
    await bounce(depsOf(r), header('<>'), plain, failed);
    expect(r.submitted).toEqual([]);
    expect(r.injected).toEqual([]);
    expect(r.events()).toEqual(['rx.bounce-suppressed', 'rx.bounce-suppressed']);
  });
});

describe('bounce: where the DSN goes', () => {
  it('a routable sender: enqueued towards its node, the next hop untouched', async () => {
    const r = rig();
    await bounce(depsOf(r), header('a@away.test'), plain, failed);
    expect(r.submitted).toHaveLength(1);
    expect(r.submitted[0]!.message).toContain('report-type=delivery-status');
    expect(r.injected).toEqual([]);
    expect(r.events()).toEqual(['rx.bounced']);
  });

  it('no route to a node: handed to this node\'s next hop, null sender, to the original sender', async () => {
    const r = rig({ route: 'none' });
    await bounce(depsOf(r), header('a@nowhere.test'), plain, failed);
    expect(r.submitted).toEqual([]);
    expect(r.injected).toHaveLength(1);
    const req = r.injected[0]!;
    expect(req.envelope).toEqual({ from: '', to: ['a@nowhere.test'] });
    const dsn = Buffer.from(req.bytes!).toString('latin1');
    expect(req.size).toBe(req.bytes!.length);
    expect(dsn).toContain('To: <a@nowhere.test>');
    expect(dsn).toContain('Final-Recipient: rfc822; x@home.test');
    expect(dsn).toContain('Status: 5.1.1');
    // Not the packet's id: a Maildir would take the DSN for a delivery of the packet itself.
    expect(req.packetId).not.toBe(header('').id);
    expect(r.events()).toEqual(['rx.bounce-local']);
  });

  it('no route and the next hop does not take it either: rejects with a temporary error', async () => {
    for (const status of ['temp', 'perm'] as const) {
      const r = rig({ route: 'none', local: (to) => to.map((rcpt) => ({ rcpt, status, code: status === 'temp' ? 451 : 550, message: 'refused' })) });
      const err = await bounce(depsOf(r), header('a@nowhere.test'), plain, failed).catch((e: unknown) => e);
      expect(isFerryError(err)).toBe(true);
      expect((err as FerryError).temporary).toBe(true);
      expect(r.injected).toHaveLength(1);
      expect(r.events()).toEqual(['rx.bounce-local']);
    }
    const throwing = rig({ route: 'none', local: () => { throw new Error('spawn EACCES'); } });
    await expect(bounce(depsOf(throwing), header('a@nowhere.test'), plain, failed)).rejects.toThrow('spawn EACCES');
  });

  it('any other enqueue failure rejects, and nothing goes to the next hop', async () => {
    const r = rig({ route: 'fail' });
    await expect(bounce(depsOf(r), header('a@away.test'), plain, failed)).rejects.toThrow('disk I/O error');
    expect(r.injected).toEqual([]);
  });
});

describe('bounce: Remote-MTA', () => {
  it('names the SMTP/LMTP host only; Maildir and sendmail have no remote MTA', async () => {
    const cases: Array<[string, string[]]> = [
      ['smtp:127.0.0.1:25', ['dns; 127.0.0.1']],
      ['lmtp:mx.home.test:24', ['dns; mx.home.test']],
      ['maildir', []],
      ['sendmail:/usr/sbin/sendmail', []],
    ];
    for (const [injectorName, want] of cases) {
      const r = rig({ injectorName });
      await bounce(depsOf(r), header('a@away.test'), plain, failed);
      expect(remoteMtas(r.submitted[0]!.message), injectorName).toEqual(want);
    }
    expect(remoteMtaOf('smtp:::1:25')).toBe('::1');
    expect(remoteMtaOf('sendmail:/opt/smtp:x:1')).toBeUndefined();
  });
});
