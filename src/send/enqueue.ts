/**
 * Enqueue: route the recipients, read the message once (memory or spool), build one signed+encrypted
 * packet per destination node and write them with a two-phase commit: every packet is prepared (temp,
 * fsync'd) before any is committed (link/rename + fsync dir), so the caller's success reply means all
 * of them are durable, and a failure leaves none visible.
 * Fails with FerryError: NO_ROUTE / BAD_ADDRESS / NO_RECIPIENTS (nothing written), ENVELOPE_TOO_BIG
 * (the recipients for one node do not fit in a packet header: permanent, nothing read), DISK_FULL
 * (ENOSPC, EDQUOT, in either phase), STORE_FAILED (other write failures, with cause), CONFIG (a routed
 * peer has no key), PEER_KEY_UNUSABLE (its key expired or was revoked: temporary); a FerryError from
 * the message source (e.g. TOO_BIG from the SMTP size limit) is passed through. A packet that was
 * committed and could not be taken back is logged (enqueue.orphaned) and named in the error's
 * detail.orphaned.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { FerryError, isFerryError } from '../errors/index.js';
import type { Keyring, PeerKey } from '../keys/keyring.js';
import type { GcPacer } from '../memory/gc-pacer.js';
import { encodePacket } from '../packet/codec.js';
import { newPacketId, type MailEnvelope, type PacketHeader } from '../packet/header.js';
import { canonicalAddress } from '../route/canonical.js';
import type { Router } from '../route/router.js';
import { createDirSync, prepareDurable, removeDurable, type DurableOptions, type PreparedFile } from '../tree/durable.js';
import { errnoOf, nodeTreeFs, type TreeFs } from '../tree/fs.js';
import { packetDir, packetNameForHash } from '../tree/layout.js';
import { HEADER_BUDGET, headerBytesFor } from './header-budget.js';
import { spoolMessage } from './spool.js';
import type { Enqueue, QueuedPacket } from './types.js';

export interface EnqueueDeps {
  keyring: Keyring;
  router: Router;
  tree: string;
  /** STATE/spool: temporary copies of messages larger than memorySpoolLimit. */
  spoolDir: string;
  expiryMs: number;
  compressionLevel: number;
  memorySpoolLimit: number;
  log?: Logger;
  /** Counts the bytes of messages as they stream (bounds peak RSS: memory/gc-pacer.ts); required so no caller forgets it. */
  gcPacer: GcPacer | undefined;
  now?: () => Date;
  fs?: TreeFs;
}

interface Destination {
  name: string;
  fingerprint: string;
  recipients: string[];
}

/**
 * Groups recipients by node, in first-seen order; duplicates (case-insensitive) dropped. Each node's
 * recipients must fit in its packet header (the SMTP listener keeps them within it at RCPT time).
 */
function planDestinations(router: Router, from: string, rcpts: readonly string[]): Destination[] {
  if (rcpts.length === 0) throw new FerryError('NO_RECIPIENTS', 'no recipients');
  const seen = new Set<string>();
  const byNode = new Map<string, Destination>();
  for (const rcpt of rcpts) {
    // The spelling routing compares (ASCII case, IDNA, quotes): Unicode lowercasing would merge
    // "\u212Aate@x" (KELVIN SIGN) into kate@x, and kate would get nothing.
    const c = canonicalAddress(rcpt);
    const key = c ? `${c.local}@${c.domain}` : rcpt;
    if (seen.has(key)) continue;
    seen.add(key);
    const target = router.route(rcpt);
    if (!target) throw new FerryError('NO_ROUTE', `<${rcpt}>: no route to a node`, { detail: { rcpt } });
    let d = byNode.get(target.fingerprint);
    if (!d) {
      d = { name: target.name, fingerprint: target.fingerprint, recipients: [] };
      byNode.set(target.fingerprint, d);
    }
    d.recipients.push(rcpt);
  }
  for (const d of byNode.values()) {
    const bytes = headerBytesFor(from, d.recipients);
    if (bytes > HEADER_BUDGET) {
      throw new FerryError('ENVELOPE_TOO_BIG', `Error: too many recipients for one message to ${d.name} (${d.recipients.length} addresses, ~${bytes} header bytes, the limit is ${HEADER_BUDGET}); send them in several messages`, {
        detail: { peer: d.name, recipients: d.recipients.length, bytes },
      });
    }
  }
  return [...byNode.values()];
}

/** Mail for a peer whose key cannot be encrypted to is deferred, with what the admin has to do. */
export function peerKeyError(peer: string, problem: string, recipients: readonly string[]): FerryError {
  const until = /revoked/.test(problem) ? "that node's new key replaces it (a revocation is final)" : 'its renewed key is installed';
  return new FerryError('PEER_KEY_UNUSABLE', `node ${peer}'s key ${problem}: mail for it waits until ${until}`, {
    detail: { peer, problem, recipients: recipients.length },
  });
}

function storeError(err: unknown, what: string): FerryError {
  if (isFerryError(err)) return err;
  const errno = errnoOf(err);
  const why = err instanceof Error ? err.message : String(err);
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return new FerryError('DISK_FULL', `${what}: disk full (${why})`, { cause: err });
  return new FerryError('STORE_FAILED', `${what}: ${why}`, { cause: err });
}

