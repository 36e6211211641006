/**
 * Paces V8's young-generation collections by bytes streamed, to bound peak RSS on large messages.
 *
 * Why: streaming a message leaves its bytes behind as dead Buffers several times over (socket chunks,
 * file reads, zlib and cipher outputs: ~3 bytes per payload byte on the sender). A Buffer's memory
 * lives outside V8's heap and is freed only when a collection finds the small object that owns it
 * dead. While bytes stream, little JavaScript is allocated, so V8 collects only once ~64 MiB of such
 * memory has piled up ("external memory pressure"). That pile was most of the sender's margin on a
 * 100 MiB message: 120-126 MiB peak RSS on base64, 145-156 on one block of text repeated (target 128).
 * A scavenge every 2 MiB streamed cut those peaks to 100-104 and 111-115 MiB; the cost was within the
 * noise on base64 and 5-8 % of the send rate on prose (docs/performance-history.md, "What was fixed at
 * midnight", with the paces tried).
 *
 * How: the installed command runs node with --expose-gc (its interpreter line, like
 * --max-semi-space-size); run any other way, V8's gc() is reached the way Jest's leak detector reaches
 * it (flag on, a fresh context, flag off), which a future Node that freezes V8's flags would refuse.
 * If that ever fails, or a collection throws, the pacer does nothing and memory behaves as before;
 * the daemon warns at start when it has no gc().
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** Bytes streamed between two collections. */
export const GC_PACE_BYTES = 2 * 1024 * 1024;

export interface GcPacer {
  /** Counts bytes that passed through a stream stage; collects when enough have. Never throws. */
  account(bytes: number): void;
  /** Whether collections run (V8's gc() was found); looks it up now if not done yet. For the start-up log. */
  active(): boolean;
}

export interface GcPacerOptions {
  everyBytes?: number;
  /** The collection to run; null: none; default: a V8 young-generation collection (minorGc()). */
  collect?: (() => void) | null;
}

export function createGcPacer(opts: GcPacerOptions = {}): GcPacer {
  const every = opts.everyBytes ?? GC_PACE_BYTES;
  if (!Number.isInteger(every) || every < 1) throw new RangeError(`everyBytes must be a positive integer, got ${every}`);
  // Looked up on first use: most processes (CLI commands, small mail) never stream that much.
  let collect: (() => void) | null | undefined = opts.collect;
  const resolve = (): (() => void) | null => (collect === undefined ? (collect = minorGc() ?? null) : collect);
  let since = 0;
  return {
    account(bytes) {
      since += bytes;
      if (since < every) return;
      since = 0;
      const run = resolve();
      if (!run) return;
      try {
        run();
      } catch {
        collect = null; // a pacer must never break the stream it counts; memory behaves as without it
      }
    },
    active: () => resolve() !== null,
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
  // The operator chose how gc is exposed (e.g. --expose-gc-as=NAME): leave V8's flags alone.
  const flags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (/--expose[-_]gc/.test(flags)) return undefined;
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
