// DSN builder (RFC 3464/3462, and the RFC 6533 global form for UTF-8 mail) parsed back by a minimal MIME
// splitter; the bounce rule; header block reader.
import { isUtf8 } from 'node:buffer';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDsn, readHeaderBlock, shouldBounce, type DsnInput } from '../../src/dsn/index.js';
import { isFerryError } from '../../src/errors/index.js';

const FIX = join(import.meta.dirname, '../../fixtures/mail');

interface Part {
  headers: Map<string, string>;
  body: string;
}

/** Minimal parser: unfolded header map (last wins) + body, split at the first CRLF CRLF. */
function parseEntity(text: string): Part {
  const i = text.indexOf('\r\n\r\n');
  const head = text.slice(0, i).replace(/\r\n[ \t]+/g, ' ');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const c = line.indexOf(':');
    headers.set(line.slice(0, c).toLowerCase(), line.slice(c + 1).trim());
  }
  return { headers, body: text.slice(i + 4) };
}

function parseDsn(msg: Buffer, encoding: 'latin1' | 'utf8' = 'latin1'): { top: Part; parts: Part[] } {
  const text = msg.toString(encoding);
  const top = parseEntity(text);
  const boundary = /boundary="([^"]+)"/.exec(top.headers.get('content-type') ?? '')![1]!;
  const chunks = top.body.split(`\r\n--${boundary}`);
  expect(chunks.at(-1)).toBe('--\r\n');
  const parts = chunks.slice(1, -1).map((c) => parseEntity(c.replace(/^\r\n/, '')));
  return { top, parts };
}

/** message/delivery-status body → groups of fields (per-message first, then per-recipient). */
function statusGroups(body: string): Array<Map<string, string>> {
  return body
    .trim()
    .split('\r\n\r\n')
    .map((g) => {
      const m = new Map<string, string>();
      for (const line of g.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
        const c = line.indexOf(':');
        m.set(line.slice(0, c).toLowerCase(), line.slice(c + 1).trim());
      }
      return m;
    });
}