export function createEnqueue(deps: EnqueueDeps): Enqueue {
  const now = deps.now ?? (() => new Date());
  const onBytes = deps.gcPacer?.account;
  const self = deps.keyring.self.fingerprint;
  // Concurrent messages to the same node land in the same directory: they share its fsyncs.
  // The tree itself is never created: missing, it is a wrong node.tree or an unmounted folder (CONFIG).
  const durable: DurableOptions = { fs: deps.fs ?? nodeTreeFs, dirSync: createDirSync(deps.fs ?? nodeTreeFs), within: deps.tree };

  async function submit(envelope: MailEnvelope, message: Readable | Uint8Array): Promise<QueuedPacket[]> {
    let destinations: Destination[];
    let keys: PeerKey['key'][];
    try {
      destinations = planDestinations(deps.router, envelope.from, envelope.to);
      keys = destinations.map((d) => {
        const peer = deps.keyring.peers.get(d.fingerprint) ?? deps.keyring.peerByName(d.name);
        if (!peer) throw new FerryError('CONFIG', `peer ${d.name} (${d.fingerprint}): no public key loaded`);
        const problem = deps.keyring.peerProblem(peer.fingerprint);
        if (problem) throw peerKeyError(peer.name, problem, d.recipients);
        return peer.key;
      });
    } catch (err) {
      if (!(message instanceof Uint8Array)) message.resume(); // do not leave the source hanging
      throw err;
    }

    let spooled;
    try {
      spooled = await spoolMessage(message, deps.memorySpoolLimit, deps.spoolDir, onBytes);
    } catch (err) {
      throw storeError(err, 'reading the message');
    }
    const prepared: Array<{ file: PreparedFile; header: PacketHeader; dest: Destination; dir: string }> = [];
    try {
      // Phase 1: every packet encoded and fsync'd under a temp name; one node after another.
      for (const [i, dest] of destinations.entries()) {
        const created = now();
        const header: PacketHeader = {
          v: 1,
          type: 'mail',
          id: newPacketId(),
          from_node: self,
          to_node: dest.fingerprint,
          created: created.toISOString(),
          expires: new Date(created.getTime() + deps.expiryMs).toISOString(),
          envelope: { from: envelope.from, to: [...dest.recipients] },
          size: spooled.size,
          sha256: spooled.sha256,
        };
        const dir = packetDir(deps.tree, dest.fingerprint, self);
        let file: PreparedFile;
        // A spooled message opens a file here: every failure below must destroy it (fd + unlinked file).
        const payload = spooled.open();
        const release = () => {
          if (!(payload instanceof Uint8Array)) payload.destroy();
        };
        const encoded = await encodePacket({
          header,
          payload,
          signingKey: deps.keyring.self.privateKey,
          encryptionKey: keys[i]!,
          compressionLevel: deps.compressionLevel,
          ...(onBytes ? { onPayloadBytes: onBytes } : {}),
        }).catch((err: unknown) => {
          release();
          throw new FerryError('STORE_FAILED', `encoding the packet for ${dest.name}: ${(err as Error).message}`, { cause: err });
        });
        try {
          file = await prepareDurable(dir, encoded, durable);
        } catch (err) {
          encoded.destroy();
          release();
          throw storeError(err, `writing the packet for ${dest.name}`);
        }
        prepared.push({ file, header, dest, dir });
      }
    } catch (err) {
      await Promise.all(prepared.map((p) => p.file.abort()));
      await spooled.dispose();
      throw err;
    }
    await spooled.dispose();

    // Phase 2: commit all; on a failure take back what was already committed.
    const done: QueuedPacket[] = [];
    try {
      for (const p of prepared) {
        const name = packetNameForHash(p.file.sha256);
        const path = await p.file.commit(name);
        done.push({ id: p.header.id, peer: p.dest.name, toNode: p.dest.fingerprint, name, path, recipients: p.dest.recipients });
      }
    } catch (err) {
      await Promise.all(prepared.map((p) => p.file.abort()));
      const orphaned: string[] = [];
      for (const q of done) {
        await removeDurable(q.path, deps.fs).catch((rmErr: unknown) => {
          // The packet stays in the tree and will be delivered, while the client is told to retry: a
          // duplicate, never a loss. Say so, with the file, so an admin can remove it.
          orphaned.push(q.path);
          deps.log?.error(
            { evt: 'enqueue.orphaned', packet: q.id, peer: q.peer, file: q.path, err: (rmErr as Error).message, cause: err instanceof Error ? err.message : String(err) },
            'a committed packet could not be taken back after a failed commit: it will be delivered, and the message is likely to be resent',
          );
        });
      }
      const e = storeError(err, 'committing packets');
      if (orphaned.length === 0) throw e;
      throw new FerryError(e.code, `${e.message} (left in the tree, could not be removed: ${orphaned.join(', ')})`, { cause: err, detail: { ...e.detail, orphaned } });
    }
    // debug: the caller logs the accepted message once (smtp.accepted, rx.bounced); this is per packet.
    for (const [i, q] of done.entries()) {
      deps.log?.debug(
        { evt: 'enqueue.written', packet: q.id, peer: q.peer, to_node: q.toNode, file: q.name, size: prepared[i]!.file.size, msg_size: spooled.size, rcpts: q.recipients.length },
        'packet written',
      );
    }
    return done;
  }

  return Object.freeze({ submit });
}
