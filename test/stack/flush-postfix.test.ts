/**
 * `ferrypost flush` (Postfix's `postqueue -f`): the MTA was down, the packet is deferred for an hour
 * (retry_initial and rescan_interval 1h, so nothing but the flush can bring it forward); the MTA comes
 * back, the admin flushes, real Postfix gets the message at once. Without a running daemon the flush
 * still makes the packets due, says no daemon heard it, and the daemon's next start delivers them.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, initNode, startNode, tmpdir, type RunningNode, type TestNode } from '../helpers/node.js';
import { freePort } from '../helpers/ports.js';
import { startPostfix, type PostfixInstance } from '../helpers/stack/postfix.js';
import { treePackets } from '../helpers/sites.js';

const MSG = 'From: alice@offline.test\r\nTo: carol@home.test\r\nSubject: held while the MTA was down\r\n\r\nhello\r\n';

let daemon: RunningNode | undefined;
let postfix: PostfixInstance | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await daemon?.stop();
  await postfix?.stop();
  daemon = undefined;
  postfix = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
/** A temp directory removed after the test. */
function scratch(): string {
  const d = tmpdir('fp-flush-');
  dirs.push(d);
  return d;
}

/** The embedded default (routes all mail to itself), delivering by SMTP to a port where nothing listens yet. */
async function nodeWithMtaDown(): Promise<{ node: TestNode; mtaPort: number }> {
  const [mtaPort, listenPort] = [await freePort(), await freePort()];
  const node = initNode(scratch(), 'solo', ['--smtp', `127.0.0.1:${mtaPort}`]);
  node.edit((doc) => {
    doc.setIn(['smtp', 'listen'], [`127.0.0.1:${listenPort}`]);
    doc.setIn(['receive', 'retry_initial'], '1h');
    doc.setIn(['receive', 'rescan_interval'], '1h');
  });
  return { node, mtaPort };
}

async function deferOne(node: TestNode): Promise<void> {
  const r = cli(['sendmail', '-f', 'alice@offline.test', '--', 'carol@home.test'], { config: node.config, input: MSG });
  expect(r.status, r.stderr).toBe(0);
  await daemon!.waitForEvent('inject.tempfail');
  expect(cli(['queue'], { config: node.config }).stdout).toMatch(/Incoming: 1 packet\(s\) deferred/);
}

const mta = (port: number) => startPostfix({ name: 'flush', localDomain: 'home.test', users: ['carol'], ferrypostPort: 1, relayDomains: ['offline.test'], port });

describe('ferrypost flush', () => {
  it('with the daemon running: the deferred packet goes to the MTA at once, not in an hour', async () => {
    const { node, mtaPort } = await nodeWithMtaDown();
    daemon = await startNode(node);
    await deferOne(node);
    postfix = await mta(mtaPort);

    const r = cli(['flush'], { config: node.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('1 deferred packet(s) due now; the daemon is retrying them\n');
    const [file] = await postfix.waitForMail('carol', 1, 15_000);
    expect(readFileSync(file!, 'latin1')).toContain('Subject: held while the MTA was down');
    await daemon.waitForEvent('rx.delivered');
    expect(daemon.events('rx.flush')).toHaveLength(1);
    expect(treePackets(path.join(node.dir, 'tree'))).toHaveLength(0);
    expect(cli(['queue'], { config: node.config }).stdout).toMatch(/empty/);
  });

  it('with no daemon: the packets are made due, the command says nobody heard it, and the next start delivers them', async () => {
    const { node, mtaPort } = await nodeWithMtaDown();
    daemon = await startNode(node);
    await deferOne(node);
    await daemon.stop();
    daemon = undefined;

    const r = cli(['flush'], { config: node.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^1 deferred packet\(s\) due now; no daemon took the request within 3 s \(none is running, or it cannot watch .*\/state\/control: its log says so\): they are retried at its next rescan \(receive\.rescan_interval\) or start\n$/);

    postfix = await mta(mtaPort);
    daemon = await startNode(node);
    await postfix.waitForMail('carol', 1, 15_000);
    await daemon.waitForEvent('rx.flush'); // the request left waiting is taken at start
    expect(treePackets(path.join(node.dir, 'tree'))).toHaveLength(0);
  });

  it('a deferred packet whose file is gone (deleted meanwhile) is not counted as waiting', async () => {
    const { node } = await nodeWithMtaDown();
    daemon = await startNode(node);
    await deferOne(node);
    for (const f of treePackets(path.join(node.dir, 'tree'))) rmSync(f);
    const r = cli(['flush'], { config: node.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('0 deferred packet(s) due now; the daemon is retrying them\n');
    expect(cli(['queue'], { config: node.config }).stdout).toBe('ferrypost queue is empty\n');
  });

  it('on a node that never received anything: nothing deferred, exit 0; on a missing state directory: 78 naming init', () => {
    const node = initNode(scratch(), 'solo');
    const r = cli(['flush'], { config: node.config });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^0 deferred packet\(s\) due now; no daemon took the request/);
    node.edit((doc) => doc.setIn(['node', 'state_dir'], path.join(node.dir, 'no-such-state')));
    const missing = cli(['flush'], { config: node.config });
    expect(missing.status).toBe(78);
    expect(missing.stderr).toMatch(/no-such-state does not exist \(run "ferrypost init" first\)/);
  });
});
