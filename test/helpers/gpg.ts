// Plain GnuPG (Debian's /usr/bin/gpg) in a temporary home with given secret keys imported, for the
// interoperability tests. close() stops the agent and removes the home.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type * as openpgp from 'openpgp';

const run = promisify(execFile);
const GPG = '/usr/bin/gpg';

export interface GpgResult {
  code: number;
  /** stdout as text (status lines with --status-fd 1). */
  stdout: string;
  /** stdout as bytes (decrypted data without --output). */
  stdoutBytes: Buffer;
  stderr: string;
}

export interface GpgHome {
  home: string;
  /** Runs gpg in this home, `input` on stdin; rejects on a non-zero exit unless allowFail. */
  gpg(args: string[], opts?: { input?: Uint8Array; allowFail?: boolean }): Promise<GpgResult>;
  close(): Promise<void>;
}

export async function gpgHome(keys: openpgp.PrivateKey[]): Promise<GpgHome> {
  const home = await mkdtemp(path.join(tmpdir(), 'ferrypost-gnupg-'));
  await chmod(home, 0o700);
  const env = { ...process.env, GNUPGHOME: home };
  const gpg: GpgHome['gpg'] = async (args, opts = {}) => {
    const p = run(GPG, ['--batch', '--no-tty', '--homedir', home, ...args], { env, encoding: 'buffer', maxBuffer: 64 << 20 });
    p.child.stdin!.end(opts.input ?? Buffer.alloc(0));
    try {
      const r = await p;
      return { code: 0, stdout: r.stdout.toString('utf8'), stdoutBytes: r.stdout, stderr: r.stderr.toString('utf8') };
    } catch (e) {
      if (!opts.allowFail) throw e;
      const x = e as { code?: number; stdout?: Buffer; stderr?: Buffer };
      const out = x.stdout ?? Buffer.alloc(0);
      return { code: typeof x.code === 'number' ? x.code : -1, stdout: out.toString('utf8'), stdoutBytes: out, stderr: x.stderr?.toString('utf8') ?? '' };
    }
  };
  await gpg(['--import'], { input: Buffer.from(keys.map((k) => k.armor()).join('\n')) });
  return {
    home,
    gpg,
    async close() {
      await run('gpgconf', ['--kill', 'all'], { env }).catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    },
  };
}
