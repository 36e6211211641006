/**
 * A 100 MiB message through the real daemon: SMTP → packet → tree → receiver → Maildir, byte-exact.
 * Speed and memory are measured by bench/large-message, not asserted here.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { initNode, startNode, tmpdir, type RunningNode } from '../helpers/node.js';
import { sendSmtp } from '../helpers/stack/smtp-client.js';

let node: RunningNode | undefined;
afterAll(async () => {
  await node?.stop();
});

/** 100 MiB of CRLF text lines, some starting with a dot, some 8-bit. */
function bigMessage(): Buffer {
  const size = 100 * 1024 * 1024;
  const head = Buffer.from('From: big@home.test\r\nTo: someone@offline.test\r\nSubject: 100 MiB\r\nContent-Type: text/plain; charset=latin1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n');
  const buf = Buffer.alloc(size);
  head.copy(buf);
  let pos = head.length;
  let i = 0;
  while (pos < size - 2) {
    const line = `${i % 97 === 0 ? '.' : ''}line ${i} \xe9\xe8 ${'abcdefghij'.repeat(i % 9)}`;
    const n = Math.min(Buffer.byteLength(line, 'latin1'), size - 2 - pos);
    buf.write(line.slice(0, n), pos, 'latin1');
    pos += n;
    buf.write('\r\n', pos, 'latin1');
    pos += 2;
    i++;
  }
  return buf.subarray(0, pos);
}

async function sha256File(file: string, start: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { start })) h.update(chunk as Buffer);
  return h.digest('hex');
}

it('100 MiB SMTP → packet → Maildir byte-exact', async () => {
  const dir = tmpdir('fp-large-');
  const solo = initNode(dir, 'solo'); // the embedded default: routes to itself, delivers to a Maildir
  const port = await freePort();
  solo.edit((d) => {
    d.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]);
    d.setIn(['smtp', 'max_size'], '200M');
    d.setIn(['delivery', 'add_headers'], false);
  });
  node = await startNode(solo);
  const msg = bigMessage();
  const want = createHash('sha256').update(msg).digest('hex');
  const reply = await sendSmtp(port, { from: 'big@home.test', to: ['someone@offline.test'], raw: msg });
  expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as/);
  await node.waitForEvent('rx.delivered', 240_000);
  const newDir = path.join(dir, 'Maildir', 'new');
  const files = existsSync(newDir) ? readdirSync(newDir) : [];
  expect(files).toHaveLength(1);
  const file = path.join(newDir, files[0]!);
  expect(statSync(file).size).toBe(msg.length);
  expect(await sha256File(file, 0)).toBe(want);
}, 300_000);
