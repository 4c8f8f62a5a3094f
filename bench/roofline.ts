/**
 * Roofline arithmetic shared by the CPU bench (run.ts) and the GPU one (gpu.ts): pure
 * functions of measured numbers, unit-tested (test/unit/bench/roofline.test.ts).
 */
import type { Summary } from './stats';

/** FLOPs of one n×n · n×n matrix product (n² outputs, each n multiply-adds). */
export const gemmFlops = (n: number): number => 2 * n ** 3;

/** Frames/s the machine could reach if every FLOP of the model ran at the measured peak. */
export function rooflineFps(peakGflops: number, flopsPerFrame: number): number {
  if (!(flopsPerFrame > 0)) throw new RangeError(`FLOPs per frame must be positive, got ${flopsPerFrame}`);
  return (peakGflops * 1e9) / flopsPerFrame;
}

/** Share of the roofline a measured frame rate reaches (0.7 = 70%). */
export function rooflineShare(fps: number, flopsPerFrame: number, peakGflops: number): number {
  if (!(peakGflops > 0)) throw new RangeError(`peak GFLOP/s must be positive, got ${peakGflops}`);
  return (fps * flopsPerFrame) / (peakGflops * 1e9);
}

/**
 * The peak of each thread count: the fastest single run of any matrix size with that
 * many threads (on a shared machine medians under-measure a ceiling). Keys of `gemm`
 * are `n{size} threads{t}`.
 */
export function peakByThreads(gemm: Record<string, Summary>): Record<number, number> {
  const out: Record<number, number> = {};
  for (const [key, s] of Object.entries(gemm)) {
    const m = /threads(\d+)/.exec(key);
    if (!m) throw new Error(`GEMM key "${key}" names no thread count`);
    const t = Number(m[1]);
    out[t] = Math.max(out[t] ?? 0, s.max);
  }
  return out;
}

export interface SweepPoint {
  readonly batch: number;
  readonly threads: number;
  readonly fps: Summary;
}

/**
 * The default the bench recommends: the setting with the highest median rate (`rateOf`,
 * frames per wall second unless given),
 * unless the current default is indistinguishable from it in this run (its median at or
 * above the best's slowest run): then the current one stays, so a noisy shared machine
 * does not flip the default on every run. `current` undefined: the best.
 */
export function chooseDefault<T extends SweepPoint>(
  sweep: readonly T[],
  current: { batch: number; threads: number },
  rateOf: (p: T) => Summary = (p) => p.fps,
): { best: T; chosen: T; changed: boolean; reason: string } {
  if (sweep.length === 0) throw new Error('empty sweep');
  const best = sweep.reduce((a, b) => (rateOf(b).median > rateOf(a).median ? b : a));
  const now = sweep.find((s) => s.batch === current.batch && s.threads === current.threads);
  if (!now)
    return { best, chosen: best, changed: true, reason: 'the current setting was not measured; the best is chosen' };
  if (now === best) return { best, chosen: now, changed: false, reason: 'the current setting is the fastest measured' };
  const [n, b] = [rateOf(now), rateOf(best)];
  if (n.median >= b.min)
    return {
      best,
      chosen: now,
      changed: false,
      reason: `the current setting's median (${n.median.toFixed(0)}) is within the best's range (${b.min.toFixed(0)}–${b.max.toFixed(0)}): not distinguishable in this run`,
    };
  return {
    best,
    chosen: best,
    changed: true,
    reason: `the best's median (${b.median.toFixed(0)}) beats the current setting's (${n.median.toFixed(0)}), whose median is below the best's slowest run`,
  };
}
