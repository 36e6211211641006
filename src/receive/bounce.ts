/**
 * Turns permanent failures into an RFC 3464 DSN to the envelope sender and enqueues it like any
 * other mail, so it travels back through the tree. The null sender and DSNs are never bounced.
 */
import type { Logger } from 'pino';
import { buildDsn, shouldBounce } from '../dsn/index.js';
import { headerBlockOf, readHeaderBlock } from '../dsn/headers.js';
import type { MessageSource } from './verify.js';
import { isFerryError } from '../errors/index.js';
import type { RecipientResult } from '../inject/types.js';
import type { PacketHeader } from '../packet/header.js';
import type { Enqueue } from '../send/types.js';

export interface BounceDeps {
  enqueue: Enqueue;
  hostname: string;
  injectorName: string;
  log: Logger;
}

export async function bounce(deps: BounceDeps, header: PacketHeader, message: MessageSource, failed: RecipientResult[]): Promise<void> {
  const headers = message.bytes
    ? headerBlockOf(message.bytes)
    : message.staged
      ? message.staged.headerBlock()
      : await readHeaderBlock(message.file!);
  if (!shouldBounce(header.envelope.from, headers)) {
    deps.log.warn({ evt: 'rx.bounce-suppressed', packet: header.id, from: header.envelope.from, rcpts: failed.map((f) => f.rcpt) },
      'permanent failure not bounced (null sender or a DSN)');
    return;
  }
  const dsn = buildDsn({
    reportingMta: deps.hostname,
    originalEnvelope: header.envelope,
    originalHeaders: headers,
    arrivalDate: new Date(header.created),
    failed: failed.map((f) => ({
      rcpt: f.rcpt,
      status: f.enhanced ?? (f.code ? `${String(f.code).charAt(0)}.0.0` : '5.0.0'),
      diagnostic: f.code ? `smtp; ${f.code} ${f.message}` : `x-ferrypost; ${f.message}`,
      remoteMta: deps.injectorName,
    })),
  });
  try {
    const queued = await deps.enqueue.submit(dsn.envelope, dsn.message);
    deps.log.info({ evt: 'rx.bounced', packet: header.id, to: header.envelope.from, dsn: queued.map((q) => q.id) }, 'DSN sent');
  } catch (err) {
    if (isFerryError(err, 'NO_ROUTE')) {
      // Nowhere to send it: as Postfix does with an undeliverable bounce, log it and give up on it.
      deps.log.error({ evt: 'rx.bounce-unroutable', packet: header.id, to: header.envelope.from }, 'no route for the DSN; dropped after logging');
      return;
    }
    throw err;
  }
}
