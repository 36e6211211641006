/** One mail pattern against one address, with the config's pattern syntax. Pure. */
import { canonicalAddress, canonicalPattern } from './canonical.js';

/**
 * "example.org", "*.example.org", "user@example.org" or "*", compared as the router compares them
 * (route/canonical.ts: case, trailing dot, punycode, quoted local parts). An address without '@'
 * matches only "*".
 */
export function matchesRecipientPattern(address: string, pattern: string): boolean {
  const p = canonicalPattern(pattern);
  if (p === '*') return true;
  const a = canonicalAddress(address);
  if (!a || p === undefined) return false;
  if (p.includes('@')) return p === `${a.local}@${a.domain}`;
  if (p.startsWith('*.')) return a.domain.endsWith(p.slice(1));
  return a.domain === p;
}
