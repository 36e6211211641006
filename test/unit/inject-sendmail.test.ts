// sendmail injector with a real child process: a small shell script records argv and stdin and exits
// with the status it is told to (or is killed / hangs); checks the exit-status mapping, byte-exact
// stdin, the null sender, stderr capture, the timeout, a missing command and bounded concurrency.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSendmailInjector, sendmailArgv, type SendmailDeliveryConfig } from '../../src/inject/sendmail.js';
import type { InjectRequest } from '../../src/inject/types.js';

const FIX = join(import.meta.dirname, '../../fixtures/mail');
const fixtures = readdirSync(FIX).filter((f) => f.endsWith('.eml'));

const SCRIPT = `#!/bin/sh
out="$1"; mode="$2"; shift 2
printf '%s\\0' "$@" > "$out.argv"
case "$mode" in
  conc) echo + >> "$out.log"; sleep 0.2; echo - >> "$out.log"; cat > /dev/null; exit 0 ;;
  early) exit 75 ;;
esac
cat > "$out.stdin"
echo "fake sendmail: mode $mode" >&2
case "$mode" in
  kill) kill -9 $$ ;;
  hang) exec sleep 30 ;;
esac
exit "$mode"
`;

let dir: string;
let script: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-sendmail-'));
  script = join(dir, 'fake-sendmail');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cfg(out: string, mode: string, extra: Partial<SendmailDeliveryConfig> = {}): SendmailDeliveryConfig {
  return { method: 'sendmail', command: [script, join(dir, out), mode], timeout: 5000, max_processes: 2, ...extra };
}
function req(file: string, from: string, to: string[]): InjectRequest {
  return { envelope: { from, to }, file, size: statSync(file).size, packetId: 'p1' };
}
const argvOf = (out: string): string[] => readFileSync(join(dir, `${out}.argv`), 'utf8').split('\0').slice(0, -1);

describe('sendmail injector', () => {
  it.each(fixtures)('exit 0: every recipient ok, stdin byte-exact for %s', async (name) => {
    const out = `ok-${name}`;
    const inj = createSendmailInjector(cfg(out, '0'));
    const res = await inj.inject(req(join(FIX, name), 'alice@a.example', ['bob@b.example', '-oi@b.example']));
    expect(res.map((r) => [r.rcpt, r.status])).toEqual([
      ['bob@b.example', 'ok'],
      ['-oi@b.example', 'ok'],
    ]);
    expect(readFileSync(join(dir, `${out}.stdin`)).equals(readFileSync(join(FIX, name)))).toBe(true);
    expect(argvOf(out)).toEqual(['-i', '-f', 'alice@a.example', '--', 'bob@b.example', '-oi@b.example']);
  });

  it('null sender is passed as -f <>', async () => {
    const inj = createSendmailInjector(cfg('null', '0'));
    await inj.inject(req(join(FIX, 'crlf-plain.eml'), '', ['bob@b.example']));
    expect(argvOf('null')).toEqual(['-i', '-f', '<>', '--', 'bob@b.example']);
    expect(sendmailArgv(['/usr/sbin/sendmail'], '', ['x@y'])).toEqual(['/usr/sbin/sendmail', '-i', '-f', '<>', '--', 'x@y']);
  });

  it.each([
    ['75', 'temp', '4.3.0'],
    ['71', 'temp', '4.3.0'],
    ['67', 'perm', '5.1.1'],
    ['68', 'perm', '5.1.2'],
    ['65', 'perm', '5.6.0'],
    ['77', 'perm', '5.7.0'],
    ['78', 'perm', '5.3.5'],
    ['1', 'temp', '4.3.0'],
    ['99', 'temp', '4.3.0'],
  ])('exit %s → %s %s for every recipient, stderr in the message', async (code, status, enhanced) => {
    const inj = createSendmailInjector(cfg(`exit${code}`, code));
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@b.example', 'y@b.example']));
    expect(res.map((r) => [r.status, r.enhanced])).toEqual([
      [status, enhanced],
      [status, enhanced],
    ]);
    expect(res[0]!.message).toContain(`status ${code}`);
    expect(res[0]!.message).toContain(`fake sendmail: mode ${code}`);
  });

  it('killed by a signal → temp', async () => {
    const inj = createSendmailInjector(cfg('kill', 'kill'));
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@b.example']));
    expect(res[0]).toMatchObject({ status: 'temp' });
    expect(res[0]!.message).toMatch(/SIGKILL/);
  });

  it('a hanging command is killed at the timeout → temp', async () => {
    const inj = createSendmailInjector(cfg('hang', 'hang', { timeout: 300 }));
    const t0 = Date.now();
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@b.example']));
    expect(res[0]).toMatchObject({ status: 'temp', enhanced: '4.4.2' });
    expect(res[0]!.message).toMatch(/timed out/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a missing command → temp with a clear message', async () => {
    const inj = createSendmailInjector({ method: 'sendmail', command: [join(dir, 'no-such-sendmail')], timeout: 5000, max_processes: 1 });
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'a@a.example', ['x@b.example']));
    expect(res[0]).toMatchObject({ status: 'temp' });
    expect(res[0]!.message).toMatch(/cannot run .*no-such-sendmail.*ENOENT/);
  });

  it('a command that exits without reading its input: temp, and the message file is closed', async () => {
    const file = join(dir, 'big.eml');
    writeFileSync(file, Buffer.alloc(5 << 20, 'x')); // far over a pipe's buffer: the copy stops at EPIPE
    const openOnFile = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === file;
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const inj = createSendmailInjector(cfg('early', 'early'));
    for (let i = 0; i < 3; i++) {
      const res = await inj.inject(req(file, 'a@a.example', ['x@b.example']));
      expect(res[0]).toMatchObject({ status: 'temp', code: 451 });
    }
    for (let i = 0; i < 50 && openOnFile() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(openOnFile()).toBe(0);
  });

  it('runs at most max_processes commands at once', async () => {
    const inj = createSendmailInjector(cfg('conc', 'conc', { max_processes: 2 }));
    const file = join(FIX, 'crlf-plain.eml');
    const res = await Promise.all(Array.from({ length: 6 }, () => inj.inject(req(file, 'a@a.example', ['x@b.example']))));
    await inj.close();
    expect(res.flat().every((r) => r.status === 'ok')).toBe(true);
    let running = 0;
    let max = 0;
    for (const l of readFileSync(join(dir, 'conc.log'), 'utf8').split('\n').filter(Boolean)) {
      running += l === '+' ? 1 : -1;
      max = Math.max(max, running);
    }
    expect(max).toBe(2);
  });
});
