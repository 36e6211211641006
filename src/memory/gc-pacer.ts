/**
 * Paces V8's young-generation collections by bytes streamed, to bound peak RSS on large messages.
 *
 * Why: streaming a message leaves its bytes behind as dead Buffers several times over (socket chunks,
 * file reads, zlib and cipher outputs: ~3 bytes per payload byte on the sender). A Buffer's memory
 * lives outside V8's heap and is freed only when a collection finds the small object that owns it
 * dead. While bytes stream, little JavaScript is allocated, so V8 collects only once ~64 MiB of such
 * memory has piled up ("external memory pressure"). That pile was half of the sender's peak RSS on a
 * 100 MiB message (122-128 MiB, 145-156 on plain text; target 128): docs/performance.md.
 * A scavenge every 2 MiB streamed cuts the peak by 20-50 MiB at no measurable cost (a scavenge of a
 * few live objects takes well under a millisecond; 4 MiB and above gained little, 1 MiB no more).
 *
 * How: V8's gc() is reached the way Jest's leak detector reaches it (flag on, a fresh context, flag
 * off). If that ever fails, the pacer does nothing and memory behaves as before.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** Bytes streamed between two collections. */
export const GC_PACE_BYTES = 2 * 1024 * 1024;

export interface GcPacer {
  /** Counts bytes that passed through a stream stage; collects when enough have. */
  account(bytes: number): void;
}

export interface GcPacerOptions {
  everyBytes?: number;
  /** The collection to run; default: a V8 young-generation collection (minorGc()). */
  collect?: (() => void) | undefined;
}

export function createGcPacer(opts: GcPacerOptions = {}): GcPacer {
  const every = opts.everyBytes ?? GC_PACE_BYTES;
  if (!Number.isInteger(every) || every < 1) throw new RangeError(`everyBytes must be a positive integer, got ${every}`);
  // Looked up on first use: most processes (CLI commands, small mail) never stream that much.
  let collect: (() => void) | undefined | null = 'collect' in opts ? opts.collect : null;
  let since = 0;
  return {
    account(bytes) {
      since += bytes;
      if (since < every) return;
      since = 0;
      if (collect === null) collect = minorGc();
      collect?.();
    },
  };
}

/** A function that runs one V8 young-generation collection, or undefined if V8 does not offer one. */
export function minorGc(): (() => void) | undefined {
  const gc = v8Gc();
  return gc ? () => gc({ type: 'minor' }) : undefined;
}

type V8Gc = (opts?: { type?: 'minor' | 'major' }) => void;

function v8Gc(): V8Gc | undefined {
  const global = (globalThis as { gc?: V8Gc }).gc;
  if (typeof global === 'function') return global; // node --expose-gc
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn: unknown = vm.runInNewContext('gc');
    return typeof fn === 'function' ? (fn as V8Gc) : undefined;
  } catch {
    return undefined;
  } finally {
    // Only the context made above gets gc(); code run later does not.
    v8.setFlagsFromString('--no-expose-gc');
  }
}
