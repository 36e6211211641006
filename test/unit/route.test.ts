import { describe, expect, it } from 'vitest';
import { createRouter, validateAddress } from '../../src/route/router.js';
import { isFerryError } from '../../src/errors/index.js';
import { matchesRecipientPattern } from '../../src/route/pattern.js';
import { mailPattern } from '../../src/config/schema.js';

const fpr = (c: string) => c.repeat(40);

const peers = [
  { name: 'alice', fingerprint: fpr('a'), mail: ['boss@example.org', 'example.net'], default: false },
  { name: 'bob', fingerprint: fpr('b'), mail: ['example.org', '*.example.org'], default: false },
  { name: 'carol', fingerprint: fpr('c'), mail: ['*.deep.example.org', 'x.example.com'], default: false },
  { name: 'dave', fingerprint: fpr('d'), mail: ['*'], default: false },
  { name: 'erin', fingerprint: fpr('e'), mail: [], default: true },
];

describe('createRouter precedence', () => {
  const r = createRouter(peers);
  const cases: Array<[string, string | undefined]> = [
    ['boss@example.org', 'alice'], // exact address beats exact domain
    ['BOSS@Example.ORG', 'alice'], // case-insensitive, local part too
    ['<boss@example.org>', 'alice'],
    ['other@example.org', 'bob'], // exact domain
    ['other@EXAMPLE.org.', 'bob'], // trailing dot ignored
    ['u@sub.example.org', 'bob'], // *.example.org
    ['u@a.b.example.org', 'bob'],
    ['u@deep.example.org', 'bob'], // *.deep.example.org does not match deep.example.org itself
    ['u@x.deep.example.org', 'carol'], // longest suffix wins
    ['u@y.x.deep.example.org', 'carol'],
    ['u@example.net', 'alice'],
    ['u@sub.example.net', 'dave'], // no *.example.net: falls to *
    ['u@x.example.com', 'carol'],
    ['u@elsewhere.test', 'dave'],
    ['"odd@local"@example.org', 'bob'], // last @ separates the domain
    ['root', 'erin'], // no @: default only
    ['u@[192.0.2.1]', 'erin'], // address literal: default only
    ['@example.org', 'erin'],
    ['u@', 'erin'],
  ];
  it.each(cases)('%s → %s', (addr, want) => {
    expect(r.route(addr)?.name).toBe(want);
  });

  it('returns the fingerprint with the name', () => {
    expect(r.route('boss@example.org')).toEqual({ name: 'alice', fingerprint: fpr('a') });
  });

  it('explain names the rule that chose the peer, in canonical form (ferrypost route)', () => {
    const via: Array<[string, string, string]> = [
      ['BOSS@Example.ORG', 'alice', 'address boss@example.org'],
      ['other@EXAMPLE.org.', 'bob', 'domain example.org'],
      ['u@a.b.example.org', 'bob', 'subdomains *.example.org'],
      ['u@y.x.deep.example.org', 'carol', 'subdomains *.deep.example.org'],
      ['u@elsewhere.test', 'dave', '*'],
      ['root', 'erin', 'default'],
      ['u@[192.0.2.1]', 'erin', 'default'],
    ];
    for (const [addr, name, rule] of via) {
      expect(r.explain(addr), addr).toEqual({ target: { name, fingerprint: fpr(name[0]!) }, via: rule });
      expect(r.route(addr), addr).toEqual(r.explain(addr)!.target);
    }
    expect(createRouter([peers[0]!]).explain('u@elsewhere.test')).toBeUndefined();
  });
});

describe('createRouter without * or default', () => {
  const r = createRouter([
    { name: 'bob', fingerprint: fpr('b'), mail: ['example.org'], default: false },
    { name: 'zed', fingerprint: fpr('f'), mail: ['example.org', '*.sub.test'], default: false },
  ]);
  it('has no route for unknown domains, addresses without @ and literals', () => {
    expect(r.route('u@example.com')).toBeUndefined();
    expect(r.route('root')).toBeUndefined();
    expect(r.route('u@[127.0.0.1]')).toBeUndefined();
    expect(r.route('u@sub.test')).toBeUndefined();
  });
  it('the first peer listed wins a duplicated pattern', () => {
    expect(r.route('u@example.org')?.name).toBe('bob');
    expect(r.route('u@a.sub.test')?.name).toBe('zed');
  });
  it('an empty router routes nothing', () => {
    expect(createRouter([]).route('u@example.org')).toBeUndefined();
  });
  it('* beats default, default catches the rest', () => {
    const r2 = createRouter([
      { name: 'd', fingerprint: fpr('d'), mail: [], default: true },
      { name: 's', fingerprint: fpr('5'), mail: ['*'], default: false },
    ]);
    expect(r2.route('u@any.where')?.name).toBe('s');
    expect(r2.route('nodomain')?.name).toBe('d');
  });
});

