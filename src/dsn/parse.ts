/**
 * Pure helpers over a raw RFC 5322 header block: where it ends, and its fields unfolded.
 * How it fails: it does not; malformed lines (no colon) are skipped, bytes are read as latin1.
 */

/** Byte length of the header block including the last header's line ending, excluding the empty line. */
export function headerBlockEnd(buf: Buffer): { end: number; complete: boolean } {
  let pos = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) return { end: pos, complete: false };
    const len = nl - pos - (nl > pos && buf[nl - 1] === 0x0d ? 1 : 0);
    if (len === 0) return { end: pos, complete: true };
    pos = nl + 1;
  }
}

/** Header fields in order, names lower-cased, folded lines joined. */
export function parseHeaderFields(block: Buffer): Array<{ name: string; value: string }> {
  const { end, complete } = headerBlockEnd(block);
  const text = block.subarray(0, complete ? end : block.length).toString('latin1');
  const fields: Array<{ name: string; value: string }> = [];
  for (const line of text.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length) {
      fields[fields.length - 1]!.value += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  return fields;
}
