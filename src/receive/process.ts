/**
 * Handles one inbound packet end to end: journal state → outer checks → decrypt + verify → replay
 * check → inject → record → delete. Every refusal is a quarantine with a reason; every temporary
 * failure leaves the packet in the tree and schedules a retry. The packet is deleted only after the
 * journal durably says delivered.
 *
 * The one window (documented in docs/delivery.md): if the process dies after the next hop accepted
 * but before the journal committed "delivered", the message is injected again on restart, the same
 * duplicate-over-loss choice SMTP itself makes.
 */
import { randomBytes } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { FerryError, errorCodeOf, isFerryError } from '../errors/index.js';
import type { InjectRequest, Injector, RecipientResult } from '../inject/types.js';
import type { Keyring } from '../keys/keyring.js';
import type { GcPacer } from '../memory/gc-pacer.js';
import { quarantinePacket } from '../quarantine/quarantine.js';
import type { Enqueue } from '../send/types.js';
import { PRUNE_GRACE_MS, type Journal, type JournalEntry } from '../store/journal.js';
import type { TreeEntry } from '../tree/scan.js';
import { bounce } from './bounce.js';
import type { GroupCommit } from './group-commit.js';
import type { Unrecorded } from './unrecorded.js';
import { checkOuter, decryptAndVerify, expiryError, type MessageSource, type Stager, type VerifiedPacket } from './verify.js';
import type { PacketHeader } from '../packet/header.js';
import type { DecryptWorker } from '../packet/decrypt-offload.js';

export interface ProcessDeps {
  stateDir: string;
  keyring: Keyring;
  journal: Journal;
  injector: Injector;
  enqueue: Enqueue;
  hostname: string;
  log: Logger;
  retryInitialMs: number;
  retryMaxMs: number;
  queueLifetimeMs: number;
  now: () => number;
  /** Counts packet and message bytes as they stream (bounds peak RSS: memory/gc-pacer.ts); required so no caller forgets it. */
  gcPacer: GcPacer | undefined;
  /** Decrypts and inflates large packets on a second core (packet/decrypt-offload.ts); required so no caller forgets it. */
  decryptWorker: DecryptWorker | undefined;
  /** Fault injection for crash tests: the process kills itself (SIGKILL) at this point. */
  crashAt?: CrashPoint | undefined;
}

export type CrashPoint = 'after-inject' | 'after-delivered';

function crashPoint(deps: ProcessDeps, at: CrashPoint): void {
  if (deps.crashAt === at) process.kill(process.pid, 'SIGKILL');
}

export type Outcome = 'delivered' | 'deferred' | 'quarantined' | 'skipped' | 'cleaned' | 'error';

/** What processPacket needs besides ProcessDeps: the receiver's shared group commit and memory. */
export interface PacketDeps extends ProcessDeps {
  commit: GroupCommit;
  /** Recipients accepted by the next hop whose journal record failed (receive/unrecorded.ts). */
  unrecorded: Unrecorded;
}

