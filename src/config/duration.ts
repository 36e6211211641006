/** Durations in config: a number of seconds, or "250ms", "30s", "5m", "2h", "7d". Returns milliseconds. */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value * 1000;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  if (!m) throw new Error(`"${value}" is not a duration (use e.g. 30s, 5m, 2h, 7d, or a number of seconds)`);
  return Number(m[1]) * UNITS[m[2] ?? 's']!;
}

/** Sizes in config: a number of bytes, or "512k", "50M", "1G". */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = /^\s*(\d+)\s*([kKmMgG]i?[bB]?)?\s*$/.exec(value);
  if (!m) throw new Error(`"${value}" is not a size (use e.g. 50M, 512k, or a number of bytes)`);
  const unit = (m[2] ?? '').charAt(0).toLowerCase();
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

/** A duration in the largest unit that divides it: 3600000 → "1h", 2147483647 → "2147483647ms". */
export function formatDuration(ms: number): string {
  for (const [unit, n] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}
