/**
 * The GC pacer (src/memory/gc-pacer.ts): one collection per `everyBytes` streamed, counted across
 * chunks; no collection without V8's gc(); and the real collection does free dead Buffers, which is
 * the whole point (bounded peak RSS on large messages; measured in docs/performance-history.md).
 */
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createGcPacer, GC_PACE_BYTES, minorGc } from '../../src/memory/gc-pacer.js';

describe('createGcPacer', () => {
  it('collects once per everyBytes, counting across chunks of any size', () => {
    let n = 0;
    const p = createGcPacer({ everyBytes: 1000, collect: () => n++ });
    for (let i = 0; i < 9; i++) p.account(100);
    expect(n).toBe(0);
    p.account(100); // 1000
    expect(n).toBe(1);
    p.account(999);
    expect(n).toBe(1);
    p.account(1);
    expect(n).toBe(2);
    p.account(5000); // one big chunk: one collection, not five
    expect(n).toBe(3);
    p.account(0);
    expect(n).toBe(3);
  });

  it('defaults to 2 MiB', () => {
    let n = 0;
    const p = createGcPacer({ collect: () => n++ });
    p.account(GC_PACE_BYTES - 1);
    expect(n).toBe(0);
    p.account(1);
    expect(n).toBe(1);
    expect(GC_PACE_BYTES).toBe(2 * 1024 * 1024);
  });

  it('does nothing when there is no collection to run', () => {
    const p = createGcPacer({ everyBytes: 1, collect: null });
    expect(() => p.account(10)).not.toThrow();
    expect(p.active()).toBe(false);
  });

  it('never throws into the stream it counts: a failing collection turns the pacer off', () => {
    let n = 0;
    const p = createGcPacer({
      everyBytes: 1,
      collect: () => {
        n++;
        throw new Error('gc broke');
      },
    });
    expect(p.active()).toBe(true);
    expect(() => p.account(1)).not.toThrow();
    expect(() => p.account(1)).not.toThrow();
    expect(n).toBe(1);
    expect(p.active()).toBe(false);
  });

  it('by default finds V8 young-generation collections on this Node', () => {
    expect(createGcPacer().active()).toBe(true);
  });

  it('refuses a pace that is not a positive integer', () => {
    for (const everyBytes of [0, -1, 1.5, Number.NaN]) expect(() => createGcPacer({ everyBytes })).toThrow(RangeError);
  });
});

describe('minorGc', () => {
  it('is available on this Node and frees dead Buffers that V8 would otherwise keep', async () => {
    const gc = minorGc();
    expect(gc).toBeTypeOf('function');
    const settle = () => new Promise((r) => setTimeout(r, 50)); // backing stores are released by a sweeper task
    const external = () => process.memoryUsage().arrayBuffers;
    const pile = () => {
      for (let i = 0; i < 16; i++) Buffer.allocUnsafe(512 * 1024).fill(i); // 8 MiB that die at once
    };
    gc!();
    await settle();
    // Without a collection the dead Buffers stay: this is the pile the pacer is for.
    let before = external();
    pile();
    await settle();
    expect(external() - before).toBeGreaterThanOrEqual(7 * 1024 * 1024);
    // With one, they go.
    gc!();
    await settle();
    before = external();
    pile();
    gc!(); // (a full collection would pass too; minor is what the pacer asks for)
    await settle();
    expect(external() - before).toBeLessThan(1024 * 1024);
  });

  // Under node --expose-gc (e.g. NODE_OPTIONS) gc() is exposed anyway.
  it.skipIf(typeof (globalThis as { gc?: unknown }).gc === 'function')('does not leave gc() exposed to code compiled later', () => {
    minorGc();
    expect(vm.runInNewContext('typeof gc')).toBe('undefined');
  });
});
