/** One mail pattern against one address, with the config's pattern syntax. Pure. */
import { canonicalAddress, canonicalDomain } from './canonical.js';

/**
 * "example.org", "*.example.org", "user@example.org" or "*", compared as the router compares them
 * (route/canonical.ts: case, trailing dot, punycode, quoted local parts). An address without '@'
 * matches only "*".
 */
export function matchesRecipientPattern(address: string, pattern: string): boolean {
  const p = pattern.trim().toLowerCase();
  if (p === '*') return true;
  const a = canonicalAddress(address);
  if (!a) return false;
  if (p.includes('@')) {
    const q = canonicalAddress(p);
    return q !== undefined && q.local === a.local && q.domain === a.domain;
  }
  if (p.startsWith('*.')) {
    const suffix = canonicalDomain(p.slice(2));
    return suffix !== undefined && a.domain.endsWith(`.${suffix}`);
  }
  return a.domain === canonicalDomain(p);
}