export async function processPacket(deps: PacketDeps, entry: TreeEntry): Promise<Outcome> {
  const hash = entry.hash.toString('hex');
  // The journal knows this content as a packet from known.fromNode. A copy of it under another
  // sender's directory is not that packet: it goes through every check (and is refused as signed by
  // the wrong peer), not through the shortcuts below.
  const recorded = deps.journal.byHash(hash);
  const known = recorded?.fromNode === entry.from ? recorded : undefined;
  // A removal not yet written (it rides on the next group commit) counts as written.
  if (known?.state === 'delivered' && deps.commit.removedPending(hash)) known.state = 'removed';
  if (known?.state === 'removed') {
    const what = known.lastError?.startsWith(BOUNCED) ? `refused and ${known.lastError}` : 'delivered and removed';
    return refuse(deps, entry, new FerryError('PACKET_REPLAY', `packet ${known.id} was already ${what} at ${new Date(known.updated).toISOString()}`), known.id);
  }
  if (known?.state === 'delivered') {
    // A crash between "delivered" and the unlink: finish the job, do not inject again.
    await unlinkIfPresent(entry.path);
    deps.journal.removed(hash, deps.now());
    deps.log.info({ evt: 'rx.cleanup', packet: known.id, file: entry.name }, 'removed packet delivered before a restart');
    return 'cleaned';
  }
  if (known?.state === 'deferred' && known.nextAttempt !== null && known.nextAttempt > deps.now()) return 'skipped';

  // Used only for packets too large to decrypt into memory (decryptAndVerify creates it then). Unique
  // per attempt, so that nothing else can ever write into the file an injection is reading.
  const workFile = path.join(deps.stateDir, 'work', `${hash}.${randomBytes(6).toString('hex')}.msg`);
  let verified: VerifiedPacket | undefined;
  try {
    try {
      const packetBytes = await checkOuter(entry, deps.keyring);
      verified = await decryptAndVerify(entry, deps.keyring, { workFile, packetBytes, stage: stagerFor(deps.injector, known), onBytes: deps.gcPacer?.account, decryptWorker: deps.decryptWorker });
      // An id already recorded under another file name is refused by journal.begin() (in deliver):
      // the check and the record are one transaction, so no other packet can take the id in between.
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'skipped'; // gone meanwhile (synced deletion)
      if (isFerryError(err) && err.code.startsWith('PACKET_')) return await refuse(deps, entry, err);
      throw err;
    }
    const expired = known ? undefined : expiryError(verified.header, deps.now());
    if (expired) return await refuseExpired(deps, entry, hash, verified, expired);
    return await deliver(deps, entry, hash, known, verified.header, verified.message);
  } finally {
    if (verified?.message.file) await unlink(verified.message.file).catch(() => undefined);
    await verified?.message.staged?.discard(); // nothing if it was committed
  }
}

/**
 * Large packets for an injector that can stage (Maildir): the message is decoded straight into its
 * destination for the recipients not yet done, and published only after every check (deliver()).
 */
function stagerFor(injector: Injector, known: JournalEntry | undefined): Stager | undefined {
  const stage = injector.stage?.bind(injector);
  if (!stage) return undefined;
  const done = new Set(known?.doneRecipients ?? []);
  return async (h) => {
    const to = h.envelope.to.filter((r) => !done.has(r));
    return to.length ? stage({ envelope: { from: h.envelope.from, to }, size: h.size, packetId: h.id }) : undefined;
  };
}

/** The request for these recipients; a staged message has neither bytes nor file (only alreadyDelivered sees it). */
function requestFor(header: PacketHeader, to: string[], message: MessageSource, onBytes?: (n: number) => void): InjectRequest {
  return { envelope: { from: header.envelope.from, to }, bytes: message.bytes, file: message.file, size: header.size, packetId: header.id, onBytes };
}

/** Publishes a staged copy for exactly the recipients it was staged for; anything else is retried later. */
async function injectStaged(message: MessageSource, remaining: string[]): Promise<RecipientResult[]> {
  const staged = message.staged!;
  const same = remaining.length === staged.recipients.length && remaining.every((r) => staged.recipients.includes(r));
  if (same) return staged.commit();
  // Not reached with one maildir per staged copy (its recipients are done or not together); kept safe:
  // the journal now knows which are done, so the next attempt stages the right set.
  return remaining.map((rcpt) => ({ rcpt, status: 'temp', code: 451, enhanced: '4.3.0', message: 'staged copy does not match the recipients left; retrying' }));
}

