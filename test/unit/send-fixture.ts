/** Shared by the send/smtp/sendmail tests: real node keys, a Keyring, a router, a temp tree, packet decoding. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import * as openpgp from 'openpgp';
import { generateNodeKey } from '../../src/keys/generate.js';
import type { Keyring, PeerKey } from '../../src/keys/keyring.js';
import { createUsabilityView } from '../../src/keys/usability.js';
import { decodePacket } from '../../src/packet/codec.js';
import type { PacketHeader } from '../../src/packet/header.js';
import { createRouter, type Router } from '../../src/route/router.js';

export interface NodeKeys {
  name: string;
  fpr: string;
  priv: openpgp.PrivateKey;
  pub: openpgp.PublicKey;
}

export async function nodeKeys(name: string): Promise<NodeKeys> {
  const g = await generateNodeKey({ name });
  const priv = await openpgp.readPrivateKey({ armoredKey: g.privateArmored });
  return { name, fpr: g.fingerprint, priv, pub: priv.toPublic() };
}

export interface World {
  self: NodeKeys;
  bob: NodeKeys;
  carol: NodeKeys;
  keyring: Keyring;
  router: Router;
  dir: string;
  tree: string;
  spool: string;
  /** An empty tree again (everything else under dir removed). */
  reset(): void;
  /** Removes dir. */
  cleanup(): void;
}

/** self → peers bob (example.net, default) and carol (example.com, *.example.com). */
export async function makeWorld(): Promise<World> {
  const [self, bob, carol] = await Promise.all([nodeKeys('self'), nodeKeys('bob'), nodeKeys('carol')]);
  const peers = new Map<string, PeerKey>();
  for (const n of [bob, carol]) peers.set(n.fpr, { name: n.name, fingerprint: n.fpr, key: n.pub });
  const keyring: Keyring = {
    self: { fingerprint: self.fpr, privateKey: self.priv, publicKey: self.pub },
    peers,
    peerByName: (name) => [...peers.values()].find((p) => p.name === name),
    peerProblem: createUsabilityView(new Map([...peers].map(([fpr, p]) => [fpr, p.key])), new Map()),
  };
  const router = createRouter([
    { name: 'bob', fingerprint: bob.fpr, mail: ['example.net'], default: false },
    { name: 'carol', fingerprint: carol.fpr, mail: ['example.com', '*.example.com'], default: false },
  ]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-send-'));
  const tree = path.join(dir, 'tree');
  mkdirSync(tree); // as `init` makes it: enqueue never creates the tree itself
  return {
    self, bob, carol, keyring, router, dir, tree,
    spool: path.join(dir, 'state', 'spool'),
    reset: () => {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(tree, { recursive: true });
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Every file under dir (recursive), relative paths, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

export async function decodeFile(file: string, to: NodeKeys, from: NodeKeys): Promise<{ header: PacketHeader; signer: string; payload: Buffer }> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  const r = await decodePacket({ input: Readable.from([readFileSync(file)]), decryptionKey: to.priv, verificationKeys: [from.pub], payloadSink: sink });
  return { ...r, payload: Buffer.concat(chunks) };
}
