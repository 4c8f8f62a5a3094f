/**
 * The cost and scale model of the benchmark (bench/cost.ts): its arithmetic from given
 * seconds, the price table and the deployment defaults. No timing.
 */
import {
  ASSUMPTIONS,
  costModel,
  deployment,
  monthlyEventDrivenUsd,
  QUOTAS,
  recommendation,
  scaleModel,
  transitionsPerScan,
  type MeasuredSeconds,
} from '../../../bench/cost';
import { DEFAULT_PRICE_TABLE as P, parseConfig } from '../../../lib/config';

const m: MeasuredSeconds = {
  decodeS: 0.15,
  inferCpuS: 0.1,
  inferOneThreadS: 0.12,
  expertS: 0.002,
  modelLoadS: 0.05,
  framesPerClip: 64,
  experts: 3,
};
const a = ASSUMPTIONS;
const gbS = P.lambdaArm64.usdPerGbSecond;

describe('costModel', () => {
  const c = costModel(m);
  const mode = (k: string) => c.modes.find((x) => x.key === k)!;

  it('charges every scan its transitions, Lambda requests and Lambda seconds', () => {
    const expected =
      transitionsPerScan(3) * P.stepFunctionsStandard.usdPerStateTransition +
      7 * P.lambdaArm64.usdPerRequest +
      4 * a.fixedLambdaS * gbS +
      m.expertS * gbS;
    expect(c.fixedUsd).toBeCloseTo(expected, 12);
    expect(transitionsPerScan(3)).toBe(13);
  });

  it('prices a single clip in Lambda as init + model load + decode + one-thread inference', () => {
    const s = a.lambdaInitS + m.modelLoadS + m.decodeS + m.inferOneThreadS;
    const usdPerS = (a.lambdaExtractMemoryMb / 1024) * gbS;
    expect(mode('lambda').singleUsd).toBeCloseTo(s * usdPerS + P.lambdaArm64.usdPerRequest + c.fixedUsd, 12);
  });

  it("prices a single clip on a GPU with a boot, a job start and the dearest configured type's rate", () => {
    const d = deployment();
    const dearest = Math.max(
      ...parseConfig(undefined).gpuInstanceTypes.map((t) => P.gpuInstances[t]!.onDemandUsdPerHour),
    );
    expect(P.gpuInstances[d.gpuType]!.onDemandUsdPerHour).toBe(dearest);
    const rate = dearest / 3600;
    const s = a.gpuColdStartS + a.gpuJobStartS + m.modelLoadS + m.decodeS + m.inferCpuS;
    expect(mode('gpu').singleUsd).toBeCloseTo(s * rate + c.fixedUsd, 12);
  });

  it('bills Fargate at least its minimum seconds', () => {
    const { vcpus, memoryMiB, architecture } = deployment().cpuJob;
    const rate =
      (vcpus * P.fargate[architecture].vcpuUsdPerHour + (memoryMiB / 1024) * P.fargate[architecture].gbUsdPerHour) /
      3600;
    const s = Math.max(P.fargate.minimumSeconds, a.fargateTaskStartS + m.modelLoadS + m.decodeS + m.inferCpuS);
    expect(mode('fargate').singleUsd).toBeCloseTo(s * rate + c.fixedUsd, 12);
  });

  it('spreads start-ups over a cohort: a clip in a cohort costs less than a single clip, more than its work', () => {
    for (const x of c.modes) {
      expect(x.cohortUsd).toBeLessThan(x.singleUsd);
      expect(x.cohortUsd).toBeGreaterThan(x.workSPerClip * x.usdPerS + c.fixedUsd);
    }
  });

  it('caps event-driven compute starts at one per 10-minute window, and Lambda cold starts at a share', () => {
    const g = mode('gpu');
    const work = (n: number) => n * (g.workSPerClip * g.usdPerS + c.fixedUsd);
    expect(monthlyEventDrivenUsd(g, 100, c.fixedUsd)).toBeCloseTo(work(100) + 100 * g.startUsd, 9);
    expect(monthlyEventDrivenUsd(g, 1e6, c.fixedUsd)).toBeCloseTo(
      work(1e6) + a.computeStartWindowsPerMonth * g.startUsd,
      6,
    );
    const l = mode('lambda');
    expect(monthlyEventDrivenUsd(l, 1000, c.fixedUsd)).toBeCloseTo(
      1000 * (l.workSPerClip * l.usdPerS + c.fixedUsd) + 1000 * a.lambdaColdShare * l.startUsd,
      9,
    );
  });

  it('names the cheapest mode per volume and recommends by volume', () => {
    for (const r of c.monthly) {
      const cheapest = Math.min(...r.byMode.map((b) => b.usd));
      expect(r.byMode.find((b) => b.mode === r.cheapest)!.usd).toBe(cheapest);
    }
    const text = recommendation(c);
    expect(text).toContain(`${c.monthly[0]!.cheapest}`);
    if (c.monthly[0]!.cheapestKey === 'lambda') expect(text).toMatch(/computeMode: 'lambda'/);
  });
});

describe('scaleModel', () => {
  const c = costModel(m);
  const rows = scaleModel(c, m);
  const row = (v: number, kind: string) => rows.find((r) => r.scansPerMonth === v && r.kind === kind)!;

  it('derives event-driven peak rates from the monthly volume and the peak factor', () => {
    const r = row(1_000_000, 'event-driven');
    const perS = (1e6 / (30 * 86400)) * a.eventDrivenPeakFactor;
    expect(r.peakScansPerS).toBeCloseTo(perS, 9);
    expect(r.load.StartExecution).toBeCloseTo(perS / QUOTAS.startExecutionPerS.value, 12);
    expect(r.load.SubmitJob).toBeCloseTo(perS / QUOTAS.submitJobPerS.value, 12);
    expect(r.rates['state transitions']).toBeCloseTo(perS * 13, 9);
    const d = deployment();
    expect(r.rates.ListExecutions).toBeCloseTo(perS / d.admission.batchSize + d.admission.starterConcurrency / 15, 12);
  });

  it("sizes the GPU fleet by Little's law and submits one job per cohort batch", () => {
    const gpu = c.modes.find((x) => x.key === 'gpu')!;
    const e = row(100_000, 'event-driven');
    expect(e.gpuInstances).toBe(Math.ceil(e.peakScansPerS * (a.gpuJobStartS + m.modelLoadS + gpu.workSPerClip)));
    const k = row(100_000, 'cohort re-run');
    const n = deployment().cohort.batchSize;
    expect(k.peakScansPerS).toBeCloseTo(1e5 / (a.cohortWindowHours * 3600), 12);
    expect(k.rates.SubmitJob).toBeCloseTo(k.peakScansPerS / n, 12);
    expect(k.rates.StartExecution).toBeCloseTo(1 / (a.cohortWindowHours * 3600), 12);
  });

  it('names as bottleneck the largest demand/limit of its row, and demand grows with volume', () => {
    for (const r of rows) expect(r.bottleneckShare).toBe(Math.max(...Object.values(r.load)));
    for (const kind of ['event-driven', 'cohort re-run'])
      expect(row(1_000_000, kind).bottleneckShare).toBeGreaterThan(row(10_000, kind).bottleneckShare);
  });
});
