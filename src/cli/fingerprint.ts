/** A fingerprint as people compare it: upper case, groups of four (as gpg prints it). */
export function formatFingerprint(fpr: string): string {
  return fpr.toUpperCase().replace(/(.{4})/g, '$1 ').trim();
}
