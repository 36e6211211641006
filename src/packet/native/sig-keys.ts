/**
 * Ed25519 (EdDSA legacy, v4) key material for the native signature path, derived ONCE per openpgp key
 * packet as node:crypto KeyObjects (openpgp's WebCrypto path re-imports the raw key on every packet),
 * and the signing-key validity openpgp would decide, cached per key and time interval.
 * Validity: openpgp's getSigningKey(keyID, date) only compares `date` with times written in the key
 * (key and signature creation, signature and key expiry). Between two consecutive such times the answer
 * cannot change, so it is asked once per interval and reused: exact, and a key that expires while the
 * daemon runs is handled because each packet is checked at its own signature time. The answers are
 * dropped after REFRESH_MS anyway, in case a key object is changed in place (e.g. a revocation merged).
 * Fails: never throws for "not ours" keys; ed25519Of returns undefined (the caller falls back to openpgp).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import * as openpgp from 'openpgp';

export const EDDSA_LEGACY = 22;
/** OID 1.3.6.1.4.1.11591.15.1 (Ed25519 for EdDSA legacy), DER body. */
const ED25519_OID_HEX = '2b06010401da470f01';
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

type KeyPacket = openpgp.PublicKeyPacket | openpgp.SecretKeyPacket | openpgp.PublicSubkeyPacket | openpgp.SecretSubkeyPacket;

interface PacketFields {
  version: number;
  algorithm: number;
  publicParams: { oid?: { toHex(): string }; Q?: Uint8Array };
  privateParams?: { seed?: Uint8Array } | null;
}

const publicKeys = new WeakMap<object, KeyObject | null>();
const privateKeys = new WeakMap<object, KeyObject | null>();

/** The Ed25519 public KeyObject of a v4 EdDSA-legacy key packet, or undefined for anything else. */
export function ed25519PublicOf(packet: KeyPacket): KeyObject | undefined {
  let k = publicKeys.get(packet);
  if (k === undefined) {
    const raw = rawPublic(packet as unknown as PacketFields);
    k = raw ? createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' }) : null;
    publicKeys.set(packet, k);
  }
  return k ?? undefined;
}

/** The Ed25519 private KeyObject of a decrypted v4 EdDSA-legacy secret key packet whose seed matches Q. */
export function ed25519PrivateOf(packet: KeyPacket): KeyObject | undefined {
  let k = privateKeys.get(packet);
  if (k === undefined) {
    k = derivePrivate(packet as unknown as PacketFields) ?? null;
    // Not cached while still encrypted: it may be decrypted later.
    if (k !== null || (packet as unknown as PacketFields).privateParams) privateKeys.set(packet, k);
  }
  return k ?? undefined;
}

function rawPublic(p: PacketFields): Uint8Array | undefined {
  if (p.version !== 4 || p.algorithm !== EDDSA_LEGACY || p.publicParams.oid?.toHex() !== ED25519_OID_HEX) return undefined;
  const q = p.publicParams.Q;
  if (!q || q.length !== 33 || q[0] !== 0x40) return undefined; // 0x40: native point encoding
  return q.subarray(1);
}

function derivePrivate(p: PacketFields): KeyObject | undefined {
  const pub = rawPublic(p);
  const seed = p.privateParams?.seed;
  if (!pub || !seed || seed.length !== 32) return undefined;
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const derived = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
  return Buffer.from(pub).equals(derived) ? key : undefined; // a corrupt key stays openpgp's problem
}

/** What openpgp's getSigningKey(keyID, date) returned, for one interval of dates. */
export type Validity = { ok: true; key: openpgp.Key | openpgp.Subkey } | { ok: false; error: Error };

/** How long openpgp's answers about one key object are reused. */
export const REFRESH_MS = 10 * 60_000;

interface ValidityCache {
  builtAt: number;
  breaks: number[]; // sorted, unique, ms
  byInterval: Map<string, Promise<Validity>>;
}

const validity = new WeakMap<openpgp.Key, ValidityCache>();

/**
 * openpgp's answer to "may `keyID` of `key` sign at `date`?" (getSigningKey plus verify's "key is newer
 * than the signature"), asked once per interval of dates in which it cannot change.
 */
export function signingKeyAt(key: openpgp.Key, keyID: Parameters<openpgp.Key['getKeys']>[0] | null, date: Date): Promise<Validity> {
  let cache = validity.get(key);
  const now = Date.now();
  if (!cache || now - cache.builtAt >= REFRESH_MS) {
    cache = { builtAt: now, breaks: breakpoints(key), byInterval: new Map() };
    validity.set(key, cache);
  }
  const t = date.getTime();
  let i = 0;
  while (i < cache.breaks.length && cache.breaks[i]! <= t) i++;
  const id = `${keyID ? keyID.toHex() : '*'}:${i}`;
  let v = cache.byInterval.get(id);
  if (!v) {
    v = ask(key, keyID, date);
    cache.byInterval.set(id, v);
  }
  return v;
}

async function ask(key: openpgp.Key, keyID: Parameters<openpgp.Key['getKeys']>[0] | null, date: Date): Promise<Validity> {
  try {
    const k = await key.getSigningKey(keyID ?? undefined, date);
    if (k.getCreationTime() > date) throw new Error('Key is newer than the signature');
    return { ok: true, key: k };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
  }
}

interface SigFields {
  created: Date | null;
  signatureNeverExpires: boolean;
  signatureExpirationTime: number | null;
  keyExpirationTime: number | null;
  embeddedSignature: SigFields | null;
}

/** Every time written in the key at which the answer of getSigningKey may change. */
function breakpoints(key: openpgp.Key): number[] {
  const keyTimes = [key.keyPacket.created, ...key.subkeys.map((s) => s.keyPacket.created)].map((d) => d.getTime());
  const out = new Set<number>(keyTimes);
  const addSig = (s: SigFields | null): void => {
    if (!s?.created) return;
    const c = s.created.getTime();
    out.add(c);
    if (!s.signatureNeverExpires && s.signatureExpirationTime) out.add(c + s.signatureExpirationTime * 1000);
    if (s.keyExpirationTime) for (const k of keyTimes) out.add(k + s.keyExpirationTime * 1000);
    addSig(s.embeddedSignature);
  };
  const sigs = (list: unknown[]): void => list.forEach((s) => addSig(s as SigFields));
  const k = key as unknown as { directSignatures: unknown[]; revocationSignatures: unknown[] };
  sigs(k.directSignatures);
  sigs(k.revocationSignatures);
  for (const u of key.users) {
    sigs(u.selfCertifications);
    sigs(u.revocationSignatures);
  }
  for (const s of key.subkeys) {
    sigs(s.bindingSignatures);
    sigs(s.revocationSignatures);
  }
  return [...out].filter(Number.isFinite).sort((a, b) => a - b);
}
