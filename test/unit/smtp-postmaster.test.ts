// RFC 5321 §4.5.1: RCPT TO:<Postmaster> (any case, no domain) must be accepted. It is this host's
// postmaster: the listener qualifies it with its host name, as Postfix appends @$myorigin (by default
// $myhostname), and routes and carries it as that address.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeFile, listFiles } from './send-fixture.js';
import { listenerConfig, listenerHarness, rawClient } from './smtp-fixture.js';

const h = listenerHarness();

describe('RCPT TO:<Postmaster>', () => {
  it('is accepted as postmaster@<hostname>, in any case, and the packet carries the qualified address', async () => {
    // gw.example.com routes to carol (*.example.com).
    const c = await rawClient((await h.start(listenerConfig(), { hostname: 'gw.example.com' })).port);
    await c.cmd('EHLO client.test');
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toBe('250 2.1.0 Accepted');
    expect(await c.cmd('RCPT TO:<Postmaster>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('RCPT TO:<POSTMASTER>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('DATA')).toMatch(/^354 /);
    expect(await c.cmd('Subject: to the postmaster\r\n\r\nhello\r\n.')).toMatch(/^250 2\.0\.0 Ok: queued as [a-z2-7]{26}$/);
    c.close();

    const files = listFiles(h.w.tree).filter((f) => f.endsWith('.pgp'));
    expect(files).toHaveLength(1);
    expect(files[0]!.startsWith(h.w.carol.fpr)).toBe(true);
    const { header } = await decodeFile(path.join(h.w.tree, files[0]!), h.w.carol, h.w.self);
    // The client's spelling of the local part is kept (as Postfix does); both name one mailbox, and
    // enqueue drops the second as routing spells it.
    expect(header.envelope.from).toBe('a@example.org');
    expect(header.envelope.to.map((a) => a.toLowerCase())).toEqual(['postmaster@gw.example.com']);
  });

  it('with no route for postmaster@<hostname>: 550 5.1.2 naming the qualified address; other bare names stay 501', async () => {
    const c = await rawClient((await h.start(listenerConfig())).port); // mx.test: no peer, no default
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    expect(await c.cmd('RCPT TO:<postmaster>')).toBe('550 5.1.2 <postmaster@mx.test>: Recipient address rejected: no route to a ferrypost node');
    // smtp-server itself lets no other domainless recipient through.
    expect(await c.cmd('RCPT TO:<root>')).toBe('501 5.1.3 Error: Bad recipient address syntax');
    expect(await c.cmd('RCPT TO:<postmaster2>')).toBe('501 5.1.3 Error: Bad recipient address syntax');
    c.close();
  });

  it('a host name without a dot is not used to qualify it (postmaster@vm would take a * or default route away): 550 5.1.1 naming smtp.hostname', async () => {
    // gw.example.com would route; "vm" (the machine's own name when smtp.hostname is unset) must not.
    const c = await rawClient((await h.start(listenerConfig(), { hostname: 'vm' })).port);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    expect(await c.cmd('RCPT TO:<Postmaster>')).toBe("550 5.1.1 <Postmaster>: Recipient address rejected: this host's name (vm) is not a fully qualified domain; set smtp.hostname");
    c.close();
  });

  it('is no way around relay control: an untrusted client without AUTH is refused', async () => {
    const c = await rawClient((await h.start(listenerConfig({ allowed_networks: ['10.0.0.0/8'] }), { hostname: 'gw.example.com' })).port);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    expect(await c.cmd('RCPT TO:<Postmaster>')).toBe('554 5.7.1 <Postmaster@gw.example.com>: Relay access denied');
    c.close();
  });
});
