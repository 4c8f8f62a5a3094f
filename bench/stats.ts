/** Timing helpers for the benchmarks: every figure is the median of >= 5 runs, with min and max. */

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) throw new Error('no samples');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, runs: s.length };
}

/** Runs `fn` once to warm up, then `runs` times; returns each run's milliseconds. */
export async function timeRuns(runs: number, fn: () => Promise<unknown> | unknown): Promise<number[]> {
  await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * As timeRuns, with the CPU milliseconds the whole process used in each run (every thread,
 * user + system). On a machine shared with other work, a rate per CPU-second does not drop
 * when the scheduler gives the process less of a core, where a rate per wall second does.
 */
export async function timeRunsCpu(
  runs: number,
  fn: () => Promise<unknown> | unknown,
): Promise<{ wall: number[]; cpu: number[] }> {
  await fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    await fn();
    wall.push(performance.now() - t);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1000);
  }
  return { wall, cpu };
}

/** A rate (per second) from per-run milliseconds and the work units of one run: median, min, max. */
export function rate(msPerRun: readonly number[], unitsPerRun: number): Summary {
  return summarize(msPerRun.map((ms) => (unitsPerRun / ms) * 1000));
}

export const fmt = (x: number, digits = 0): string =>
  x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** `median (min–max)` */
export const fmtSummary = (s: Summary, digits = 0, unit = ''): string =>
  `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