async function deliver(deps: PacketDeps, entry: TreeEntry, hash: string, known: JournalEntry | undefined, header: PacketHeader, message: MessageSource): Promise<Outcome> {
  const now = deps.now();
  // "injecting" left by a previous run of this process means it died while injecting this packet.
  // (`known` is still current: the receiver never handles one file twice at once.)
  const resumed = known?.state === 'injecting';
  let j: JournalEntry;
  try {
    j = deps.journal.begin(
      { hash, id: header.id, fromNode: entry.from, recipients: header.envelope.to, expires: Date.parse(header.expires), size: header.size },
      now,
    );
  } catch (err) {
    if (isFerryError(err) && err.code === 'PACKET_REPLAY') return await refuse(deps, entry, err);
    throw err;
  }
  const log = deps.log.child({ packet: header.id });
  const unrecorded = deps.unrecorded.get(hash);
  if (unrecorded.length) {
    log.warn({ evt: 'rx.record-retry', rcpts: unrecorded }, 'accepted by the next hop before a journal write failed; recording it, not injecting again');
    // Recorded now: whatever this attempt ends in (a deferral too), the journal then holds them.
    deps.journal.recipientsDone(hash, [...unrecorded]);
  }
  const done = new Set([...j.doneRecipients, ...unrecorded]);
  if ((resumed || known?.state === 'deferred') && deps.injector.alreadyDelivered) {
    // The last attempt died mid-injection, or failed after the destination may have taken the message
    // (Maildir: renamed into new/, then its fsync failed): skip what the destination already holds.
    const held = await deps.injector.alreadyDelivered(requestFor(header, header.envelope.to.filter((r) => !done.has(r)), message));
    if (held.length) {
      deps.journal.recipientsDone(hash, held);
      for (const r of held) done.add(r);
      log.info({ evt: 'rx.resume-skip', rcpts: held }, 'already delivered before the crash; not injected again');
    }
  }
  const remaining = header.envelope.to.filter((r) => !done.has(r));

  const results = !remaining.length
    ? []
    : message.staged
      ? await injectStaged(message, remaining)
      : await deps.injector.inject(requestFor(header, remaining, message, deps.gcPacer?.account));
  if (results.some((r) => r.status === 'ok')) crashPoint(deps, 'after-inject');
  const ok = results.filter((r) => r.status === 'ok');
  const perm = results.filter((r) => r.status === 'perm');
  let temp = results.filter((r) => r.status === 'temp');
  // Noted in memory first: if a journal write below fails, the retry must not inject these again.
  deps.unrecorded.add(hash, ok.map((r) => r.rcpt));
  // When every recipient is done, the "delivered" commit below says it all; record partial progress only.
  if (ok.length && ok.length < results.length) deps.journal.recipientsDone(hash, ok.map((r) => r.rcpt));
  for (const r of ok) log.info({ evt: 'rx.injected', rcpt: r.rcpt, via: deps.injector.name, reply: r.message }, 'delivered');

  if (temp.length && now - j.firstSeen > deps.queueLifetimeMs) {
    // Postfix's maximal_queue_lifetime: give up and tell the sender. RFC 3463 X.4.7: the actual
    // problem's code if there is one.
    perm.push(...temp.map((r): RecipientResult => ({ ...r, status: 'perm', enhanced: r.enhanced ?? '4.4.7', message: `delivery time expired; last error: ${r.message}` })));
    temp = [];
  }
  if (perm.length) {
    for (const r of perm) log.warn({ evt: 'rx.bounce', rcpt: r.rcpt, code: r.code, reply: r.message }, 'permanent failure');
    // Throws if the DSN could not be stored anywhere: the packet stays, nothing below is recorded.
    await bounce({ enqueue: deps.enqueue, hostname: deps.hostname, injector: deps.injector, log }, header, message, perm);
    deps.unrecorded.add(hash, perm.map((r) => r.rcpt)); // bounced: not again
    deps.journal.recipientsDone(hash, perm.map((r) => r.rcpt));
  }
  if (temp.length) {
    const delay = Math.min(deps.retryMaxMs, deps.retryInitialMs * 2 ** Math.max(0, j.attempts - 1));
    const error = temp.map((r) => `${r.rcpt}: ${r.message}`).join('; ');
    deps.journal.defer(hash, error, now + delay, now);
    deps.unrecorded.clear(hash); // every finished recipient is recorded (recipientsDone above)
    log.warn({ evt: 'inject.tempfail', rcpts: temp.map((r) => r.rcpt), error, retryInMs: delay, attempts: j.attempts }, 'deferred');
    return 'deferred';
  }
  await deps.commit.delivered(hash);
  deps.unrecorded.clear(hash);
  crashPoint(deps, 'after-delivered');
  // No directory fsync for the removal, and "removed" rides along with a later transaction: if either
  // is lost in a crash, the journal says delivered and the file is removed again at start, never
  // injected twice.
  // Not a blocking unlinkSync: unlink waits for the filesystem journal while fsyncs are under way
  // (measured: 4.7 % of the receiver's main thread when it was blocking).
  await unlinkIfPresent(entry.path);
  deps.commit.removed(hash);
  log.info({ evt: 'rx.delivered', from: entry.from, rcpts: header.envelope.to.length, size: header.size }, 'packet delivered and removed');
  return 'delivered';
}

