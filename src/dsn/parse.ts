/**
 * Pure helper over a raw RFC 5322 header block: where it ends.
 * How it fails: it does not.
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
