/**
 * Delivery status notifications (RFC 3464 in an RFC 3462 multipart/report): a human-readable part
 * (7-bit), the machine-readable message/delivery-status part and the original headers
 * (text/rfc822-headers). Pure: no I/O; CRLF line endings throughout.
 * When the sender, a failed recipient or the original headers are UTF-8 (SMTPUTF8 mail), the report
 * takes the RFC 6533 global form instead, so those addresses are not mangled: report-type
 * global-delivery-status, message/global-delivery-status with "utf-8" addresses, message/global-headers,
 * and UTF-8 in the To: field (RFC 6532). All-ASCII mail keeps the classic form, which any reader parses.
 * How it fails: buildDsn throws FerryError USAGE when asked to bounce to the null sender or with no
 * failed recipients (callers check shouldBounce first); shouldBounce never throws.
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { FerryError } from '../errors/index.js';

export { readHeaderBlock } from './headers.js';

export interface DsnInput {
  /** Hostname for "Reporting-MTA: dns; <name>". */
  reportingMta: string;
  originalEnvelope: { from: string; to: string[] };
  /** The header block of the original message (up to the blank line). */
  originalHeaders: Buffer;
  failed: Array<{ rcpt: string; status: string; diagnostic: string; remoteMta?: string }>;
  arrivalDate: Date;
  now?: Date;
  /** Generated if absent: <random@reportingMta>. */
  messageId?: string;
  action?: 'failed' | 'delayed';
}

const CRLF = '\r\n';

/** RFC 5322 date-time in UTC: "Wed, 26 Nov 2025 12:00:00 +0000". */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** Printable US-ASCII only (others → '?'), no line breaks. */
function ascii(s: string): string {
  return s.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
}

