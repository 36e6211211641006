/** keys/usability.ts: the answer `peer add`, start-up and each RCPT share; a key expiring while the daemon runs. */
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { generateNodeKey } from '../../src/keys/generate.js';
import type { Keyring } from '../../src/keys/keyring.js';
import { createUsabilityView, keyProblem, RECHECK_MS, selfKeyAdvice } from '../../src/keys/usability.js';

const gen = (keyExpirationTime = 0) => openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'p' }], keyExpirationTime, format: 'object' });

describe('keyProblem', () => {
  it('usable, expired (with the date), revoked', async () => {
    const g = await gen(1000);
    const expires = (await g.publicKey.getExpirationTime()) as Date;
    expect(await keyProblem(g.publicKey)).toBeUndefined();
    expect(await keyProblem(g.publicKey, new Date(expires.getTime() + 1000))).toBe(`expired on ${expires.toISOString()}`);
    const { publicKey } = await openpgp.revokeKey({ key: g.privateKey, format: 'object' });
    expect(await keyProblem(publicKey)).toBe('is revoked');
  });

  it('an expired encryption subkey alone makes the key unusable', async () => {
    const g = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'p' }], subkeys: [{ keyExpirationTime: 1000 }], format: 'object' });
    expect(await keyProblem(g.publicKey)).toBeUndefined();
    expect(await keyProblem(g.publicKey, new Date(Date.now() + 2_000_000))).toMatch(/^has no usable signing or encryption key/);
  });
});

describe('createUsabilityView', () => {
  it('answers from load time, rechecks after RECHECK_MS in the background, unknown fingerprints → undefined', async () => {
    const g = await gen(1000);
    const fpr = g.publicKey.getFingerprint().toLowerCase();
    // The clock starts 1,000 s before the key's own expiry (openpgp rounds its creation time down to
    // the second: counting from Date.now() lost up to a second whenever generation crossed one).
    const expires = ((await g.publicKey.getExpirationTime()) as Date).getTime();
    let t = expires - 1_000_000;
    const view = createUsabilityView(new Map([[fpr, g.publicKey]]), new Map([[fpr, undefined]]), () => t);
    expect(view(fpr)).toBeUndefined();
    expect(view('0'.repeat(40))).toBeUndefined();
    t += 999_000; // still valid: the recheck this starts finds nothing
    expect(view(fpr)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 200));
    expect(view(fpr)).toBeUndefined();
    t += 2_000 + RECHECK_MS; // expired now: the first call still answers from before and starts a recheck
    expect(view(fpr)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 200));
    expect(view(fpr)).toMatch(/^expired on /);
  });

  it('keeps a problem found at load time', async () => {
    const g = await gen();
    const fpr = g.publicKey.getFingerprint().toLowerCase();
    const view = createUsabilityView(new Map([[fpr, g.publicKey]]), new Map([[fpr, 'is revoked']]));
    expect(view(fpr)).toBe('is revoked');
  });
});

describe('selfKeyAdvice', () => {
  const ring = (publicKey: openpgp.PublicKey) => ({ self: { publicKey } }) as unknown as Keyring;
  it('says nothing for a key made by ferrypost init; warns for one that advertises SEIPD v2 (this node would refuse what follows it)', async () => {
    const own = await openpgp.readKey({ armoredKey: (await generateNodeKey({ name: 'a' })).publicArmored });
    expect(await selfKeyAdvice(ring(own))).toBeUndefined();
    const aead = await openpgp.generateKey({ type: 'ecc', userIDs: [{ name: 'x' }], format: 'object', config: { aeadProtect: true } });
    expect(await selfKeyAdvice(ring(aead.publicKey))).toMatch(/^this node's key advertises SEIPD v2 \/ AEAD encryption \(features 0x09\): .*use a node key made by "ferrypost init"/);
  });
});
