/**
 * Syncthing conflict copies in the inbox: the intact copy of a packet is delivered even when the
 * damaged one kept the name; a damaged copy leaves the tree through the quarantine. Real codec,
 * journal, receiver and Maildir; the conflict is made on disk as Syncthing makes it (a rename).
 */
import { existsSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { listQuarantine } from '../../src/quarantine/quarantine.js';
import { enqueueFor, receiverTests, receivingNode } from '../helpers/inproc.js';

const t = receiverTests('fp-rx-conflict-');
const conflictName = (packet: string) => packet.replace(/\.pgp$/, '.sync-conflict-20261127-120000-ABCDEFG.pgp');
const delivered = (maildir: string) => (existsSync(path.join(maildir, 'new')) ? readdirSync(path.join(maildir, 'new')).length : 0);

async function onePacket(tree: string): Promise<string> {
  const [q] = await enqueueFor(t.A, t.B, tree, path.join(t.dir(), 'a')).submit({ from: 'a@offline.test', to: ['b@home.test'] }, Buffer.from('Subject: s\r\n\r\nhello\r\n'));
  return q!.path;
}

it('the damaged file kept the name: it is quarantined (PACKET_HASH), then the intact conflict copy takes the name and is delivered', async () => {
  const tree = path.join(t.dir(), 'tree');
  const rx = t.track(receivingNode(t.B, [t.A], tree, path.join(t.dir(), 'b')));
  const p = await onePacket(tree);
  renameSync(p, path.join(path.dirname(p), conflictName(path.basename(p))));
  writeFileSync(p, 'damaged bytes under the packet\'s name');
  await rx.receiver.scanOnce(); // the damaged file is refused; the copy waits while the name is taken
  expect((await listQuarantine(rx.stateDir)).map((q) => q.reason.code)).toEqual(['PACKET_HASH']);
  await rx.receiver.scanOnce(); // the name is free: the copy is adopted
  await rx.receiver.scanOnce(); // and delivered
  expect(delivered(rx.maildir)).toBe(1);
  expect(readdirSync(path.dirname(p))).toEqual([]);
});

it('a conflict copy alone, intact: delivered; damaged: quarantined, and the tree is left empty', async () => {
  const tree = path.join(t.dir(), 'tree');
  const rx = t.track(receivingNode(t.B, [t.A], tree, path.join(t.dir(), 'b')));
  const good = await onePacket(tree);
  renameSync(good, path.join(path.dirname(good), conflictName(path.basename(good))));
  const bad = path.join(path.dirname(good), conflictName('a'.repeat(52) + '.pgp'));
  writeFileSync(bad, 'not the packet its name says');
  await rx.receiver.scanOnce();
  await rx.receiver.scanOnce();
  expect(delivered(rx.maildir)).toBe(1);
  const q = await listQuarantine(rx.stateDir);
  expect(q.map((e) => [e.reason.code, e.reason.message])).toEqual([['PACKET_HASH', expect.stringMatching(/^Syncthing conflict copy of a{52}\.pgp whose content does not match/)]]);
  expect(readdirSync(path.dirname(good))).toEqual([]);
});
