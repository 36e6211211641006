/**
 * SIGHUP, as logrotate's postrotate or `systemctl reload` sends it, reopens the log file and keeps
 * the daemon running (it killed it: exit 129, which systemd's Restart=on-failure does not restart).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { waitUntil } from '../helpers/mail.js';
import { CLI, initNode, tmpdir } from '../helpers/node.js';
import { freePort } from '../helpers/ports.js';

it('SIGHUP reopens log.file under its name; the daemon goes on and stops cleanly on SIGTERM', async () => {
  const n = initNode(path.join(tmpdir('fp-hup-'), 'hup'), 'hup');
  const logFile = path.join(n.dir, 'ferrypost.log');
  const port = await freePort();
  n.edit((d) => {
    d.setIn(['log', 'file'], logFile);
    d.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]);
  });
  const proc = spawn(process.execPath, [CLI, '--config', n.config, 'run'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  try {
    await waitUntil(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('"evt":"node.started"'), 20_000, 'node.started in the log file');
    renameSync(logFile, `${logFile}.1`); // what logrotate does
    proc.kill('SIGHUP');
    await waitUntil(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('"evt":"node.hup"'), 10_000, 'the reopened log file');
    expect(readFileSync(logFile, 'utf8')).toContain('"reopened":true');
    expect(proc.exitCode).toBeNull();
    // A file it cannot open (here a directory in its place): the error is logged into the old file, the daemon goes on.
    renameSync(logFile, `${logFile}.2`);
    mkdirSync(logFile);
    proc.kill('SIGHUP');
    await waitUntil(() => readFileSync(`${logFile}.2`, 'utf8').includes('could not reopen the log file'), 10_000, 'the reopen error in the old file');
    await new Promise((r) => setTimeout(r, 300));
    expect(proc.exitCode).toBeNull();
  } finally {
    proc.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
});
