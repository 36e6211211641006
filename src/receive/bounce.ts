/**
 * Turns permanent failures into an RFC 3464 DSN to the envelope sender and enqueues it like any
 * other mail, so it travels back through the tree. Only the null sender is never bounced.
 * A DSN with no route to a node goes to this node's own next hop instead (see bounceLocally).
 * How it fails: rejects (and the caller keeps the packet) if the DSN could be neither enqueued nor
 * handed to the next hop; then nothing about the failed recipients has been recorded.
 */
import type { Logger } from 'pino';
import { buildDsn, shouldBounce } from '../dsn/index.js';
import { headerBlockOf, readHeaderBlock } from '../dsn/headers.js';
import type { MessageSource } from './verify.js';
import { FerryError, isFerryError } from '../errors/index.js';
import type { Injector, RecipientResult } from '../inject/types.js';
import type { PacketHeader } from '../packet/header.js';
import type { Enqueue } from '../send/types.js';

export interface BounceDeps {
  enqueue: Enqueue;
  hostname: string;
  /** The next hop: names the Remote-MTA, and takes a DSN that routes to no node. */
  injector: Injector;
  log: Logger;
}

/** What became of the failure notice: a DSN in the tree, a DSN handed to the local next hop, none (null sender). */
export type BounceOutcome = 'sent' | 'local' | 'suppressed';

export interface BounceOptions {
  /** The failures came from the next hop (default): the DSN names it as Remote-MTA. False: ferrypost's own verdict (expiry). */
  fromNextHop?: boolean;
}

export async function bounce(deps: BounceDeps, header: PacketHeader, message: MessageSource, failed: RecipientResult[], opts: BounceOptions = {}): Promise<BounceOutcome> {
  if (!shouldBounce(header.envelope.from)) {
    deps.log.warn({ evt: 'rx.bounce-suppressed', packet: header.id, from: header.envelope.from, rcpts: failed.map((f) => f.rcpt) },
      'permanent failure not bounced (null sender)');
    return 'suppressed';
  }
  const headers = message.bytes
    ? headerBlockOf(message.bytes)
    : message.staged
      ? message.staged.headerBlock()
      : await readHeaderBlock(message.file!);
  const remoteMta = opts.fromNextHop === false ? undefined : remoteMtaOf(deps.injector.name);
  const dsn = buildDsn({
    reportingMta: deps.hostname,
    originalEnvelope: header.envelope,
    originalHeaders: headers,
    arrivalDate: new Date(header.created),
    failed: failed.map((f) => ({
      rcpt: f.rcpt,
      status: f.enhanced ?? (f.code ? `${String(f.code).charAt(0)}.0.0` : '5.0.0'),
      diagnostic: f.code ? `smtp; ${f.code} ${f.message}` : `x-ferrypost; ${f.message}`,
      ...(remoteMta ? { remoteMta } : {}),
    })),
  });
  try {
    const queued = await deps.enqueue.submit(dsn.envelope, dsn.message);
    deps.log.info({ evt: 'rx.bounced', packet: header.id, to: header.envelope.from, dsn: queued.map((q) => q.id) }, 'DSN sent');
    return 'sent';
  } catch (err) {
    if (!isFerryError(err, 'NO_ROUTE')) throw err;
    await bounceLocally(deps, header, dsn, err);
    return 'local';
  }
}

/**
 * The sender's address routes to no node: as Postfix hands an undeliverable bounce to the local
 * system, the DSN goes to this node's next hop (the local MTA routes it or gives it to its
 * postmaster; a Maildir keeps it for the node's admin). Dropping it would lose the failure.
 */
async function bounceLocally(deps: BounceDeps, header: PacketHeader, dsn: ReturnType<typeof buildDsn>, noRoute: FerryError): Promise<void> {
  const results = await deps.injector.inject({
    envelope: dsn.envelope,
    bytes: dsn.message,
    size: dsn.message.length,
    // Not the packet's own id: a Maildir recognises its deliveries by it (alreadyDelivered).
    packetId: `${header.id}-dsn`,
  });
  const evt = { evt: 'rx.bounce-local', packet: header.id, to: header.envelope.from, via: deps.injector.name, reason: noRoute.message };
  if (results.length && results.every((r) => r.status === 'ok')) {
    deps.log.warn({ ...evt, reply: results[0]!.message }, 'no route for the DSN; handed to the local next hop');
    return;
  }
  const error = results.map((r) => `${r.rcpt}: ${r.message}`).join('; ') || 'no result';
  deps.log.error({ ...evt, error }, 'no route for the DSN and the local next hop did not take it; packet kept for a retry');
  throw new FerryError('INJECT_TEMPFAIL', `DSN for packet ${header.id} neither routable (${noRoute.message}) nor accepted by ${deps.injector.name}: ${error}`);
}

/**
 * RFC 3464 Remote-MTA names the MTA that reported the failure: only the SMTP/LMTP injector talks to
 * one ("smtp:host:port", "lmtp:host:port" in inject/smtp.ts); Maildir and sendmail have none.
 */
export function remoteMtaOf(injectorName: string): string | undefined {
  return /^(?:smtp|lmtp):(.+):\d+$/.exec(injectorName)?.[1];
}
