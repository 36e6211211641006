/** Small helpers for end-to-end mail assertions. */

/**
 * Splits the trace fields MTAs add on top of a delivered message (Return-Path, Delivered-To,
 * X-Original-To, Envelope-to, Delivery-date, Received, with continuation lines) from the rest,
 * which must be the original message as the MTA stores it.
 */
export function splitTrace(file: Buffer): { trace: string[]; rest: Buffer } {
  const text = file.toString('latin1');
  const trace: string[] = [];
  let pos = 0;
  while (/^(Return-Path|Delivered-To|X-Original-To|Envelope-to|Delivery-date|Received):/i.test(text.slice(pos))) {
    let end = text.indexOf('\n', pos);
    while (text[end + 1] === ' ' || text[end + 1] === '\t') end = text.indexOf('\n', end + 1);
    trace.push(text.slice(pos, end));
    pos = end + 1;
  }
  return { trace, rest: file.subarray(Buffer.byteLength(text.slice(0, pos), 'latin1')) };
}

/** Postfix and Exim store Maildir messages with LF line ends. */
export const asStored = (m: Buffer): Buffer => Buffer.from(m.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');

export async function waitUntil(cond: () => boolean, ms: number, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
