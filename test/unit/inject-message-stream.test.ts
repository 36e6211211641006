/**
 * messageStream (src/inject/types.ts): what every injector reads. A work file is counted for the GC
 * pacer chunk by chunk, byte-exact, and a read error still reaches the injector as an error.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { messageStream, type InjectRequest } from '../../src/inject/types.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fp-msgstream-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const req = (over: Partial<InjectRequest>): InjectRequest => ({ envelope: { from: 'a@x.test', to: ['b@y.test'] }, size: 0, packetId: 'p', ...over });

async function readAll(r: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('messageStream', () => {
  it('a work file: byte-exact, every byte counted once', async () => {
    const bytes = randomBytes(700_000); // several 256 KiB reads
    const file = join(dir, 'm.msg');
    writeFileSync(file, bytes);
    let counted = 0;
    let calls = 0;
    const got = await readAll(messageStream(req({ file, size: bytes.length, onBytes: (n) => ((counted += n), calls++) })));
    expect(got.equals(bytes)).toBe(true);
    expect(counted).toBe(bytes.length);
    expect(calls).toBeGreaterThanOrEqual(3);
  });

  it('a work file that cannot be read: the error reaches the reader', async () => {
    const err = await readAll(messageStream(req({ file: join(dir, 'gone.msg'), onBytes: () => undefined }))).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('bytes in memory are not counted (nothing was read)', async () => {
    let counted = 0;
    const got = await readAll(messageStream(req({ bytes: Buffer.from('hello'), onBytes: (n) => (counted += n) })));
    expect(got.toString()).toBe('hello');
    expect(counted).toBe(0);
  });
});
