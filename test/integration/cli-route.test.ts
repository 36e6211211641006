/**
 * `ferrypost route` (sendmail -bv): which peer each address goes to and by which rule, through the
 * real CLI on nodes made by init and peer add; 65 for bad syntax, 67 for no route.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, nodePair, tmpdir, type TestNode } from '../helpers/node.js';

let a: TestNode;
let b: TestNode;

let base: string;
beforeEach(() => {
  base = tmpdir('fp-route-');
  ({ a, b } = nodePair(base, { offlineDomain: 'cabin.test' }));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

describe('ferrypost route', () => {
  it('names the peer, its fingerprint and the rule, for each address; exit 0 when all route', () => {
    const r = cli(['route', 'kate@cabin.test', '<u@boat.cabin.test>'], { config: b.config });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^<kate@cabin\.test> -> a \(([0-9a-f]{40})\) by domain cabin\.test$/);
    expect(lines[1]).toMatch(/^<u@boat\.cabin\.test> -> a \([0-9a-f]{40}\) by subdomains \*\.cabin\.test$/);
    // the fingerprint is the peer's, as b's peer list shows it
    const shown = /([0-9a-f]{40})/.exec(lines[0]!)![1]!;
    expect(cli(['peer', 'list'], { config: b.config }).stdout.replace(/\s+/g, '').toLowerCase()).toContain(shown);
    expect(cli(['route', 'friend@example.org'], { config: a.config }).stdout).toMatch(/^<friend@example\.org> -> b \([0-9a-f]{40}\) by default\n$/);
  });

  it('no route: 67 saying why; bad syntax: 65 (over 67), every address still answered', () => {
    const none = cli(['route', 'friend@example.org'], { config: b.config });
    expect(none.status).toBe(67);
    expect(none.stdout).toBe('<friend@example.org>: no route to a node (no peer\'s mail patterns match it and no peer is the default; see "ferrypost peer list")\n');
    const mixed = cli(['route', 'friend@example.org', 'not an address', 'kate@cabin.test'], { config: b.config });
    expect(mixed.status).toBe(65);
    expect(mixed.stdout.split('\n')).toEqual([
      expect.stringMatching(/^<friend@example\.org>: no route/),
      '<not an address>: bad address syntax (missing domain); use user@domain',
      expect.stringMatching(/^<kate@cabin\.test> -> a /),
      '',
    ]);
    expect(cli(['route'], { config: b.config }).status).toBe(64);
  });

  it('a domain that is not a valid name says so; a peer whose key is revoked is shown as deferred, 75', async () => {
    const idn = cli(['route', 'u@xn--\u00fc.org'], { config: a.config });
    expect(idn.status).toBe(67);
    expect(idn.stdout).toMatch(/no route to a node \(its domain is not a valid domain name/);

    const privateKey = await openpgp.readPrivateKey({ armoredKey: readFileSync(path.join(a.dir, 'keys', 'node.key'), 'utf8') });
    const { publicKey } = await openpgp.revokeKey({ key: privateKey, reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyCompromised }, format: 'armored' });
    writeFileSync(path.join(b.dir, 'keys', 'peers', 'a.asc'), publicKey);
    const r = cli(['route', 'kate@cabin.test', 'friend@example.org'], { config: b.config });
    expect(r.status).toBe(67); // no route outranks deferred, as bad syntax outranks no route
    expect(r.stdout).toMatch(/^<kate@cabin\.test> -> a \([0-9a-f]{40}\) by domain cabin\.test, but deferred: its key is revoked\n/);
    expect(cli(['route', 'kate@cabin.test'], { config: b.config }).status).toBe(75);
  });
});
