/**
 * Pure routing: an envelope recipient → the peer node that handles its mail, and address validation
 * shared by the SMTP listener and the sendmail command. No I/O.
 *
 * Precedence (first match wins): exact address `user@dom` > exact domain `dom` > `*.dom` (any
 * subdomain of dom, not dom itself; the longest suffix wins) > `*` > the peer marked `default`.
 * Comparison is case-insensitive on the whole address — the domain as DNS requires, and the local
 * part too (RFC 5321 lets the receiver treat it case-sensitively; no real site does, and routing
 * `Bob@x` and `bob@x` to different nodes would only surprise). A trailing dot on the domain is
 * ignored, an internationalized domain matches its punycode form and a quoted local part that needs
 * no quotes matches the unquoted one (route/canonical.ts). An address without '@', or with an
 * address literal (`user@[192.0.2.1]`), can only take the default route; one whose domain is not a
 * valid IDNA name has no route. When two peers claim the same pattern, the one listed first wins.
 * Fails by returning undefined (no route); validateAddress throws FerryError('BAD_ADDRESS').
 */
import { FerryError } from '../errors/index.js';
import { canonicalAddress, canonicalPattern } from './canonical.js';

export interface RoutePeer {
  name: string;
  fingerprint: string;
  /** Patterns, already lower-cased by the config: "user@dom", "dom", "*.dom", "*". */
  mail: readonly string[];
  default: boolean;
}

export interface RouteTarget {
  name: string;
  fingerprint: string;
}

export interface Router {
  /** The node for this recipient, or undefined if none (the caller reports NO_ROUTE). */
  route(address: string): RouteTarget | undefined;
  /** The same, with the rule that chose it (`ferrypost route`, like `sendmail -bv`). */
  explain(address: string): RouteExplained | undefined;
}

export interface RouteExplained {
  target: RouteTarget;
  /** The matching rule: "address u@d", "domain d", "subdomains *.d", "*" or "default". */
  via: string;
}

export function createRouter(peers: ReadonlyArray<RoutePeer>): Router {
  const exactAddress = new Map<string, RouteTarget>();
  const exactDomain = new Map<string, RouteTarget>();
  /** Suffix (without "*.") → target; looked up from the longest candidate suffix down. */
  const subdomain = new Map<string, RouteTarget>();
  let star: RouteTarget | undefined;
  let fallback: RouteTarget | undefined;

  for (const p of peers) {
    const target: RouteTarget = Object.freeze({ name: p.name, fingerprint: p.fingerprint });
    if (p.default && !fallback) fallback = target;
    for (const raw of p.mail) {
      const pat = canonicalPattern(raw);
      if (pat === undefined || pat === '') continue;
      if (pat === '*') star ??= target;
      else if (pat.startsWith('*.')) claim(subdomain, pat.slice(2), target);
      else if (pat.includes('@')) claim(exactAddress, pat, target);
      else claim(exactDomain, pat, target);
    }
  }

  const hit = (target: RouteTarget | undefined, via: string): RouteExplained | undefined => (target ? { target, via } : undefined);
  function explain(address: string): RouteExplained | undefined {
    const addr = stripAngles(address.trim());
    const at = addr.lastIndexOf('@');
    if (at <= 0 || at === addr.length - 1) return hit(fallback, 'default');
    const canonical = canonicalAddress(addr);
    if (!canonical) return undefined; // not a valid domain name: no node can be meant
    const { local, domain } = canonical;
    if (domain.startsWith('[')) return hit(fallback, 'default');
    const byAddress = exactAddress.get(`${local}@${domain}`);
    if (byAddress) return hit(byAddress, `address ${local}@${domain}`);
    const byDomain = exactDomain.get(domain);
    if (byDomain) return hit(byDomain, `domain ${domain}`);
    // "a.b.example.org" → try "b.example.org", "example.org", "org": longest suffix first.
    let dot = domain.indexOf('.');
    while (dot !== -1) {
      const suffix = domain.slice(dot + 1);
      const bySuffix = subdomain.get(suffix);
      if (bySuffix) return hit(bySuffix, `subdomains *.${suffix}`);
      dot = domain.indexOf('.', dot + 1);
    }
    return star ? hit(star, '*') : hit(fallback, 'default');
  }

  return Object.freeze({
    route: (address: string): RouteTarget | undefined => explain(address)?.target,
    explain,
  });
}

/** The peer listed first wins a pattern two peers claim. */
function claim(m: Map<string, RouteTarget>, key: string, target: RouteTarget): void {
  if (!m.has(key)) m.set(key, target);
}

function stripAngles(s: string): string {
  return s.length >= 2 && s.startsWith('<') && s.endsWith('>') ? s.slice(1, -1) : s;
}

// RFC 5322 atext, plus any non-ASCII character (RFC 6531 SMTPUTF8).
const ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u;
// Quoted string content: printable ASCII except " and \ (those only escaped), and non-ASCII; no controls.
const QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10FFFF}]|\\[\x20-\x7e])*"$/u;
const LABEL = /^(?:[A-Za-z0-9\u0080-\u{10FFFF}](?:[A-Za-z0-9\-\u0080-\u{10FFFF}]*[A-Za-z0-9\u0080-\u{10FFFF}])?)$/u;
const CONTROL_OR_SPACE = /[\x00-\x20\x7f]/;

/**
 * Checks an envelope address (RFC 5321 Mailbox, RFC 6531 UTF-8 allowed) and returns it with one pair
 * of enclosing angle brackets removed; case is kept. The null sender is the caller's business: "" is
 * refused here. Throws FerryError('BAD_ADDRESS') naming what is wrong.
 */
export function validateAddress(s: string): string {
  const addr = stripAngles(s);
  const bad = (why: string): FerryError =>
    new FerryError('BAD_ADDRESS', `<${addr}>: bad address syntax (${why})`, { detail: { address: addr } });
  if (addr === '') throw bad('empty address');
  const at = addr.lastIndexOf('@');
  if (at === -1) throw bad('missing domain');
  const local = addr.slice(0, at);
  const domain = addr.slice(at + 1);
  if (local === '') throw bad('empty local part');
  if (domain === '') throw bad('missing domain');
  if (local.startsWith('"')) {
    if (!QUOTED.test(local)) throw bad('malformed quoted local part');
  } else {
    if (CONTROL_OR_SPACE.test(local)) throw bad('space or control character');
    if (!local.split('.').every((atom) => ATOM.test(atom))) throw bad('malformed local part');
  }
  if (Buffer.byteLength(local) > 64) throw bad('local part longer than 64 octets');
  if (Buffer.byteLength(domain) > 255) throw bad('domain longer than 255 octets');
  if (CONTROL_OR_SPACE.test(domain)) throw bad('space or control character');
  if (domain.startsWith('[')) {
    if (!/^\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]+)\]$/.test(domain)) throw bad('malformed address literal');
    return addr;
  }
  const labels = (domain.endsWith('.') ? domain.slice(0, -1) : domain).split('.');
  if (!labels.every((l) => LABEL.test(l) && Buffer.byteLength(l) <= 63)) throw bad('malformed domain');
  return addr;
}
