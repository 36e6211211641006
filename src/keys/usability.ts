/**
 * Whether a peer's key can be used now: encrypted to (our packets for it) and its signatures checked
 * (its packets). One answer for `peer add` (which refuses such a key), start-up and each recipient.
 * A peer whose key stopped being usable does not stop the node (it did: one expired peer key made
 * `run` fail with CONFIG): mail for that peer is deferred (PEER_KEY_UNUSABLE, 4.7.5), mail for the
 * others flows, and its packets are still judged one by one at their own signature time
 * (packet/native/signature-verify.ts, openpgp's rules): a packet signed before the key expired is
 * delivered; after a hard revocation none is, after a soft one ("superseded", "retired") those signed
 * before it are (README "Guarantees", docs/delivery.md).
 */
import type * as openpgp from 'openpgp';
import type { Keyring } from './keyring.js';

/** A changed answer (a key expiring while the daemon runs) is seen within this time. */
export const RECHECK_MS = 60_000;

/** Why `key` cannot be used at `now`, or undefined if it can: "is revoked", "expired on <ISO date>", … */
export async function keyProblem(key: openpgp.PublicKey, now: Date = new Date()): Promise<string | undefined> {
  if (await key.isRevoked(undefined, undefined, now)) return 'is revoked';
  const expires = await key.getExpirationTime();
  if (expires instanceof Date && expires.getTime() <= now.getTime()) return `expired on ${expires.toISOString()}`;
  try {
    await key.getSigningKey(undefined, now);
    await key.getEncryptionKey(undefined, now);
  } catch (e) {
    return `has no usable signing or encryption key: ${(e as Error).message}`; // openpgp says why (expired, revoked, too weak)
  }
  return undefined;
}

/**
 * Why `key`, which has `problem` now (keyProblem), can never serve as a peer key whatever the time or
 * revocations, or undefined: no key in it may sign, or none may encrypt (key flags: e.g. GnuPG's
 * certify-only primary with only an encryption subkey), or openpgp refuses it at any date (too weak,
 * unsupported). That is a wrong key in the config, not one that aged or was revoked (those load with
 * their problem): the keyring refuses it (CONFIG) as `peer add` does.
 */
export async function neverUsable(key: openpgp.PublicKey, problem: string): Promise<string | undefined> {
  const byFlags = neverUsableByFlags(key);
  if (byFlags || /revoked/i.test(problem)) return byFlags;
  // Not revoked: what openpgp refuses whatever the time (date null: no time checks) is for good too,
  // e.g. an RSA key under 2047 bits, a signing subkey without its back-signature.
  try {
    await key.getSigningKey(undefined, null);
    await key.getEncryptionKey(undefined, null);
  } catch (e) {
    return `has no usable signing or encryption key: ${(e as Error).message}`;
  }
  return undefined;
}

function neverUsableByFlags(key: openpgp.PublicKey): string | undefined {
  type Sig = { keyFlags?: Uint8Array | number[] | null };
  const flagsOf = (sigs: Sig[]): number | undefined => {
    const given = sigs.filter((s) => s.keyFlags && s.keyFlags.length > 0);
    return given.length ? given.reduce((f, s) => f | s.keyFlags![0]!, 0) : undefined;
  };
  const k = key as unknown as { users: Array<{ selfCertifications: Sig[] }>; subkeys: Array<{ bindingSignatures: Sig[] }> };
  const all = [flagsOf(k.users.flatMap((u) => u.selfCertifications)), ...k.subkeys.map((s) => flagsOf(s.bindingSignatures))];
  if (all.some((f) => f === undefined)) return undefined; // a key without flags: openpgp decides by algorithm; not refused here
  const can = (bits: number) => all.some((f) => (f! & bits) !== 0);
  if (!can(0x02)) return 'has no usable signing or encryption key: no key in it may sign (its packets could never be verified)';
  if (!can(0x0c)) return 'has no usable signing or encryption key: no key in it may encrypt';
  return undefined;
}

/**
 * A synchronous view of keyProblem for the hot path (each RCPT, each packet written): the answer of
 * the last check, which is redone in the background when older than RECHECK_MS. `initial` holds the
 * answers found at load time (exact at start-up).
 */
export function createUsabilityView(
  keys: ReadonlyMap<string, openpgp.PublicKey>,
  initial: ReadonlyMap<string, string | undefined>,
  clock: () => number = Date.now,
): (fingerprint: string) => string | undefined {
  const state = new Map<string, { problem: string | undefined; at: number; checking: boolean }>();
  const start = clock();
  for (const fpr of keys.keys()) state.set(fpr, { problem: initial.get(fpr), at: start, checking: false });
  return (fingerprint) => {
    const s = state.get(fingerprint);
    if (!s) return undefined; // not a peer: routing refuses it on its own terms
    const now = clock();
    if (!s.checking && now - s.at > RECHECK_MS) {
      s.checking = true;
      keyProblem(keys.get(fingerprint)!, new Date(now)).then(
        (problem) => Object.assign(s, { problem, at: now, checking: false }),
        () => Object.assign(s, { checking: false, at: now }), // keyProblem catches openpgp's errors; keep the last answer
      );
    }
    return s.problem;
  };
}

/**
 * The configured peers whose key could not be used at load, with what an admin reads about each at
 * start-up (`run`'s log, `check`'s warnings).
 */
export function unusablePeers(peers: ReadonlyArray<{ name: string; fingerprint: string; key: string }>, keyring: Keyring): Array<{ peer: string; fingerprint: string; file: string; problem: string; advice: string }> {
  return peers.flatMap((p) => {
    const problem = keyring.peers.get(p.fingerprint.toLowerCase())?.problemAtLoad;
    if (!problem) return [];
    const fix = /revoked/.test(problem)
      ? `until it is replaced: a revocation is final ("ferrypost peer remove ${p.name}", then "peer add" that node's new key)`
      : `until its renewed key is installed ("ferrypost peer update ${p.name} FILE" with that node's "ferrypost key export")`;
    const advice = `peer ${p.name}: its key ${problem}; mail for it is deferred (450 4.7.5) ${fix} and ferrypost is restarted; ` +
      'its packets signed while the key was valid are still delivered';
    return [{ peer: p.name, fingerprint: p.fingerprint, file: p.key, problem, advice }];
  });
}

/**
 * What an admin reads when this node's own key advertises SEIPD v2 / AEAD (features 0x08 or 0x02):
 * a key made outside ferrypost. Senders that follow it (GnuPG 2.4, Sequoia; ferrypost before it
 * wrote SEIPD v1 to every key) write packets this node refuses (it decodes SEIPD v1 only:
 * docs/packet-format.md). undefined for keys made by `ferrypost init`.
 */
export async function selfKeyAdvice(keyring: Keyring): Promise<string | undefined> {
  const features = (await keyring.self.publicKey.getPrimaryUser().catch(() => undefined))?.selfCertification.features?.[0] ?? 0;
  if ((features & 0x0a) === 0) return undefined;
  return `this node's key advertises SEIPD v2 / AEAD encryption (features 0x${features.toString(16).padStart(2, '0')}): ` +
    'senders that follow it (GnuPG 2.4, Sequoia) write packets this node refuses (it decodes SEIPD v1 only); ' +
    'use a node key made by "ferrypost init", or one that advertises SEIPD v1 only, and give the peers its public key';
}
