/** The daemon as an admin runs it: metrics, graceful SIGTERM, the embedded default from the README. */
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { CLI, cli, initNode, startNode, tmpdir } from '../helpers/node.js';
import { sendSmtp } from '../helpers/stack/smtp-client.js';

it('serves Prometheus metrics and stops gracefully on SIGTERM (exit 0)', async () => {
  const dir = tmpdir('fp-daemon-');
  const solo = initNode(dir, 'solo');
  const [smtpPort, metricsPort] = [await freePort(), await freePort()];
  solo.edit((d) => {
    d.setIn(['smtp', 'listen'], [`127.0.0.1:${smtpPort}`]);
    d.setIn(['metrics'], { listen: `127.0.0.1:${metricsPort}` });
  });
  const node = await startNode(solo);
  await sendSmtp(smtpPort, { from: 'a@x.test', to: ['b@y.test'], raw: 'Subject: m\r\n\r\nbody\r\n' });
  await node.waitForEvent('rx.delivered');
  const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  expect(body).toMatch(/^ferrypost_rx_packets_total\{outcome="delivered"\} 1$/m);
  expect(body).toMatch(/^ferrypost_packets_written_total 1$/m);
  expect(body).toMatch(/^ferrypost_enqueue_messages_total\{result="queued"\} 1$/m);
  expect(body).toMatch(/^ferrypost_rx_deferred_packets 0$/m);
  expect(await node.stop()).toBe(0);
  expect(node.events('node.stopped')).toHaveLength(1);
});

it('README: "npm start" creates the embedded node on first run and delivers to its Maildir', async () => {
  // Exactly what "npm start" runs (package.json), in a fresh directory; it listens on 127.0.0.1:2525.
  const nodeDir = path.join(tmpdir('fp-readme-'), 'node');
  expect(existsSync(nodeDir)).toBe(false);
  const proc = spawn(process.execPath, [CLI, 'run', '--config', path.join(nodeDir, 'ferrypost.yaml'), '--init-embedded', nodeDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(log)), 20_000);
      proc.stderr.on('data', () => log.includes('node.started') && (clearTimeout(t), resolve()));
    });
    const send = cli(['sendmail', '-f', 'me@example.org', '--', 'you@example.org'], { config: path.join(nodeDir, 'ferrypost.yaml'), input: 'Subject: hi\n\nhello\n' });
    expect(send.status).toBe(0);
    const newDir = path.join(nodeDir, 'Maildir', 'new');
    const end = Date.now() + 10_000;
    while (!(existsSync(newDir) && readdirSync(newDir).length === 1) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(newDir)).toHaveLength(1);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
});

it('one daemon per state directory: a second `ferrypost run` on the same state directory exits 75 naming the first; after kill -9 of the first it starts', async () => {
  const dir = tmpdir('fp-lock-');
  const solo = initNode(dir, 'solo');
  const port = await freePort();
  solo.edit((d) => d.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]));
  const first = await startNode(solo);
  await first.waitForEvent('node.started');
  // Postfix's master refuses the same way ("the Postfix mail system is already running").
  const second = cli(['run'], { config: solo.config });
  expect(second.status).toBe(75);
  expect(second.stderr).toContain(`another ferrypost daemon is running for the state directory`);
  expect(second.stderr).toContain(`(pid ${first.proc.pid}, from daemon.pid)`);
  expect(second.stderr).not.toMatch(/EADDRINUSE/); // refused before it tried the SMTP port
  expect(first.proc.exitCode).toBeNull(); // the first one is untouched
  await first.kill9();
  // The kernel dropped the lock with the process: no stale lock to remove by hand.
  const third = await startNode(solo);
  await third.waitForEvent('node.started');
  expect(await third.stop()).toBe(0);
});

it('a start that fails part way (SMTP port taken) exits 78 and leaves no receiver running behind a released lock', async () => {
  const dir = tmpdir('fp-lock-fail-');
  const solo = initNode(dir, 'solo');
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    solo.edit((d) => d.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]));
    // The receiver starts before the listener; it must be stopped again, or its inbox watcher
    // would keep the process alive (and draining) after the lock was given up.
    const r = cli(['run'], { config: solo.config });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+/);
  } finally {
    blocker.close();
  }
  // The lock was released with the failed start: the next start takes it.
  const free = await freePort();
  solo.edit((d) => d.setIn(['smtp', 'listen'], [`127.0.0.1:${free}`]));
  const node = await startNode(solo);
  await node.waitForEvent('node.started');
  expect(await node.stop()).toBe(0);
});
