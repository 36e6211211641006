/**
 * Test helper: two nodes A and B in one process around one tree directory, with the real codec,
 * enqueue, journal, receiver and a real Maildir injector at B. For refusal and recovery tests that
 * need to craft or alter packets; the cross-process and real-MTA proofs live in test/stack/.
 */
import type { GcPacer } from '../../src/memory/gc-pacer.js';
import type { DecryptWorker } from '../../src/packet/decrypt-offload.js';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll } from 'vitest';
import * as openpgp from 'openpgp';
import { generateNodeKey } from '../../src/keys/generate.js';
import type { Keyring, PeerKey } from '../../src/keys/keyring.js';
import { createUsabilityView } from '../../src/keys/usability.js';
import { createMaildirInjector } from '../../src/inject/maildir.js';
import type { Injector } from '../../src/inject/types.js';
import type { Logger } from 'pino';
import { silentLogger } from '../../src/log/logger.js';
import { createReceiver, type Receiver } from '../../src/receive/receiver.js';
import type { Outcome } from '../../src/receive/process.js';
import { createRouter } from '../../src/route/router.js';
import { createEnqueue } from '../../src/send/enqueue.js';
import type { Enqueue } from '../../src/send/types.js';
import { openJournal, type Journal } from '../../src/store/journal.js';
import type { TreeEntry } from '../../src/tree/scan.js';

export interface NodeKeys { name: string; fingerprint: string; privateKey: openpgp.PrivateKey; publicKey: openpgp.PublicKey }

export async function makeKeys(name: string): Promise<NodeKeys> {
  const k = await generateNodeKey({ name });
  const privateKey = await openpgp.readPrivateKey({ armoredKey: k.privateArmored });
  return { name, fingerprint: k.fingerprint, privateKey, publicKey: privateKey.toPublic() };
}

export function keyringOf(self: NodeKeys, peers: NodeKeys[]): Keyring {
  const map = new Map<string, PeerKey>(peers.map((p) => [p.fingerprint, { name: p.name, fingerprint: p.fingerprint, key: p.publicKey }]));
  return {
    self: { fingerprint: self.fingerprint, privateKey: self.privateKey, publicKey: self.publicKey },
    peers: map,
    peerByName: (n) => [...map.values()].find((p) => p.name === n),
    peerProblem: createUsabilityView(new Map(peers.map((p) => [p.fingerprint, p.publicKey])), new Map()),
  };
}

export function enqueueFor(self: NodeKeys, to: NodeKeys, tree: string, stateDir: string, opts: { now?: () => Date; expiryMs?: number } = {}): Enqueue {
  const peers = [{ name: to.name, fingerprint: to.fingerprint, mail: [] as string[], default: true }];
  mkdirSync(tree, { recursive: true }); // as `init` makes it: enqueue never creates the tree itself
  return createEnqueue({
    keyring: keyringOf(self, [to]),
    router: createRouter(peers),
    tree,
    spoolDir: path.join(stateDir, 'spool'),
    expiryMs: opts.expiryMs ?? 86_400_000,
    compressionLevel: 6,
    memorySpoolLimit: 1 << 20,
    gcPacer: undefined,
    ...(opts.now ? { now: opts.now } : {}),
  });
}

export interface ReceivingNode {
  receiver: Receiver;
  journal: Journal;
  injector: Injector;
  maildir: string;
  stateDir: string;
  outcomes: Array<{ entry: TreeEntry; outcome: Outcome }>;
  close(): Promise<void>;
}

export interface ReceivingNodeOptions {
  injector?: Injector;
  enqueue?: Enqueue;
  retryInitialMs?: number;
  gcPacer?: GcPacer;
  decryptWorker?: DecryptWorker;
  log?: Logger;
  concurrency?: number;
  /** The receiver's journal commit window (ReceiverDeps.commitWindowMs). */
  commitWindowMs?: number;
  pruneIntervalMs?: number;
  now?: () => number;
  /** Wraps the real journal, e.g. to make one of its writes fail. */
  wrapJournal?: (journal: Journal) => Journal;
  /** Called after each scan of the inbox (ReceiverDeps.onScan). */
  onScan?: (found: number) => void;
}

export function receivingNode(self: NodeKeys, peers: NodeKeys[], tree: string, dir: string, opts: ReceivingNodeOptions = {}): ReceivingNode {
  const stateDir = path.join(dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const maildir = path.join(dir, 'Maildir');
  const journal = openJournal(path.join(stateDir, 'journal.sqlite'));
  const used = opts.wrapJournal ? opts.wrapJournal(journal) : journal;
  const injector = opts.injector ?? createMaildirInjector({ method: 'maildir', path: maildir, add_headers: false }, { hostname: 'test.invalid' });
  const outcomes: ReceivingNode['outcomes'] = [];
  const noEnqueue: Enqueue = { submit: async () => { throw new Error('no enqueue in this test'); } };
  const receiver = createReceiver({
    tree,
    stateDir,
    keyring: keyringOf(self, peers),
    journal: used,
    injector,
    enqueue: opts.enqueue ?? noEnqueue,
    hostname: 'test.invalid',
    log: opts.log ?? silentLogger(),
    rescanIntervalMs: 60_000,
    concurrency: opts.concurrency ?? 2,
    ...(opts.commitWindowMs !== undefined ? { commitWindowMs: opts.commitWindowMs } : {}),
    ...(opts.pruneIntervalMs !== undefined ? { pruneIntervalMs: opts.pruneIntervalMs } : {}),
    retryInitialMs: opts.retryInitialMs ?? 60_000,
    retryMaxMs: 3_600_000,
    queueLifetimeMs: 5 * 86_400_000,
    now: opts.now ?? Date.now,
    onOutcome: (entry, outcome) => outcomes.push({ entry, outcome }),
    ...(opts.onScan ? { onScan: opts.onScan } : {}),
    gcPacer: opts.gcPacer,
    decryptWorker: opts.decryptWorker,
  });
  return {
    receiver, journal, injector, maildir, stateDir, outcomes,
    async close() {
      await receiver.stop();
      await injector.close();
      journal.close();
    },
  };
}

/**
 * The hooks receiver tests share: nodes a and b made once per file; after each test the receiving
 * node tracked with track() is closed and the test's directory (dir()) removed. A file's own
 * afterEach, registered later, runs before these (e.g. to release a held injection first).
 */
export function receiverTests(prefix: string) {
  let keys: [NodeKeys, NodeKeys] | undefined;
  let base: string | undefined;
  let rx: ReceivingNode | undefined;
  beforeAll(async () => {
    keys = await Promise.all([makeKeys('a'), makeKeys('b')]);
  });
  afterEach(async () => {
    await rx?.close();
    rx = undefined;
    if (base) rmSync(base, { recursive: true, force: true });
    base = undefined;
  });
  const key = (i: 0 | 1): NodeKeys => {
    if (!keys) throw new Error('receiverTests: the keys are made in beforeAll');
    return keys[i];
  };
  return {
    get A(): NodeKeys {
      return key(0);
    },
    get B(): NodeKeys {
      return key(1);
    },
    /** This test's temp directory, made on first use. */
    dir(): string {
      return (base ??= mkdtempSync(path.join(tmpdir(), prefix)));
    },
    /** Closes `node` after the test. */
    track(node: ReceivingNode): ReceivingNode {
      rx = node;
      return node;
    },
  };
}
