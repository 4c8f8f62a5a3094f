/** Roofline arithmetic of the benchmarks (bench/roofline.ts): numbers in, numbers out; no timing. */
import { chooseDefault, gemmFlops, peakByThreads, rooflineFps, rooflineShare } from '../../../bench/roofline';
import { summarize } from '../../../bench/stats';

const s = (median: number, min: number, max: number) => ({ median, min, max, runs: 5 });

describe('roofline arithmetic', () => {
  it('counts 2·n³ FLOPs for an n×n matrix product', () => {
    expect(gemmFlops(1)).toBe(2);
    expect(gemmFlops(1024)).toBe(2 * 1024 ** 3);
  });

  it('turns a GFLOP/s peak and FLOPs per frame into frames/s and a share', () => {
    expect(rooflineFps(46, 46e6)).toBeCloseTo(1000, 9);
    expect(rooflineShare(700, 46e6, 46)).toBeCloseTo(0.7, 12);
    expect(rooflineShare(rooflineFps(12.5, 3e6), 3e6, 12.5)).toBeCloseTo(1, 12);
    expect(() => rooflineFps(10, 0)).toThrow(/FLOPs per frame must be positive/);
    expect(() => rooflineShare(1, 1, 0)).toThrow(/peak GFLOP\/s must be positive/);
  });

  it("takes each thread count's peak as its fastest run of any size", () => {
    const peaks = peakByThreads({
      'n256 threads1': s(10, 8, 12),
      'n1024 threads1': s(11, 9, 11.5),
      'n256 threads2': s(18, 15, 21),
      'n1024 threads2': s(19, 17, 20),
    });
    expect(peaks).toEqual({ 1: 12, 2: 21 });
    expect(() => peakByThreads({ n256: s(1, 1, 1) })).toThrow(/names no thread count/);
  });

  it('summarizes to the median, min and max', () => {
    expect(summarize([3, 1, 2, 10])).toEqual({ median: 2.5, min: 1, max: 10, runs: 4 });
  });
});

describe('chooseDefault', () => {
  const point = (batch: number, threads: number, fps: ReturnType<typeof s>) => ({ batch, threads, fps });
  const sweep = [point(8, 1, s(400, 380, 420)), point(32, 1, s(480, 450, 500)), point(64, 1, s(520, 470, 560))];

  it('keeps the current setting when it is the fastest', () => {
    const r = chooseDefault(sweep, { batch: 64, threads: 1 });
    expect([r.chosen.batch, r.changed]).toEqual([64, false]);
  });

  it("keeps the current setting when its median is within the best's range", () => {
    const r = chooseDefault(sweep, { batch: 32, threads: 1 });
    expect(r.best.batch).toBe(64);
    expect([r.chosen.batch, r.changed]).toEqual([32, false]);
    expect(r.reason).toMatch(/not distinguishable/);
  });

  it('moves to the best when the current setting is clearly slower', () => {
    const r = chooseDefault(sweep, { batch: 8, threads: 1 });
    expect([r.chosen.batch, r.changed]).toEqual([64, true]);
  });

  it('chooses on the rate it is given (e.g. frames per CPU-second)', () => {
    const withCpu = sweep.map((p, i) => ({ ...p, perCpu: s([900, 500, 480][i]!, 880, 910) }));
    const r = chooseDefault(withCpu, { batch: 64, threads: 1 }, (p) => p.perCpu);
    expect([r.best.batch, r.chosen.batch, r.changed]).toEqual([8, 8, true]);
  });

  it('chooses the best when the current setting was not measured', () => {
    const r = chooseDefault(sweep, { batch: 16, threads: 1 });
    expect([r.chosen.batch, r.changed]).toEqual([64, true]);
    expect(() => chooseDefault([], { batch: 1, threads: 1 })).toThrow(/empty sweep/);
  });
});
