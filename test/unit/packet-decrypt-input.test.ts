/**
 * The decrypt worker's input side (src/packet/decrypt-input.ts) and the receiver's file reader lending
 * into it (src/tree/hashing-reader.ts): ciphertext read straight into the shared input slots is handed
 * to the worker where it lies. A slot must never be reused while the reader or the worker holds it,
 * whatever way a decode ends, and the errors must be those of the main thread's own path.
 * The worker runs the built script (dist/packet/decrypt-worker.js: `npm test` builds first).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { deflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import { decodePacket } from '../../src/packet/codec.js';
import { IN_SLOT, IN_SLOTS, InputPump, InputSlots, type BufferLender } from '../../src/packet/decrypt-input.js';
import { DecryptWorker } from '../../src/packet/decrypt-offload.js';
import { packetHeader } from '../../src/packet/pgpstream.js';
import { HashingFileReader } from '../../src/tree/hashing-reader.js';
import { CollectSink, encodeToBuffer, makeHeader, makeKey, plaintextOf, sealedPacket, type TestKey } from './packet-helpers.js';

const WORKER_URL = new URL('../../dist/packet/decrypt-worker.js', import.meta.url);
const tick = () => new Promise((r) => setImmediate(r));

async function* from(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

describe('InputSlots', () => {
  it('lends each slot once, waits for one to come free, and stops waiting once halted', async () => {
    const slots = new InputSlots();
    const taken = await Promise.all(Array.from({ length: IN_SLOTS }, () => slots.take(() => false)));
    expect(new Set(taken).size).toBe(IN_SLOTS);
    expect(slots.heldCount()).toBe(IN_SLOTS);
    let got: number | undefined = -1;
    const waiting = slots.take(() => false).then((s) => (got = s));
    await tick();
    expect(got).toBe(-1);
    slots.hold(taken[1]!);
    slots.release(taken[1]!); // still held once
    await tick();
    expect(got).toBe(-1);
    slots.release(taken[1]!);
    await waiting;
    expect(got).toBe(taken[1]);
    let halted = false;
    const stopped = slots.take(() => halted);
    halted = true;
    slots.wakeAll();
    expect(await stopped).toBeUndefined();
    expect(() => {
      slots.release(taken[0]!);
      slots.release(taken[0]!);
    }).toThrow(/released more often than held/);
  });

  it('knows a chunk that lies within one of its slots, and nothing else', () => {
    const slots = new InputSlots();
    expect(slots.slotOf(slots.view(2).subarray(10, 100))).toBe(2);
    expect(slots.slotOf(new Uint8Array(slots.buffer, IN_SLOT - 10, 20))).toBeUndefined(); // straddles two
    expect(slots.slotOf(Buffer.alloc(100))).toBeUndefined();
    expect(slots.slotOf(slots.view(0).subarray(0, 0))).toBeUndefined();
  });
});

describe('InputPump', () => {
  function pumpOn(slots: InputSlots, halted = () => false) {
    const sent: ({ slot: number; off: number; bytes: Buffer } | 'end')[] = [];
    const pump = new InputPump(
      slots,
      (slot, off, len) => sent.push({ slot, off, bytes: Buffer.from(slots.buffer, slot * IN_SLOT + off, len) }),
      () => sent.push('end'),
      halted,
    );
    return { pump, sent };
  }

  it('hands chunks read into a slot over where they lie, copies the rest, and keeps the order', async () => {
    const slots = new InputSlots();
    const { pump, sent } = pumpOn(slots);
    const before = { ...slots.stats };
    const lent = (await pump.lender.borrow())!;
    lent.set(Buffer.from('CCCCDDDD'));
    const chunks = [Buffer.from('aaaa'), Buffer.from('bb'), lent.subarray(0, 4), lent.subarray(4, 8), Buffer.from('ee')];
    await pump.run(from(chunks));
    const seen = sent.map((m) => (m === 'end' ? 'end' : m.bytes.toString()));
    expect(seen).toEqual(['aaaabb', 'CCCC', 'DDDD', 'ee', 'end']);
    const direct = sent.filter((m) => m !== 'end' && slots.view(m.slot).byteOffset === lent.byteOffset);
    expect(direct).toHaveLength(2);
    expect(slots.stats.direct - before.direct).toBe(8);
    expect(slots.stats.copied - before.copied).toBe(8);
    // The reader's hold, and one per range at the worker: 2 copy slots, 2 ranges of the lent one.
    expect(slots.heldCount()).toBe(3);
    pump.lender.giveBack(lent);
    for (const m of sent) if (m !== 'end') pump.handedBack(m.slot);
    expect(slots.heldCount()).toBe(0);
  });

  it('releaseAll drops what the worker never handed back (an aborted job); a copy slot never handed over is released too', async () => {
    const slots = new InputSlots();
    let halted = false;
    const { pump, sent } = pumpOn(slots, () => halted);
    async function* input(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(IN_SLOT + 10, 1); // one full slot handed over, 10 bytes in the next
      halted = true;
      yield Buffer.alloc(10, 2);
    }
    await pump.run(input());
    expect(sent).toHaveLength(1);
    expect(slots.heldCount()).toBe(1); // at the worker
    pump.releaseAll();
    expect(slots.heldCount()).toBe(0);
  });

  it("counts a borrow toward the reader's cap while it waits: two at once do not both get a slot past it", async () => {
    const slots = new InputSlots();
    for (let i = 0; i < IN_SLOTS - 2; i++) await slots.take(() => false); // two left free: the reader may hold one
    const { pump } = pumpOn(slots);
    const [a, b] = await Promise.all([pump.lender.borrow(), pump.lender.borrow()]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    expect(slots.freeCount()).toBe(1);
  });

  it('refuses a chunk from a slot its reader has given back (the input was closed under the decoder)', async () => {
    const slots = new InputSlots();
    const { pump } = pumpOn(slots);
    const lent = (await pump.lender.borrow())!;
    pump.lender.giveBack(lent);
    await expect(pump.run(from([lent.subarray(0, 10)]))).rejects.toThrow(/input was closed/);
    expect(slots.heldCount()).toBe(0);
  });
});

describe('InputPump with a HashingFileReader lending', () => {
  // A read that never returns (a hung network file system) keeps its slot for good. The reader and
  // the pump could wait for each other (decrypt-input.ts): the reader may hold one slot fewer than
  // were free at the start. With all but one held elsewhere it holds none (DecryptWorker.open declines then).
  it.each([0, IN_SLOTS - 2, IN_SLOTS - 1])('completes with %i slots held elsewhere when it starts', async (heldElsewhere) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-pump-'));
    const bytes = randomBytes(4 << 20);
    const file = path.join(dir, 'p');
    writeFileSync(file, bytes);
    const slots = new InputSlots();
    for (let i = 0; i < heldElsewhere; i++) await slots.take(() => false);
    const reader = new HashingFileReader(file, { chunk: IN_SLOT });
    const it = reader[Symbol.asyncIterator]();
    const first = (await it.next()).value as Uint8Array; // read before the worker took the packet, as in openNative
    const got: Buffer[] = [];
    // The worker: takes each range's bytes and hands it back on the next turn.
    const pump: InputPump = new InputPump(
      slots,
      (slot, off, len) => {
        got.push(Buffer.from(new Uint8Array(slots.buffer, slot * IN_SLOT + off, len)));
        setImmediate(() => pump.handedBack(slot));
      },
      () => undefined,
      () => false,
    );
    reader.lendFrom(pump.lender);
    async function* ciphertext(): AsyncGenerator<Uint8Array> {
      yield first;
      for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
    }
    const outcome = await Promise.race([pump.run(ciphertext()).then(() => 'done'), new Promise((r) => setTimeout(() => r('stuck'), 5000))]);
    expect(outcome).toBe('done');
    expect(Buffer.concat(got).equals(bytes)).toBe(true);
    if (heldElsewhere === 0) expect(slots.stats.direct).toBeGreaterThan(bytes.length / 2);
    else if (heldElsewhere === IN_SLOTS - 2) expect(slots.stats.direct).toBeGreaterThan(0); // one slot at a time: the read ahead often in a buffer of its own
    else expect(slots.stats.direct).toBe(0);
    for (let i = 0; i < 200 && slots.heldCount() !== heldElsewhere; i++) await new Promise((r) => setTimeout(r, 10)); // the last hand-back
    expect(slots.heldCount()).toBe(heldElsewhere);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('decodePacket from a HashingFileReader with a DecryptWorker', () => {
  let alice: TestKey;
  let bob: TestKey;
  let w: DecryptWorker;
  let dir: string;
  const text = Buffer.from(Array.from({ length: 150_000 }, (_, i) => `line ${i}: the ferry leaves at dawn\r\n`).join(''));
  beforeAll(async () => {
    [alice, bob] = await Promise.all([makeKey('alice'), makeKey('bob')]);
    w = new DecryptWorker({ workerUrl: WORKER_URL });
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-decrypt-input-'));
  });
  afterAll(async () => {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Decodes `bytes` from a file, as the receiver does; 'ok' with the payload, or 'CODE: message'. */
  async function decodeFile(bytes: Buffer, sink: Writable = new CollectSink()): Promise<string> {
    const file = path.join(dir, `p-${randomBytes(4).toString('hex')}`);
    writeFileSync(file, bytes);
    const input = new HashingFileReader(file, { chunk: IN_SLOT });
    try {
      await decodePacket({ input, decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: sink, decryptWorker: w, inputBytes: bytes.length });
      return 'ok';
    } catch (e) {
      return e instanceof FerryError ? `${e.code}: ${e.message}` : `${(e as NodeJS.ErrnoException).code ?? ''} ${String(e)}`;
    } finally {
      input.destroy(); // as the receiver does
    }
  }

  /** What the main thread says for the same bytes (no worker, no lending). */
  async function mainThread(bytes: Buffer): Promise<string> {
    return decodePacket({ input: Readable.from([bytes]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: new CollectSink() }).then(
      () => 'ok',
      (e: unknown) => (e instanceof FerryError ? `${e.code}: ${e.message}` : String(e)),
    );
  }

  /** Every input slot comes free once the decode's reader has closed (its read ahead returns first). */
  async function expectSlotsFree(): Promise<void> {
    for (let i = 0; i < 200 && w.inputUse().held > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(w.inputUse().held).toBe(0);
  }

  it('a large packet: the same bytes, its ciphertext handed over where it was read, every slot free after', async () => {
    const payload = Buffer.concat([text, Buffer.from(randomBytes(3 << 20).toString('base64')), text]);
    const packet = await encodeToBuffer(alice, bob, payload, 6);
    const before = w.inputUse();
    const sink = new CollectSink();
    expect(await decodeFile(packet, sink)).toBe('ok');
    expect(sink.bytes.equals(payload)).toBe(true);
    const after = w.inputUse();
    // The first chunk, and the read ahead already under way when the worker took the packet, were
    // read into buffers of their own: copied. The rest went in place.
    expect(after.copied - before.copied).toBeLessThanOrEqual(2 * IN_SLOT);
    expect(after.direct - before.direct).toBeGreaterThan(packet.length - 2 * IN_SLOT - 1024); // less the framing: PKESK, SEIPD and part headers
    await expectSlotsFree();
  });

  it('refusals from a file: the errors of the main thread, every slot free and the worker usable after each', async () => {
    const payload = Buffer.from(randomBytes(3 << 20).toString('base64'));
    const good = await encodeToBuffer(alice, bob, payload, 6);
    const message = await openpgp.createMessage({ binary: plaintextOf(makeHeader(alice, bob, payload, { size: payload.length - 300_000 }), payload), format: 'binary', filename: '' });
    const z = deflateSync(Buffer.from(await openpgp.sign({ message, signingKeys: alice.priv, format: 'binary' })));
    const refused = await sealedPacket(Buffer.concat([packetHeader(8, z.length + 1), Uint8Array.of(2), z]), bob);
    const flipped = (b: Buffer, at: number): Buffer => {
      const c = Buffer.from(b);
      c[at]! ^= 1;
      return c;
    };
    // [what, bytes, expected]; the main thread's message too, except where the worker reports the
    // MDC first (docs/packet-format.md, "Which error wins": same code).
    const cases: [string, Buffer, RegExp, boolean?][] = [
      ['refused part way', refused, /^PACKET_MALFORMED: payload is longer than header.size/],
      ...[5000, 300_000, 1_000_000].map((cut): [string, Buffer, RegExp] => [`truncated by ${cut}`, good.subarray(0, good.length - cut), /^PACKET_DECRYPT: .*truncated/]),
      ['trailing bytes', Buffer.concat([good, Buffer.from('x')]), /^PACKET_DECRYPT: .*trailing bytes/],
      ['bad MDC', flipped(good, good.length - 3), /^PACKET_DECRYPT: .*modification detected/],
      // Which inner error the flip causes depends on the random session key: corrupt deflate data (the
      // worker then reports the MDC), or garbage that inflates and breaks the signed message's framing
      // on this thread (named as such). PACKET_DECRYPT either way, as on the main thread.
      ['ciphertext flipped in the middle', flipped(good, good.length >> 1), /^PACKET_DECRYPT: /, false],
    ];
    for (const [what, bytes, expected, sameMessage = true] of cases) {
      const got = await decodeFile(bytes);
      expect(got, what).toMatch(expected);
      const main = await mainThread(bytes);
      if (sameMessage) expect(got, `${what}: as on the main thread`).toBe(main);
      else expect(got.split(':')[0], `${what}: the main thread's code`).toBe(main.split(':')[0]);
      await expectSlotsFree();
    }
    const sink = new CollectSink();
    expect(await decodeFile(good, sink)).toBe('ok');
    expect(sink.bytes.equals(payload)).toBe(true);
    await expectSlotsFree();
  });

  it('a decode that gives up with reads under way (failing sink): the slots come back, the next packet decodes', async () => {
    const payload = Buffer.from(randomBytes(6 << 20).toString('base64'));
    const packet = await encodeToBuffer(alice, bob, payload, 6);
    let n = 0;
    const failing = new Writable({
      write(_c, _e, cb) {
        if (++n === 3) cb(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
        else cb();
      },
    });
    expect(await decodeFile(packet, failing)).toMatch(/ENOSPC/);
    await expectSlotsFree();
    for (let i = 0; i < 3; i++) {
      const sink = new CollectSink();
      expect(await decodeFile(packet, sink)).toBe('ok');
      expect(sink.bytes.equals(payload)).toBe(true);
    }
    await expectSlotsFree();
  });

  it('a job starts only with two input slots free (reads of an ended job still under way, or stuck): else the main thread decrypts', async () => {
    // A source that borrows slots and keeps them, as reads that never return would.
    const kept: { lender: BufferLender; buffer: Uint8Array }[] = [];
    let borrowing: Promise<unknown> = Promise.resolve();
    const stuck = (n: number) => ({
      lendFrom(lender: BufferLender) {
        borrowing = (async () => {
          for (let i = 0; i < n; i++) kept.push({ lender, buffer: (await lender.borrow())! });
        })();
      },
    });
    const open = (source: ReturnType<typeof stuck>) => w.open('aes256', randomBytes(32), from([randomBytes(1000)]), 1100, source);
    // The reader may hold all but one of the free slots; it keeps all but two, then 1 of the 2 left.
    const job1 = open(stuck(IN_SLOTS - 2));
    expect(job1).toBeDefined();
    await borrowing;
    await job1!.close();
    expect(w.inputUse().held).toBe(IN_SLOTS - 2);
    const job2 = open(stuck(1)); // two free: it may start
    expect(job2).toBeDefined();
    await borrowing;
    await job2!.close();
    expect(w.inputUse().held).toBe(IN_SLOTS - 1);
    expect(open(stuck(0))).toBeUndefined(); // one free: declined, the caller decrypts on its own thread
    const payload = Buffer.from(randomBytes(2 << 20).toString('base64'));
    const sink = new CollectSink();
    const before = w.inputUse();
    expect(await decodeFile(await encodeToBuffer(alice, bob, payload, 6), sink)).toBe('ok');
    expect(sink.bytes.equals(payload)).toBe(true);
    expect(w.inputUse().direct + w.inputUse().copied).toBe(before.direct + before.copied); // not on the worker
    for (const k of kept) k.lender.giveBack(k.buffer); // the stuck reads return at last
    await expectSlotsFree();
    expect(await decodeFile(await encodeToBuffer(alice, bob, payload, 6))).toBe('ok');
    expect(w.inputUse().direct).toBeGreaterThan(before.direct); // on the worker again
  });

  it('two decodes at once: one on the worker reading into its slots, one on the main thread; both deliver their bytes', async () => {
    const pa = Buffer.from(randomBytes(4 << 20).toString('base64'));
    const pb = Buffer.concat([text, text]);
    const [a, b] = await Promise.all([encodeToBuffer(alice, bob, pa, 6), encodeToBuffer(alice, bob, pb, 6)]);
    const [sa, sb] = [new CollectSink(), new CollectSink()];
    expect(await Promise.all([decodeFile(a, sa), decodeFile(b, sb)])).toEqual(['ok', 'ok']);
    expect(sa.bytes.equals(pa)).toBe(true);
    expect(sb.bytes.equals(pb)).toBe(true);
    await expectSlotsFree();
  });
});