const originalHeaders = Buffer.from(
  'From: Alice <alice@a.example>\nTo: bob@b.example\nSubject: caf\xe9\nMessage-ID: <m1@a.example>\n',
  'latin1',
);
const input: DsnInput = {
  reportingMta: 'node1.ferry.example',
  originalEnvelope: { from: 'alice@a.example', to: ['bob@b.example', 'carol@b.example'] },
  originalHeaders,
  failed: [
    { rcpt: 'bob@b.example', status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 <bob@b.example>: user unknown', remoteMta: 'mx.b.example' },
    { rcpt: 'carol@b.example', status: '5.2.2', diagnostic: `552 5.2.2 mailbox full ${'x'.repeat(200)} caf\u00e9` },
  ],
  arrivalDate: new Date('2025-11-20T10:00:00Z'),
  now: new Date('2025-11-26T12:00:00Z'),
  messageId: '<dsn1@node1.ferry.example>',
};

describe('buildDsn', () => {
  it('builds a multipart/report with the three parts and the required fields', () => {
    const { envelope, message } = buildDsn(input);
    expect(envelope).toEqual({ from: '', to: ['alice@a.example'] });
    // CRLF only, lines within 998, and 7-bit except the original headers part
    expect(/(^|[^\r])\n/.test(message.toString('latin1'))).toBe(false);
    expect(message.toString('latin1').split('\r\n').every((l) => l.length <= 998)).toBe(true);

    const { top, parts } = parseDsn(message);
    expect(top.headers.get('to')).toBe('<alice@a.example>');
    expect(top.headers.get('from')).toMatch(/MAILER-DAEMON@node1\.ferry\.example/);
    expect(top.headers.get('auto-submitted')).toBe('auto-replied');
    expect(top.headers.get('content-transfer-encoding')).toBe('8bit'); // the original headers are 8-bit
    expect(top.headers.get('message-id')).toBe('<dsn1@node1.ferry.example>');
    expect(top.headers.get('date')).toBe('Wed, 26 Nov 2025 12:00:00 +0000');
    expect(top.headers.get('content-type')).toMatch(/^multipart\/report; report-type=delivery-status;/);
    expect(parts).toHaveLength(3);

    const [human, status, headers] = parts as [Part, Part, Part];
    expect(human.headers.get('content-type')).toBe('text/plain; charset=us-ascii');
    expect([...Buffer.from(human.body, 'latin1')].every((b) => b < 0x80)).toBe(true);
    expect(human.body).toContain('<bob@b.example>: smtp; 550 5.1.1');

    expect(status.headers.get('content-type')).toBe('message/delivery-status');
    const [perMsg, r1, r2] = statusGroups(status.body) as [Map<string, string>, Map<string, string>, Map<string, string>];
    expect(perMsg.get('reporting-mta')).toBe('dns; node1.ferry.example');
    expect(perMsg.get('arrival-date')).toBe('Thu, 20 Nov 2025 10:00:00 +0000');
    expect(r1.get('final-recipient')).toBe('rfc822; bob@b.example');
    expect(r1.get('action')).toBe('failed');
    expect(r1.get('status')).toBe('5.1.1');
    expect(r1.get('remote-mta')).toBe('dns; mx.b.example');
    expect(r1.get('diagnostic-code')).toBe('smtp; 550 5.1.1 <bob@b.example>: user unknown');
    expect(r2.get('final-recipient')).toBe('rfc822; carol@b.example');
    expect(r2.get('status')).toBe('5.2.2');
    expect(r2.get('diagnostic-code')).toMatch(/^smtp; 552 5\.2\.2 mailbox full x+ caf\?$/);
    expect(r2.has('remote-mta')).toBe(false);

    expect(headers.headers.get('content-type')).toBe('text/rfc822-headers');
    expect(headers.headers.get('content-transfer-encoding')).toBe('8bit');
    expect(headers.body).toBe('From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: caf\xe9\r\nMessage-ID: <m1@a.example>\r\n');
  });

  it('delayed notifications say so', () => {
    const { message } = buildDsn({ ...input, action: 'delayed', failed: [{ rcpt: 'bob@b.example', status: '4.4.1', diagnostic: 'x-ferrypost; no answer' }] });
    const { top, parts } = parseDsn(message);
    expect(top.headers.get('subject')).toMatch(/Delayed/);
    const groups = statusGroups(parts[1]!.body);
    expect(groups[1]!.get('action')).toBe('delayed');
    expect(groups[1]!.get('diagnostic-code')).toBe('x-ferrypost; no answer');
  });

  it('generates a Message-ID when none is given and never bounces to <>', () => {
    const { top } = parseDsn(buildDsn({ ...input, messageId: undefined }).message);
    expect(top.headers.get('message-id')).toMatch(/^<[0-9a-f]+\.dsn@node1\.ferry\.example>$/);
    for (const from of ['', '<>']) {
      expect(() => buildDsn({ ...input, originalEnvelope: { from, to: ['x@y'] } })).toThrow();
    }
    let err: unknown;
    try {
      buildDsn({ ...input, failed: [] });
    } catch (e) {
      err = e;
    }
    expect(isFerryError(err, 'USAGE')).toBe(true);
  });

  it('a DSN is itself never bounced: it carries the null sender', () => {
    const { envelope } = buildDsn(input);
    expect(shouldBounce(envelope.from)).toBe(false);
  });

  it('folds original header lines longer than 998 octets, and cuts what cannot be folded', () => {
    const refs = Array.from({ length: 300 }, (_, i) => `<m${i}@a.example>`).join(' '); // ~5 KB, spaces between
    const token = 'y'.repeat(1500); // no whitespace at all
    const long = Buffer.from(`References: ${refs}\nX-Token: ${token} tail\nSubject: s\n`, 'latin1');
    const { message } = buildDsn({ ...input, originalHeaders: long });
    expect(message.toString('latin1').split('\r\n').every((l) => l.length <= 998)).toBe(true);
    const headers = parseDsn(message).parts[2]!;
    expect(headers.headers.get('content-type')).toBe('text/rfc822-headers');
    const lines = headers.body.split('\r\n');
    // Folded at whitespace: unfolding gives the original field back.
    expect(headers.body.replace(/\r\n(?=[ \t])/g, '')).toContain(`References: ${refs}\r\n`);
    expect(lines.filter((l) => /^[ \t]/.test(l)).length).toBeGreaterThan(1);
    expect(lines.every((l) => /[^ \t]/.test(l) || l === '')).toBe(true);
    // Unfoldable: cut at the limit, marked, and the rest of the field kept.
    const cut = lines.findIndex((l) => l.includes('yyy'));
    expect(lines[cut]).toHaveLength(998);
    expect(lines[cut]).toMatch(/^(X-Token:)? y+\[\.\.\.\]$/);
    expect(lines[cut + 1]).toBe(' tail');
    expect(headers.body.endsWith('Subject: s\r\n')).toBe(true);
  });
});

/** An all-ASCII DSN exactly as before RFC 6533 support (boundary replaced by BOUNDARY). */
const ASCII_GOLDEN =
  'From: Mail Delivery System <MAILER-DAEMON@node1.ferry.example>\r\nTo: <alice@a.example>\r\nSubject: Undelivered Mail Returned to Sender\r\nDate: Wed, 26 Nov 2025 12:00:00 +0000\r\nMessage-ID: <dsn1@node1.ferry.example>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n boundary="BOUNDARY"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n' +
  'This is a MIME-encapsulated message.\r\n\r\n--BOUNDARY\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is the mail system at host node1.ferry.example.\r\n\r\nI am sorry to have to inform you that your message could not be delivered to\r\none or more recipients. The details are below.\r\n\r\nThe message arrived on Thu, 20 Nov 2025 10:00:00 +0000.\r\n\r\n<bob@b.example>: smtp; 550 5.1.1 user unknown\r\n\r\n' +
  '--BOUNDARY\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; node1.ferry.example\r\nArrival-Date: Thu, 20 Nov 2025 10:00:00 +0000\r\n\r\nFinal-Recipient: rfc822; bob@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.b.example\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\nLast-Attempt-Date: Wed, 26 Nov 2025 12:00:00 +0000\r\n\r\n' +
  '--BOUNDARY\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: Alice <alice@a.example>\r\nSubject: hi\r\n\r\n--BOUNDARY--\r\n';

describe('buildDsn with UTF-8 addresses or headers (RFC 6533)', () => {
  const ascii: DsnInput = {
    ...input,
    originalEnvelope: { from: 'alice@a.example', to: ['bob@b.example'] },
    originalHeaders: Buffer.from('From: Alice <alice@a.example>\nSubject: hi\n'),
    failed: [{ rcpt: 'bob@b.example', status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 user unknown', remoteMta: 'mx.b.example' }],
  };

  /** Well-formed either way: CRLF only, lines within 998 octets, valid UTF-8, the delimiters where MIME wants them. */
  function wellFormed(message: Buffer): void {
    const text = message.toString('utf8');
    expect(isUtf8(message)).toBe(true);
    expect(/(^|[^\r])\n/.test(text)).toBe(false);
    expect(text.split('\r\n').every((l) => Buffer.byteLength(l) <= 998)).toBe(true);
    const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
    const delimiters = text.split('\r\n').filter((l) => l.startsWith(`--${boundary}`));
    expect(delimiters).toEqual([`--${boundary}`, `--${boundary}`, `--${boundary}`, `--${boundary}--`]);
  }

  it('an all-ASCII DSN is byte-for-byte the RFC 3464 form', () => {
    const text = buildDsn(ascii).message.toString('latin1');
    const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
    expect(text.split(boundary).join('BOUNDARY')).toBe(ASCII_GOLDEN);
  });

  it('a UTF-8 recipient: global types, Final-Recipient of type utf-8, the address unmangled', () => {
    const { envelope, message } = buildDsn({
      ...ascii,
      failed: [
        { rcpt: 'zoë@a.example', status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 no such user' },
        { rcpt: 'bob@b.example', status: '5.2.2', diagnostic: 'smtp; 552 mailbox full' },
      ],
    });
    expect(envelope).toEqual({ from: '', to: ['alice@a.example'] });
    wellFormed(message);
    const { top, parts } = parseDsn(message, 'utf8');
    expect(top.headers.get('content-type')).toMatch(/^multipart\/report; report-type=global-delivery-status; boundary="[^"]+"$/);
    expect(top.headers.get('content-transfer-encoding')).toBe('8bit');
    expect(top.headers.get('to')).toBe('<alice@a.example>');
    expect(parts).toHaveLength(3);
    const [human, status, headers] = parts as [Part, Part, Part];

    expect(human.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(human.headers.get('content-transfer-encoding')).toBe('8bit');
    expect(human.body).toContain('<zoë@a.example>: smtp; 550 5.1.1 no such user');

    expect(status.headers.get('content-type')).toBe('message/global-delivery-status');
    expect(status.headers.get('content-transfer-encoding')).toBe('8bit');
    const [perMsg, r1, r2] = statusGroups(status.body) as [Map<string, string>, Map<string, string>, Map<string, string>];
    expect(perMsg.get('reporting-mta')).toBe('dns; node1.ferry.example');
    expect(r1.get('final-recipient')).toBe('utf-8; zoë@a.example');
    expect(r1.get('status')).toBe('5.1.1');
    expect(r2.get('final-recipient')).toBe('rfc822; bob@b.example'); // ASCII addresses keep their type

    expect(headers.headers.get('content-type')).toBe('message/global-headers');
    expect(headers.headers.has('content-transfer-encoding')).toBe(false);
    expect(headers.body).toBe('From: Alice <alice@a.example>\r\nSubject: hi\r\n');
  });

  it('a UTF-8 sender: global types, and the To: field carries the address unmangled (RFC 6532)', () => {
    const { envelope, message } = buildDsn({ ...ascii, originalEnvelope: { from: 'jörg@bücher.example', to: ['bob@b.example'] } });
    expect(envelope).toEqual({ from: '', to: ['jörg@bücher.example'] });
    wellFormed(message);
    const { top, parts } = parseDsn(message, 'utf8');
    expect(top.headers.get('to')).toBe('<jörg@bücher.example>');
    expect(top.headers.get('content-type')).toMatch(/^multipart\/report; report-type=global-delivery-status;/);
    expect(top.headers.get('content-transfer-encoding')).toBe('8bit');
    const [human, status, headers] = parts as [Part, Part, Part];
    expect(human.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(status.headers.get('content-type')).toBe('message/global-delivery-status');
    expect(statusGroups(status.body)[1]!.get('final-recipient')).toBe('rfc822; bob@b.example');
    expect(headers.headers.get('content-type')).toBe('message/global-headers');
  });

  it('UTF-8 original headers alone make it global; legacy 8-bit headers do not', () => {
    // 1601 octets unbroken; folded onto its own line, the 998-octet limit falls inside an 'é'
    const utf8 = Buffer.from(`Subject: café\nX-Tokens: x${'é'.repeat(800)} tail\n`, 'utf8');
    const { message } = buildDsn({ ...ascii, originalHeaders: utf8 });
    wellFormed(message); // the cut of the unbreakable run does not split a character
    const { top, parts } = parseDsn(message, 'utf8');
    expect(top.headers.get('content-type')).toMatch(/report-type=global-delivery-status;/);
    expect(top.headers.get('to')).toBe('<alice@a.example>');
    const headers = parts[2]!;
    expect(headers.headers.get('content-type')).toBe('message/global-headers');
    expect(headers.headers.get('content-transfer-encoding')).toBe('8bit');
    expect(headers.body).toMatch(/^Subject: café\r\nX-Tokens:\r\n xé{495}\[\.\.\.\]\r\n tail\r\n$/);

    // Latin-1 is not UTF-8: message/global-headers would mislabel it (see also the first buildDsn test).
    const latin1 = buildDsn({ ...ascii, originalHeaders: Buffer.from('Subject: caf\xe9\n', 'latin1') }).message;
    expect(parseDsn(latin1).top.headers.get('content-type')).toMatch(/report-type=delivery-status;/);
  });
});

describe('shouldBounce', () => {
  it('is false for the null sender only (RFC 5321 §4.5.5, §6.1)', () => {
    expect(shouldBounce('a@a.example')).toBe(true);
    expect(shouldBounce(' a@a.example ')).toBe(true);
    expect(shouldBounce('')).toBe(false);
    expect(shouldBounce('<>')).toBe(false);
    expect(shouldBounce(' <> ')).toBe(false);
  });
});

describe('readHeaderBlock', () => {
  it('stops at the first empty line, for CRLF and bare LF, and honours max', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-dsn-'));
    try {
      const crlf = await readHeaderBlock(join(FIX, 'crlf-plain.eml'));
      const full = readFileSync(join(FIX, 'crlf-plain.eml'));
      expect(full.subarray(0, crlf.length + 2).toString('latin1').endsWith('\r\n\r\n')).toBe(true);
      expect(crlf.toString('latin1')).not.toContain('Hello Bob');
      const lf = await readHeaderBlock(join(FIX, 'bare-lf.eml'));
      expect(lf.toString('latin1').endsWith('MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n')).toBe(true);

      const big = join(dir, 'big.eml');
      writeFileSync(big, `Subject: x\r\n${'X-Long: yyyyyyyy\r\n'.repeat(100)}\r\nbody\r\n`);
      const cut = await readHeaderBlock(big, 100);
      expect(cut.length).toBeLessThanOrEqual(100);
      expect(cut.toString('latin1').endsWith('\r\n')).toBe(true);
      const headersOnly = join(dir, 'noblank.eml');
      writeFileSync(headersOnly, 'Subject: only headers\r\n');
      expect((await readHeaderBlock(headersOnly)).toString()).toBe('Subject: only headers\r\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