/** As ascii(), but non-ASCII kept when `utf8`; controls and line/paragraph separators still become '?'. */
function text(s: string, utf8: boolean): string {
  return utf8 ? s.replace(/[\r\n\t]+/g, ' ').replace(/[\p{Cc}\p{Cs}\u2028\u2029]/gu, '?') : ascii(s);
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** UTF-8 length: the 998 limit counts octets, not UTF-16 units. */
function octets(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** `w` cut into pieces of at most `max` octets, never inside a character ('' → none). */
function pieces(w: string, max: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const ch of w) {
    if (cur !== '' && octets(cur) + octets(ch) > max) {
      out.push(cur);
      cur = '';
    }
    cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
}

/** "Name: value" folded at spaces to lines of at most ~78 octets (hard-cut at 900 if unbreakable). */
function field(name: string, value: string, utf8 = false): string {
  const words = text(value, utf8)
    .split(' ')
    .flatMap((w) => pieces(w, 900));
  const lines: string[] = [];
  let cur = `${name}:`;
  let used = false;
  for (const w of words) {
    if (used && octets(cur) + 1 + octets(w) > 78) {
      lines.push(cur);
      cur = ` ${w}`;
    } else cur += ` ${w}`;
    used = true;
  }
  lines.push(cur);
  return lines.join(CRLF) + CRLF;
}

/** RFC 5322 §2.1.1 / RFC 2045 §2.7-2.8: no line of a 7bit or 8bit part may exceed 998 octets. */
const MAX_LINE = 998;
const CUT_MARK = '[...]';

/** CRLF line endings, and lines longer than 998 octets folded (or, where they cannot be, cut). */
function toCrlf(b: Buffer, utf8: boolean): Buffer {
  const lines = b.toString('latin1').split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return Buffer.from(lines.flatMap((l) => limitLine(l, utf8)).map((l) => l + CRLF).join(''), 'latin1');
}

/**
 * Folds a header line at whitespace (RFC 5322 folding: CRLF before a WSP) into lines of at most 998
 * octets. A run without whitespace that does not fit is cut, marked, and dropped up to its next
 * whitespace: the part is a diagnostic copy, and an over-long line would make the whole DSN invalid.
 */
function limitLine(line: string, utf8: boolean): string[] {
  const out: string[] = [];
  let rest = line;
  while (rest.length > MAX_LINE) {
    // Never fold so that a line holds only whitespace (RFC 5322 §3.2.2): fold after the first non-WSP.
    const first = rest.search(/[^ \t]/);
    let at = -1;
    for (let i = MAX_LINE; i > first && i > 0; i--) {
      if (rest[i] === ' ' || rest[i] === '\t') {
        at = i;
        break;
      }
    }
    if (at > 0) {
      out.push(rest.slice(0, at));
      rest = rest.slice(at);
      continue;
    }
    // `line` holds octets (latin1): in UTF-8 headers, back off to a character start so the cut stays UTF-8.
    let end = MAX_LINE - CUT_MARK.length;
    while (utf8 && end > 0 && (rest.charCodeAt(end) & 0xc0) === 0x80) end--;
    out.push(rest.slice(0, end) + CUT_MARK);
    const next = rest.slice(MAX_LINE).search(/[ \t]/);
    if (next < 0) return out;
    rest = rest.slice(MAX_LINE + next);
  }
  out.push(rest);
  return out;
}

export function buildDsn(input: DsnInput): { envelope: { from: ''; to: [string] }; message: Buffer } {
  const sender = input.originalEnvelope.from.trim();
  if (sender === '' || sender === '<>') throw new FerryError('USAGE', 'a DSN is never sent to the null sender');
  if (input.failed.length === 0) throw new FerryError('USAGE', 'a DSN needs at least one recipient to report');
  const action = input.action ?? 'failed';
  const now = input.now ?? new Date();
  const mta = ascii(input.reportingMta);
  const messageId = input.messageId ?? `<${randomBytes(12).toString('hex')}.dsn@${mta}>`;
  const utf8Headers = isUtf8(input.originalHeaders);
  const original = toCrlf(input.originalHeaders, utf8Headers);
  const eightBit = original.some((b) => b > 0x7f);
  // RFC 6533 global form only when something needs it. 8-bit headers that are not UTF-8 (legacy
  // charsets) do not: message/global-headers would mislabel them, so they stay text/rfc822-headers.
  const global = !isAscii(sender) || input.failed.some((f) => !isAscii(f.rcpt)) || (eightBit && utf8Headers);
  let boundary = `=_ferrypost_dsn_${randomBytes(9).toString('base64url')}`;
  while (original.includes(boundary)) boundary += randomBytes(3).toString('hex');

  const subject = action === 'failed' ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)';
  const head =
    field('From', `Mail Delivery System <MAILER-DAEMON@${mta}>`) +
    field('To', `<${sender}>`, global) +
    field('Subject', subject) +
    field('Date', rfc5322Date(now)) +
    field('Message-ID', messageId) +
    field('Auto-Submitted', 'auto-replied') +
    field('MIME-Version', '1.0') +
    `Content-Type: multipart/report; report-type=${global ? 'global-' : ''}delivery-status;${CRLF} boundary="${boundary}"${CRLF}` +
    field('Content-Transfer-Encoding', eightBit || global ? '8bit' : '7bit');

  const human = [
    `This is the mail system at host ${mta}.`,
    '',
    action === 'failed'
      ? 'I am sorry to have to inform you that your message could not be delivered to one or more recipients. The details are below.'
      : 'Your message could not be delivered yet to one or more recipients. Delivery will be retried; you do not need to resend it.',
    '',
    `The message arrived on ${rfc5322Date(input.arrivalDate)}.`,
    '',
  ]
    .flatMap((l) => wrap(l, ''))
    .concat(input.failed.flatMap((f) => wrap(`<${text(f.rcpt, global)}>: ${ascii(f.diagnostic)}`, '    ')))
    .join(CRLF);

  let status = field('Reporting-MTA', `dns; ${mta}`) + field('Arrival-Date', rfc5322Date(input.arrivalDate));
  for (const f of input.failed) {
    const diag = /^[A-Za-z0-9-]+;/.test(f.diagnostic.trim()) ? f.diagnostic.trim() : `smtp; ${f.diagnostic.trim()}`;
    status +=
      CRLF +
      // RFC 6533 §3: a non-ASCII address is of type utf-8, given as the plain mailbox (utf-8-address);
      // ASCII ones stay rfc822, as in any report.
      (global && !isAscii(f.rcpt) ? field('Final-Recipient', `utf-8; ${f.rcpt}`, true) : field('Final-Recipient', `rfc822; ${f.rcpt}`)) +
      field('Action', action) +
      field('Status', f.status) +
      (f.remoteMta ? field('Remote-MTA', `dns; ${f.remoteMta}`) : '') +
      field('Diagnostic-Code', diag) +
      field('Last-Attempt-Date', rfc5322Date(now));
  }

  // Each part holding 8-bit text says so (RFC 6533 media type registrations: 8bit under SMTPUTF8).
  const cte8 = (s: string): string => (isAscii(s) ? '' : `Content-Transfer-Encoding: 8bit${CRLF}`);
  const parts = [
    Buffer.from(
      `${head}${CRLF}This is a MIME-encapsulated message.${CRLF}${CRLF}` +
        `--${boundary}${CRLF}Content-Description: Notification${CRLF}Content-Type: text/plain; charset=${global ? 'utf-8' : 'us-ascii'}${CRLF}${cte8(human)}${CRLF}` +
        `${human}${CRLF}${CRLF}` +
        `--${boundary}${CRLF}Content-Description: Delivery report${CRLF}Content-Type: message/${global ? 'global-' : ''}delivery-status${CRLF}${cte8(status)}${CRLF}` +
        `${status}${CRLF}` +
        `--${boundary}${CRLF}Content-Description: Undelivered Message Headers${CRLF}Content-Type: ${global && utf8Headers ? 'message/global-headers' : 'text/rfc822-headers'}${CRLF}` +
        (eightBit ? `Content-Transfer-Encoding: 8bit${CRLF}` : '') +
        CRLF,
      'utf8', // ASCII unless global, so a classic DSN is the same bytes as before
    ),
    original,
    Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'latin1'),
  ];
  return { envelope: { from: '', to: [sender] }, message: Buffer.concat(parts) };
}

/** Word-wrap at 76 columns; continuation lines start with `indent`. */
function wrap(line: string, indent: string): string[] {
  if (line === '') return [''];
  const out: string[] = [];
  let cur = '';
  for (const w of line.split(' ').flatMap((x) => pieces(x, 900))) {
    if (cur && octets(cur) + 1 + octets(w) > 76) {
      out.push(cur);
      cur = `${indent}${w}`;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * False only for the null sender (RFC 5321 §4.5.5, §6.1: a notification goes to every non-null
 * reverse path). Loop protection is the null sender, which every DSN carries; Auto-Submitted or a
 * report content type do not suppress one (Postfix neither), or the failure would be lost.
 */
export function shouldBounce(envelopeFrom: string): boolean {
  const from = envelopeFrom.trim();
  return from !== '' && from !== '<>';
}