describe('validateAddress', () => {
  const good = [
    'user@example.org',
    'first.last+tag@sub.example.org',
    "o'brien@example.org",
    'user@example.org.',
    '<user@example.org>',
    'δοκιμή@παράδειγμα.δοκιμή', // SMTPUTF8
    '用户@例子.广告',
    '"with space"@example.org',
    'user@[192.0.2.1]',
    'user@[IPv6:2001:db8::1]',
    'a@b',
  ];
  it.each(good)('accepts %s', (a) => {
    expect(validateAddress(a)).toBe(a.replace(/^<(.*)>$/, '$1'));
  });

  const bad: Array<[string, RegExp]> = [
    ['', /empty address/],
    ['<>', /empty address/],
    ['user', /missing domain/],
    ['user@', /missing domain/],
    ['@example.org', /empty local part/],
    ['us er@example.org', /space/],
    ['user@exa mple.org', /space/],
    ['user\t@example.org', /space/],
    ['user@example..org', /malformed domain/],
    ['user@-example.org', /malformed domain/],
    ['user@example_org.org', /malformed domain/],
    ['.user@example.org', /malformed local part/],
    ['us..er@example.org', /malformed local part/],
    ['us(er@example.org', /malformed local part/],
    ['"unterminated@example.org', /quoted/],
    ['user@[300.1.1', /address literal/],
    [`${'x'.repeat(65)}@example.org`, /64 octets/],
    ['user@example.org\r\nRCPT TO:<x@y>', /space or control/],
  ];
  it.each(bad)('rejects %j', (a, why) => {
    let err: unknown;
    try {
      validateAddress(a);
    } catch (e) {
      err = e;
    }
    expect(isFerryError(err, 'BAD_ADDRESS')).toBe(true);
    expect((err as Error).message).toMatch(why);
  });
});

describe('one spelling per mailbox (route/canonical.ts)', () => {
  const r = createRouter([
    { name: 'munich', fingerprint: fpr('m'), mail: ['xn--mnchen-3ya.example', 'boss@example.org', 'kate@example.org'], default: false },
    { name: 'bob', fingerprint: fpr('b'), mail: ['example.org', '*.xn--bcher-kva.example'], default: false },
    { name: 'home', fingerprint: fpr('h'), mail: [], default: true },
  ]);
  const cases: Array<[string, string | undefined]> = [
    ['u@xn--mnchen-3ya.example', 'munich'],
    ['u@münchen.example', 'munich'], // the UTF-8 spelling of the same domain (was: the default peer)
    ['u@MÜNCHEN.example.', 'munich'],
    ['u@x.bücher.example', 'bob'],
    ['"boss"@example.org', 'munich'], // a quoted local part that needs no quotes is the same mailbox
    ['"bo\\ss"@example.org', 'munich'],
    ['"b oss"@example.org', 'bob'], // really quoted: another mailbox, the domain rule
    ['u@ｅxample.org', 'bob'], // full-width letters fold to ASCII (IDNA)
    ['u@xn--ü.example', undefined], // not a valid IDNA name: no node is meant
    ['BOSS@Example.ORG', 'munich'], // ASCII case folds
    ['KATE@example.org', 'munich'],
    ['\u212Aate@example.org', 'bob'], // KELVIN SIGN is not "k": not kate's rule (Unicode lowercasing made it "kate")
  ];
  for (const [addr, want] of cases) {
    it(`${addr} → ${want ?? 'no route'}`, () => expect(r.route(addr)?.name).toBe(want));
  }

  it('the Maildir recipients filter compares the same way', () => {
    expect(matchesRecipientPattern('u@münchen.example', 'xn--mnchen-3ya.example')).toBe(true);
    expect(matchesRecipientPattern('"boss"@example.org.', 'boss@example.org')).toBe(true);
    expect(matchesRecipientPattern('u@example.org.', 'example.org')).toBe(true);
    expect(matchesRecipientPattern('u@a.bücher.example', '*.xn--bcher-kva.example')).toBe(true);
    expect(matchesRecipientPattern('foo.example.org', '*.example.org')).toBe(false); // no '@': not a mailbox
    expect(matchesRecipientPattern('u@xexample.org', '*.example.org')).toBe(false);
    expect(matchesRecipientPattern('\u212Aate@x.org', 'kate@x.org')).toBe(false);
    expect(matchesRecipientPattern('KATE@X.org', 'kate@x.org')).toBe(true);
  });

  it('the config stores an internationalized domain in punycode', () => {
    expect(mailPattern.parse('MÜNCHEN.example')).toBe('xn--mnchen-3ya.example');
    expect(mailPattern.parse('*.bücher.example')).toBe('*.xn--bcher-kva.example');
    expect(mailPattern.parse('boss@münchen.example')).toBe('boss@xn--mnchen-3ya.example');
    expect(mailPattern.parse('example.org')).toBe('example.org');
    expect(mailPattern.parse('Boss@Example.ORG')).toBe('boss@example.org');
  });

  it('the config refuses patterns that could never match', () => {
    expect(mailPattern.safeParse('.lab.example.org').error?.issues[0]?.message).toMatch(/write \*\.example\.org/);
    for (const bad of ['*..', '-', 'a..example.org', 'a-.example.org', 'u@-x.example', '*.']) expect(mailPattern.safeParse(bad).success).toBe(false);
    for (const ok of ['*', 'example.org.', 'xn--mnchen-3ya.example', 'a-b.example.org', 'first.last@example.org', '*.x.example']) expect(mailPattern.safeParse(ok).success).toBe(true);
  });
});
