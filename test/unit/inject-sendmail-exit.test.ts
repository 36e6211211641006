// sendmail injector: how the result is decided. The exit status decides, not the end of stderr (a
// forked child may hold it for minutes); exit 0 is ok only if the command read all of the message;
// the sysexits table as Postfix's global/sys_exits.c; any other failure is temp.
import { describe, expect, it } from 'vitest';
import { createSendmailInjector } from '../../src/inject/sendmail.js';
import type { InjectRequest } from '../../src/inject/types.js';

const SMALL = Buffer.from('Subject: x\r\n\r\nx\r\n');
const BIG = Buffer.alloc(1 << 20, 'x'); // 1 MiB: far over a pipe's buffer (64 KiB on Linux)

function req(bytes: Buffer, to = ['x@b.example']): InjectRequest {
  return { envelope: { from: 'a@a.example', to }, bytes, size: bytes.length, packetId: 'p1' };
}
/** Runs `sh -c script` as the sendmail command (the injector's own arguments follow as $1...). */
async function run(script: string, bytes: Buffer, timeout = 1000) {
  const inj = createSendmailInjector({ method: 'sendmail', command: ['/bin/sh', '-c', script, 'sh'], timeout, max_processes: 1 });
  const t0 = Date.now();
  const res = await inj.inject(req(bytes));
  return { res: res[0]!, ms: Date.now() - t0 };
}

describe('sendmail injector: the exit status decides', () => {
  it('exit 0 with a forked child still holding stderr → ok, at once', async () => {
    const { res, ms } = await run('cat >/dev/null; (sleep 3) & exit 0', SMALL);
    expect(res).toMatchObject({ status: 'ok', code: 250, enhanced: '2.0.0' });
    expect(ms).toBeLessThan(900); // before the 1 s timeout, not when the forked child ends
  });

  it('stderr written before the exit is in the message even when stderr stays open', async () => {
    const { res } = await run('cat >/dev/null; echo "queued as 42" >&2; (sleep 3) & exit 0', SMALL);
    expect(res).toMatchObject({ status: 'ok' });
    expect(res.message).toContain('queued as 42');
  });

  it('a command still running at the timeout is killed → temp 4.4.2, without waiting for a forked child', async () => {
    const { res, ms } = await run('cat >/dev/null; (sleep 3) & exec sleep 30', SMALL, 300);
    expect(res).toMatchObject({ status: 'temp', code: 451, enhanced: '4.4.2' });
    expect(res.message).toMatch(/timed out/);
    expect(ms).toBeLessThan(1500);
  });
});

describe('sendmail injector: exit 0 without reading the message', () => {
  it('exit 0 without reading 1 MiB → temp 451 4.3.0', async () => {
    const { res } = await run('exit 0', BIG);
    expect(res).toMatchObject({ status: 'temp', code: 451, enhanced: '4.3.0' });
    expect(res.message).toMatch(/did not read the whole message/);
  });

  it('exit 0 after reading only part of it → temp', async () => {
    const { res } = await run('head -c 1000 >/dev/null; exit 0', BIG);
    expect(res).toMatchObject({ status: 'temp', code: 451, enhanced: '4.3.0' });
    expect(res.message).toMatch(/did not read the whole message/);
  });

  it('exit 0 while a forked child holds stdin without reading → temp at the timeout', async () => {
    const { res, ms } = await run('sleep 2 <&0 & exit 0', BIG, 500);
    expect(res).toMatchObject({ status: 'temp', code: 451, enhanced: '4.3.0' });
    expect(res.message).toMatch(/did not read the whole message/);
    expect(ms).toBeLessThan(1500);
  });

  it('exit 0 after reading all of 1 MiB → ok', async () => {
    const { res } = await run('cat >/dev/null; exit 0', BIG);
    expect(res).toMatchObject({ status: 'ok', code: 250 });
  });

  it('a non-zero exit without reading keeps its own meaning', async () => {
    expect((await run('exit 67', BIG)).res).toMatchObject({ status: 'perm', code: 550, enhanced: '5.1.1' });
    expect((await run('exit 75', BIG)).res).toMatchObject({ status: 'temp', code: 451, enhanced: '4.3.0' });
  });
});

describe('sendmail injector: sysexits table', () => {
  // Postfix global/sys_exits.c (3.12): a 4.x.x code is a soft error, everything else hard.
  it.each([
    [64, 'perm', 550, '5.3.0', 'USAGE'],
    [65, 'perm', 550, '5.6.0', 'DATAERR'],
    [66, 'perm', 550, '5.3.0', 'NOINPUT'],
    [67, 'perm', 550, '5.1.1', 'NOUSER'],
    [68, 'perm', 550, '5.1.2', 'NOHOST'],
    [69, 'perm', 550, '5.3.0', 'UNAVAILABLE'],
    [70, 'perm', 550, '5.3.0', 'SOFTWARE'],
    [71, 'temp', 451, '4.3.0', 'OSERR'],
    [72, 'perm', 550, '5.3.0', 'OSFILE'],
    [73, 'perm', 550, '5.2.0', 'CANTCREAT'],
    [74, 'perm', 550, '5.3.0', 'IOERR'],
    [75, 'temp', 451, '4.3.0', 'TEMPFAIL'],
    [76, 'perm', 550, '5.5.0', 'PROTOCOL'],
    [77, 'perm', 550, '5.7.0', 'NOPERM'],
    [78, 'perm', 550, '5.3.5', 'CONFIG'],
  ])('exit %i → %s %i %s (EX_%s)', async (exit, status, code, enhanced, name) => {
    const { res } = await run(`cat >/dev/null; exit ${exit}`, SMALL);
    expect(res).toMatchObject({ status, code, enhanced });
    expect(res.message).toContain(`status ${exit} (EX_${name})`);
  });

  // Unlike Postfix (hard), an unknown status is temp here: a local fault must not bounce mail.
  it.each([1, 2, 63, 79, 126, 127, 255])('exit %i (not in the table) → temp 451 4.3.0', async (exit) => {
    const { res } = await run(`cat >/dev/null; exit ${exit}`, SMALL);
    expect(res).toMatchObject({ status: 'temp', code: 451, enhanced: '4.3.0' });
    expect(res.message).toContain(`unknown status ${exit}`);
  });

  it('killed by a signal → temp', async () => {
    const { res } = await run('cat >/dev/null; kill -TERM $$', SMALL);
    expect(res).toMatchObject({ status: 'temp', code: 451, enhanced: '4.3.0' });
    expect(res.message).toMatch(/SIGTERM/);
  });
});
