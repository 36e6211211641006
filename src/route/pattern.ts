/** One mail pattern against one address, with the config's pattern syntax. Pure. */

/** "example.org", "*.example.org", "user@example.org" or "*" (patterns are lower-cased by the schema). */
export function matchesRecipientPattern(address: string, pattern: string): boolean {
  const a = address.toLowerCase();
  const p = pattern.toLowerCase();
  if (p === '*') return true;
  if (p.includes('@')) return a === p;
  const domain = a.slice(a.lastIndexOf('@') + 1);
  if (p.startsWith('*.')) return domain.endsWith(p.slice(1));
  return a.includes('@') && domain === p;
}
