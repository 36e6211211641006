// Postfix's smtp-sink(1) on 127.0.0.1:port: a fast SMTP server that accepts and discards mail
// (or writes each message to dumpDir), for benchmarks. Rejects if it does not listen within 10 s;
// stop() sends SIGTERM and waits for the process to exit.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { waitForPort } from '../ports.js';

export interface SmtpSink {
  port: number;
  stop(): Promise<void>;
}

export async function startSmtpSink(port: number, opts: { dumpDir?: string; backlog?: number } = {}): Promise<SmtpSink> {
  // as root smtp-sink must drop privileges (-u); the dump dir must then be writable by that user
  const args = ['-u', 'nobody'];
  if (opts.dumpDir) {
    fs.mkdirSync(opts.dumpDir, { recursive: true, mode: 0o777 });
    fs.chmodSync(opts.dumpDir, 0o777);
    args.push('-d', `${path.resolve(opts.dumpDir)}/%M.`);
  }
  args.push(`127.0.0.1:${port}`, String(opts.backlog ?? 256));
  const child = spawn('/usr/sbin/smtp-sink', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port, 10_000),
      exited.then(() => {
        throw new Error(`smtp-sink exited: ${stderr}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGTERM');
    throw err;
  }
  return {
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
