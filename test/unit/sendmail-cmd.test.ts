import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSendmailArgs, runSendmail } from '../../src/cli/sendmail.js';
import { FerryError } from '../../src/errors/index.js';
import type { MailEnvelope } from '../../src/packet/header.js';
import { createEnqueue } from '../../src/send/enqueue.js';
import type { Enqueue } from '../../src/send/types.js';
import { decodeFile, listFiles, makeWorld, type World } from './send-fixture.js';

function capture(): { stream: Writable; text: () => string } {
  let out = '';
  return {
    stream: new Writable({
      write(c: Buffer, _e, cb) {
        out += c.toString();
        cb();
      },
    }),
    text: () => out,
  };
}

/** Records what it was given, reading the message to the end like the real one. */
function recorder(fail?: unknown): Enqueue & { calls: Array<{ env: MailEnvelope; bytes: Buffer }> } {
  const calls: Array<{ env: MailEnvelope; bytes: Buffer }> = [];
  return {
    calls,
    async submit(env, message) {
      const chunks: Buffer[] = [];
      if (message instanceof Uint8Array) chunks.push(Buffer.from(message));
      else for await (const c of message) chunks.push(c as Buffer);
      calls.push({ env, bytes: Buffer.concat(chunks) });
      if (fail) throw fail;
      return [];
    },
  };
}

describe('parseSendmailArgs', () => {
  const table: Array<[string[], string | undefined, string[]]> = [
    [['-i', '-f', 'a@x.org', '--', 'b@y.org'], 'a@x.org', ['b@y.org']],
    [['-fa@x.org', 'b@y.org', 'c@y.org'], 'a@x.org', ['b@y.org', 'c@y.org']],
    [['-r', 'a@x.org', '-oi', 'b@y.org'], 'a@x.org', ['b@y.org']],
    [['-ra@x.org', '-oem', '-B', '8BITMIME', '-N', 'never', 'b@y.org'], 'a@x.org', ['b@y.org']],
    [['-BBINARYMIME', '-NSUCCESS,FAILURE', '-F', 'Full Name', '-Fx', 'b@y.org'], undefined, ['b@y.org']],
    [['-i', '-bm', '-v', 'b@y.org, c@y.org'], undefined, ['b@y.org', 'c@y.org']],
    [['-if', 'a@x.org', 'b@y.org'], 'a@x.org', ['b@y.org']], // cluster: -i then -f with the next arg
    [['b@y.org', '-f', 'a@x.org'], 'a@x.org', ['b@y.org']], // options after recipients (getopt permutes)
    [['--', '-f', 'odd@y.org'], undefined, ['-f', 'odd@y.org']],
    [['-f', '<>', 'b@y.org'], '<>', ['b@y.org']],
    [['-i'], undefined, []],
    // commas split recipients, but not inside a quoted local part or <...>
    [['"a,b"@example.net, c@y.org'], undefined, ['"a,b"@example.net', 'c@y.org']],
    [['<c@y.org>,"x\\",y"@z.org'], undefined, ['<c@y.org>', '"x\\",y"@z.org']],
  ];
  it.each(table)('%j', (argv, sender, rcpts) => {
    expect(parseSendmailArgs(argv)).toEqual({ sender, recipients: rcpts });
  });

  it('-C FILE and -CFILE name the config, anywhere among the options (the last one wins)', () => {
    expect(parseSendmailArgs(['-C', '/etc/fp.yaml', '-f', 'a@x.org', 'b@y.org']).config).toBe('/etc/fp.yaml');
    expect(parseSendmailArgs(['-i', '-C/etc/fp.yaml', 'b@y.org'])).toEqual({ sender: undefined, recipients: ['b@y.org'], config: '/etc/fp.yaml' });
    expect(parseSendmailArgs(['b@y.org', '-iC', 'x.yaml']).config).toBe('x.yaml');
    expect(parseSendmailArgs(['-C', 'a.yaml', '-C', 'b.yaml', 'b@y.org']).config).toBe('b.yaml');
    expect(parseSendmailArgs(['--', '-C', 'x.yaml']).config).toBeUndefined();
  });
});