/** The journal's last_error of a packet recorded by refuseExpired starts so. */
const BOUNCED = 'bounced: ';

/**
 * An authentic packet that expired in transit is never injected (its sender's packets.expiry said
 * so): it is quarantined with its reason, and the sender is told by a DSN (5.4.7), as Postfix bounces
 * mail that outlived maximal_queue_lifetime. The journal records it before the quarantine, so a
 * restart or a release never bounces it twice; a crash between the DSN and that record sends a second
 * DSN (the window every bounce has). A DSN that cannot be stored throws: the packet stays for a retry.
 * A packet that expired longer ago than the journal keeps delivery records gets no DSN (see below).
 */
async function refuseExpired(deps: ProcessDeps, entry: TreeEntry, hash: string, v: VerifiedPacket, err: FerryError): Promise<Outcome> {
  const h = v.header;
  const seen = deps.journal.byId(h.id);
  if (seen) {
    return refuse(deps, entry, new FerryError('PACKET_REPLAY', `${err.message}, and packet ${h.id} is already recorded (state ${seen.state}) under another file name`), h.id);
  }
  const now = deps.now();
  if (now - Date.parse(h.expires) >= PRUNE_GRACE_MS) {
    // The journal forgets delivered packets PRUNE_GRACE_MS after their expiry: this may be an old copy
    // of a delivered packet (a Syncthing device re-adding a folder it kept), so its sender is not told.
    return refuse(deps, entry, new FerryError('PACKET_EXPIRED', `${err.message}; sender not told: it expired more than ${PRUNE_GRACE_MS / 86_400_000} days ago, beyond this node's delivery records, so it may be an old copy of a delivered packet`, err.detail ? { detail: err.detail } : undefined), h.id);
  }
  const why = `packet expired at ${h.expires} in transit, before ${deps.hostname} received it; not delivered`;
  const failed = h.envelope.to.map((rcpt): RecipientResult => ({ rcpt, status: 'perm', enhanced: '5.4.7', message: why }));
  const outcome = await bounce({ enqueue: deps.enqueue, hostname: deps.hostname, injector: deps.injector, log: deps.log }, h, v.message, failed, { fromNextHop: false });
  const told = outcome === 'sent' ? `DSN sent to <${h.envelope.from}>`
    : outcome === 'local' ? `DSN for <${h.envelope.from}> handed to ${deps.injector.name} (no route to its node)`
      : 'sender not told (null sender)';
  deps.journal.recordBounced(
    { hash, id: h.id, fromNode: entry.from, recipients: h.envelope.to, expires: Date.parse(h.expires), size: h.size },
    `${BOUNCED}${err.message}; ${told}`,
    now,
  );
  return refuse(deps, entry, new FerryError('PACKET_EXPIRED', `${err.message}; ${told}`, err.detail ? { detail: err.detail } : undefined), h.id);
}

async function refuse(deps: ProcessDeps, entry: TreeEntry, err: FerryError, packetId?: string): Promise<Outcome> {
  const q = await quarantinePacket(deps.stateDir, entry.path, {
    code: err.code,
    message: err.message,
    fromNode: entry.from,
    ...(packetId ? { packetId } : {}),
    ...(err.detail ? { detail: err.detail } : {}),
  });
  deps.log.warn({ evt: 'rx.quarantined', code: errorCodeOf(err), reason: err.message, file: entry.name, from: entry.from, to: q.path, packet: packetId }, 'packet quarantined');
  return 'quarantined';
}

export type { JournalEntry };

async function unlinkIfPresent(file: string): Promise<void> {
  await unlink(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

