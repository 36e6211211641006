/**
 * One spelling per mailbox, for comparing addresses with the config's patterns (the router and the
 * Maildir `recipients` filter). Domains: lower case, no trailing dot, and an internationalized name in
 * its ASCII (punycode) form, as the config stores it (`münchen.example`, `MÜNCHEN.example.` and
 * `xn--mnchen-3ya.example` are one domain; full-width letters fold to ASCII as IDNA says). Local
 * parts: lower case, and a quoted one that needs no quotes unquoted (`"boss"` and `"bo\ss"` are
 * `boss`, RFC 5321 4.1.2). Pure; undefined where a domain is not a valid IDNA name.
 */
import { domainToASCII } from 'node:url';

const NON_ASCII = /[^\x00-\x7f]/;

/** Anything outside US-ASCII (an internationalized domain, an SMTPUTF8 address). */
export function hasNonAscii(s: string): boolean {
  return NON_ASCII.test(s);
}
const DOT_ATOM = /^[a-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+(?:\.[a-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+)*$/u;

/** The domain's canonical form, or undefined if it is not a valid name (IDNA refused it). */
export function canonicalDomain(domain: string): string | undefined {
  let d = domain.toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (d.startsWith('[') || !hasNonAscii(d)) return d; // literals and ASCII names as they are
  const ascii = domainToASCII(d);
  return ascii === '' ? undefined : ascii;
}

/**
 * The local part's canonical form: ASCII letters in lower case; `"..."` unquoted when its content is a
 * dot-atom. Only ASCII is folded: Unicode case mapping turns some characters into ASCII ones (U+212A
 * KELVIN SIGN → "k"), which would let `\u212Aate@x.org` pass a `kate@x.org` rule; an SMTPUTF8 local part
 * is compared as written.
 */
export function canonicalLocal(local: string): string {
  const l = local.replace(/[A-Z]+/g, (m) => m.toLowerCase());
  if (l.length < 2 || !l.startsWith('"') || !l.endsWith('"')) return l;
  const inner = l.slice(1, -1).replace(/\\(.)/gu, '$1');
  return DOT_ATOM.test(inner) ? inner : l;
}

/** `local@domain` canonical, split; undefined without '@' or with an invalid domain. */
export function canonicalAddress(address: string): { local: string; domain: string } | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const domain = canonicalDomain(address.slice(at + 1));
  return domain === undefined ? undefined : { local: canonicalLocal(address.slice(0, at)), domain };
}

/**
 * A config mail pattern ("*", "*.dom", "local@dom", "dom") in canonical form, as the router and the
 * recipients filter compare it; undefined if its domain is not a valid name.
 */
export function canonicalPattern(pattern: string): string | undefined {
  const p = pattern.trim(); // domains and local parts fold case in their own functions
  if (p === '*') return p;
  if (p.startsWith('*.')) {
    const d = canonicalDomain(p.slice(2));
    return d === undefined ? undefined : `*.${d}`;
  }
  if (p.includes('@')) {
    const a = canonicalAddress(p);
    return a && `${a.local}@${a.domain}`;
  }
  return canonicalDomain(p);
}