describe('runSendmail', () => {
  const run = async (argv: string[], input = 'Subject: x\n\nbody\n', enq = recorder()) => {
    const err = capture();
    const code = await runSendmail(argv, Readable.from([Buffer.from(input)]), { enqueue: enq, stderr: err.stream, defaultSender: 'me@host.test' });
    return { code, stderr: err.text(), calls: enq.calls };
  };

  it.each([
    [['-t'], /-t .*not supported/, 64],
    [['-t', 'b@y.org'], /-t .*not supported/, 64],
    [['-i'], /no recipients given/, 64],
    [['-x', 'b@y.org'], /unknown option -x/, 64],
    [['-f'], /option -f needs a value/, 64],
    [['-bp'], /-bp is not supported/, 64],
    [['-q'], /-q .*"ferrypost flush" retries/, 64],
    // Bad address syntax is EX_DATAERR, as sendmail exits (Postfix pipe(8) bounces 64 and 65 alike).
    [['not an address'], /bad address syntax/, 65],
    [['-f', 'bad sender@x.org', 'b@y.org'], /bad address syntax/, 65],
    [['b@'], /missing domain/, 65],
  ])('%j → %s', async (argv, msg, code = 64) => {
    const r = await run(argv);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(/^ferrypost sendmail: .* \(.+\)\n$/);
    expect(r.stderr).toMatch(msg);
    expect(r.calls).toEqual([]);
  });

  it('passes the envelope and the stdin bytes unchanged (lone dot, bare LF, CR, 8-bit)', async () => {
    const input = Buffer.from('Subject: caf\xe9\n\nline\r\n.\n..two\r.\nend without newline', 'latin1');
    const enq = recorder();
    const err = capture();
    const stdin = new PassThrough();
    const p = runSendmail(['-oi', '-f', 'a@x.org', '--', 'b@y.org', 'c@y.org'], stdin, { enqueue: enq, stderr: err.stream });
    stdin.write(input.subarray(0, 7));
    stdin.end(input.subarray(7));
    expect(await p).toBe(0);
    expect(err.text()).toBe('');
    expect(enq.calls).toHaveLength(1);
    expect(enq.calls[0]!.env).toEqual({ from: 'a@x.org', to: ['b@y.org', 'c@y.org'] });
    expect(enq.calls[0]!.bytes.equals(input)).toBe(true);
  });

  it('null sender with -f "" or -f "<>"; default sender otherwise', async () => {
    expect((await run(['-f', '', 'b@y.org'])).calls[0]!.env.from).toBe('');
    expect((await run(['-f<>', 'b@y.org'])).calls[0]!.env.from).toBe('');
    expect((await run(['b@y.org'])).calls[0]!.env.from).toBe('me@host.test');
  });

  it('a quoted local part with a comma is one recipient', async () => {
    const r = await run(['--', '"a,b"@example.net']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.calls[0]!.env.to).toEqual(['"a,b"@example.net']);
  });

  it.each([
    [new FerryError('NO_ROUTE', '<z@nowhere.test>: no route to a node'), 67, /no route to a node \(no peer/],
    [new FerryError('DISK_FULL', 'disk full'), 75, /disk full \(.*try again later\)/],
    [new FerryError('STORE_FAILED', 'fsync failed'), 75, /fsync failed \(temporary failure/],
    [new Error('surprise'), 75, /surprise/],
  ])('enqueue failure %s → exit %i', async (failure, code, msg) => {
    const r = await run(['b@y.org'], 'x', recorder(failure));
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(msg);
  });
});

describe('runSendmail with the real Enqueue', () => {
  let w: World;
  beforeAll(async () => {
    w = await makeWorld();
  });
  afterAll(() => w.cleanup());

  it('writes a packet whose payload is the stdin bytes; NO_ROUTE exits 67 and writes nothing', async () => {
    const enqueue = createEnqueue({ keyring: w.keyring, router: w.router, tree: w.tree, spoolDir: w.spool, expiryMs: 3_600_000, compressionLevel: 1, memorySpoolLimit: 64, gcPacer: undefined });
    const message = readFileSync(path.resolve('fixtures/mail/dot-lines.eml'));
    const err = capture();
    expect(await runSendmail(['-i', '-f', 'a@example.org', 'b@example.net'], Readable.from([message]), { enqueue, stderr: err.stream })).toBe(0);
    const files = listFiles(w.tree);
    expect(files).toHaveLength(1);
    const d = await decodeFile(path.join(w.tree, files[0]!), w.bob, w.self);
    expect(d.payload.equals(message)).toBe(true);
    expect(d.header.envelope).toEqual({ from: 'a@example.org', to: ['b@example.net'] });

    expect(await runSendmail(['b@example.net', 'x@nowhere.test'], Readable.from([message]), { enqueue, stderr: err.stream })).toBe(67);
    expect(err.text()).toMatch(/^ferrypost sendmail: <x@nowhere\.test>: no route to a node \(/);
    expect(listFiles(w.tree)).toHaveLength(1);
  });
});
