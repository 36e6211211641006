// EarlyWriteback (src/tree/writeback.ts): background flushes every N bytes, one at a time, and a
// failed flush is never lost (a later fsync may succeed after a writeback error: Linux reports it once).
import { describe, expect, it } from 'vitest';
import { EarlyWriteback } from '../../src/tree/writeback.js';

/** A flush the test finishes by hand. */
function manualFlush(): { flush: () => Promise<void>; calls: number; finish: (err?: Error) => void } {
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const m = {
    calls: 0,
    flush: () => {
      m.calls++;
      return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
    },
    finish: (err?: Error) => {
      const p = pending.shift()!;
      if (err) p.reject(err);
      else p.resolve();
    },
  };
  return m;
}

const tick = () => new Promise((r) => setImmediate(r));

describe('EarlyWriteback', () => {
  it('starts a flush every `every` bytes, never two at once, and none for a small file', async () => {
    const m = manualFlush();
    const wb = new EarlyWriteback(m.flush, 1000);
    wb.wrote(999);
    await tick();
    expect(m.calls).toBe(0);
    wb.wrote(1);
    await tick();
    expect(m.calls).toBe(1);
    wb.wrote(5000); // one under way: no second flush
    await tick();
    expect(m.calls).toBe(1);
    m.finish();
    await tick();
    wb.wrote(1000);
    await tick();
    expect(m.calls).toBe(2);
    const settled = wb.settle();
    let done = false;
    void settled.then(() => (done = true));
    await tick();
    expect(done).toBe(false); // waits for the flush under way
    m.finish();
    await settled;
    expect(done).toBe(true);
  });

  it('a failed flush is rethrown by settle() even though later flushes would succeed; no flush starts after it', async () => {
    const m = manualFlush();
    const wb = new EarlyWriteback(m.flush, 10);
    wb.wrote(10);
    await tick();
    m.finish(Object.assign(new Error('EIO: writeback failed'), { code: 'EIO' }));
    await tick();
    wb.wrote(100);
    await tick();
    expect(m.calls).toBe(1);
    await expect(wb.settle()).rejects.toThrow('EIO: writeback failed');
    await expect(wb.quiesce()).resolves.toBeUndefined(); // quiesce never rejects
  });

  it('a flush that throws synchronously is a failed flush, not an exception in wrote()', async () => {
    const wb = new EarlyWriteback(() => {
      throw new Error('EBADF');
    }, 1);
    expect(() => wb.wrote(1)).not.toThrow();
    await expect(wb.settle()).rejects.toThrow('EBADF');
  });

  it('quiesce() waits for the flush under way', async () => {
    const m = manualFlush();
    const wb = new EarlyWriteback(m.flush, 1);
    wb.wrote(1);
    await tick();
    let done = false;
    void wb.quiesce().then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    m.finish(new Error('EIO'));
    await tick();
    expect(done).toBe(true);
  });

  it('after quiesce() no flush starts: a write that completes during the close must not flush a closed descriptor', async () => {
    const m = manualFlush();
    const wb = new EarlyWriteback(m.flush, 10);
    await wb.quiesce();
    wb.wrote(100);
    await tick();
    expect(m.calls).toBe(0);
  });
});
