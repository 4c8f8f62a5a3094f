/**
 * Cost per scan and a scale model, computed from seconds the bench measured and the
 * price table in lib/config.ts (DEFAULT_PRICE_TABLE, us-east-1 list prices). What is
 * not measured here (instance boot, image pull, quotas) is an assumption, named in
 * ASSUMPTIONS and printed beside the figures.
 */
import { DEFAULT_PRICE_TABLE, parseConfig } from '../lib/config';
import { fmt } from './stats';

export interface MeasuredSeconds {
  /** ffmpeg decode + sampling of one clip (median over the containers). */
  readonly decodeS: number;
  /** Extractor inference of one clip's frames at the best CPU setting. */
  readonly inferCpuS: number;
  /** The same on one thread (a Lambda function of ~1 vCPU). */
  readonly inferOneThreadS: number;
  /** All experts of one clip. */
  readonly expertS: number;
  readonly framesPerClip: number;
}

export const ASSUMPTIONS = {
  gpuColdStartS: 240, // Batch scales a GPU instance from 0: boot + ECS agent + image pull, billed per second
  gpuJobStartS: 15, // a job on a running instance: container start, model load
  fargateTaskStartS: 40, // Fargate task: pull + start; billed from the pull, 60 s minimum (price table)
  lambdaInitS: 2, // Lambda cold start with onnxruntime + ffmpeg layer
  lambdaExtractMemoryMb: 2048, // ~1.2 vCPU: the one-thread inference figure applies
  cohortClipsPerJob: 100, // cohort mode: clips per Batch job / Fargate task / Lambda invocation
  gpuInferenceSpeedup: 1, // GPU inference taken as fast as this CPU's best: an upper bound on GPU seconds (no GPU measured)
  fixedLambdaS: 0.1, // Validate and Finalize, each, at 1024 MB
  stateTransitionsPerScan: 12,
  dynamoWritesPerScan: 6, // claim, 3 expert results, finalize, usage
  eventDrivenPeakFactor: 10, // uploads bunch into working hours
  computeStartWindowsPerMonth: 4380, // one compute start per 10-min window with uploads, at most
  cohortWindowHours: 24, // a cohort re-run of a month's volume finishes within a day
  quotas: {
    startExecutionPerS: 300, // Step Functions Standard StartExecution refill rate, us-east-1 (burst 1,300)
    stateTransitionsPerS: 5000, // Standard, us-east-1
    submitJobPerS: 50, // Batch SubmitJob API
    lambdaConcurrency: 1000, // account default
    dynamoWritesPerS: 40000, // on-demand table default
    gpuVcpus: 64, // "Running On-Demand G and VT instances" (new accounts often lower: ask first)
  },
} as const;

const HOUR = 3600;

export interface ModeCost {
  readonly mode: string;
  readonly workSPerClip: number;
  readonly singleUsd: number;
  readonly cohortUsd: number;
  readonly startUsd: number;
  readonly workUsd: number;
}

export function costModel(m: MeasuredSeconds) {
  const prices = DEFAULT_PRICE_TABLE;
  const config = parseConfig(undefined);
  const gpuType = [...config.gpuInstanceTypes].sort(
    (a, b) => (prices.gpuInstances[b]?.onDemandUsdPerHour ?? 0) - (prices.gpuInstances[a]?.onDemandUsdPerHour ?? 0),
  )[0]!;
  const gpuUsdPerS = prices.gpuInstances[gpuType]!.onDemandUsdPerHour / HOUR;
  const { vcpus, memoryMiB, architecture } = config.cpuJob;
  const fargateUsdPerS =
    (vcpus * prices.fargate[architecture].vcpuUsdPerHour +
      (memoryMiB / 1024) * prices.fargate[architecture].gbUsdPerHour) /
    HOUR;
  const lambdaGbS = prices.lambdaArm64.usdPerGbSecond;
  const lambdaUsdPerS = (ASSUMPTIONS.lambdaExtractMemoryMb / 1024) * lambdaGbS;
  const a = ASSUMPTIONS;

  // Every mode pays the same workflow around the extraction.
  const fixedUsd =
    a.stateTransitionsPerScan * prices.stepFunctionsStandard.usdPerStateTransition +
    (2 + 3) * prices.lambdaArm64.usdPerRequest +
    2 * a.fixedLambdaS * 1 * lambdaGbS +
    3 * Math.max(m.expertS, 0.001) * 1 * lambdaGbS;

  const gpuWork = m.decodeS + m.inferCpuS / a.gpuInferenceSpeedup;
  const fargateWork = m.decodeS + m.inferCpuS;
  const lambdaWork = m.decodeS + m.inferOneThreadS;
  const n = a.cohortClipsPerJob;
  const modes: ModeCost[] = [
    {
      mode: `GPU Batch (${gpuType} on-demand)`,
      workSPerClip: gpuWork,
      workUsd: gpuWork * gpuUsdPerS,
      startUsd: (a.gpuColdStartS + a.gpuJobStartS) * gpuUsdPerS,
      singleUsd: (a.gpuColdStartS + a.gpuJobStartS + gpuWork) * gpuUsdPerS + fixedUsd,
      cohortUsd: ((a.gpuColdStartS / 10 + a.gpuJobStartS) / n + gpuWork) * gpuUsdPerS + fixedUsd,
    },
    {
      mode: `Fargate CPU (${architecture}, ${vcpus} vCPU, ${memoryMiB} MiB)`,
      workSPerClip: fargateWork,
      workUsd: fargateWork * fargateUsdPerS,
      startUsd: Math.max(prices.fargate.minimumSeconds, a.fargateTaskStartS) * fargateUsdPerS,
      singleUsd: Math.max(prices.fargate.minimumSeconds, a.fargateTaskStartS + fargateWork) * fargateUsdPerS + fixedUsd,
      cohortUsd: (a.fargateTaskStartS / n + fargateWork) * fargateUsdPerS + fixedUsd,
    },
    {
      mode: `Lambda extraction (arm64, ${a.lambdaExtractMemoryMb} MB)`,
      workSPerClip: lambdaWork,
      workUsd: lambdaWork * lambdaUsdPerS,
      startUsd: a.lambdaInitS * lambdaUsdPerS,
      singleUsd: (a.lambdaInitS + lambdaWork) * lambdaUsdPerS + prices.lambdaArm64.usdPerRequest + fixedUsd,
      cohortUsd: (a.lambdaInitS / n + lambdaWork) * lambdaUsdPerS + prices.lambdaArm64.usdPerRequest / n + fixedUsd,
    },
  ];

  // Monthly cost, event-driven: every scan's work, plus one compute start per window with uploads.
  const volumes = [1_000, 10_000, 100_000, 1_000_000];
  const monthly = volumes.map((v) => {
    const starts = Math.min(v, a.computeStartWindowsPerMonth);
    const byMode = modes.map((c) => ({
      mode: c.mode,
      usd: v * (c.workUsd + fixedUsd) + (c.mode.startsWith('Lambda') ? v * c.startUsd * 0.1 : starts * c.startUsd),
    }));
    const cheapest = byMode.reduce((x, y) => (y.usd < x.usd ? y : x));
    return { scansPerMonth: v, byMode, cheapest: cheapest.mode };
  });
  return { priceSource: prices.source, fixedUsd, modes, monthly, assumptions: ASSUMPTIONS };
}

export type CostModel = ReturnType<typeof costModel>;

export function scaleModel(cost: CostModel) {
  const a = ASSUMPTIONS;
  const q = a.quotas;
  const gpu = cost.modes[0]!;
  const rows = [];
  for (const v of [10_000, 100_000, 1_000_000]) {
    for (const kind of ['event-driven', 'cohort re-run'] as const) {
      const perS =
        kind === 'event-driven' ? (v / (30 * 86400)) * a.eventDrivenPeakFactor : v / (a.cohortWindowHours * HOUR);
      const gpuBusyS =
        kind === 'event-driven'
          ? gpu.workSPerClip + a.gpuJobStartS
          : gpu.workSPerClip + a.gpuJobStartS / a.cohortClipsPerJob;
      const jobsPerS = kind === 'event-driven' ? perS : perS / a.cohortClipsPerJob;
      const instances = Math.ceil(perS * gpuBusyS);
      const load = {
        StartExecution: (kind === 'event-driven' ? perS : jobsPerS) / q.startExecutionPerS,
        'state transitions': (perS * a.stateTransitionsPerScan) / q.stateTransitionsPerS,
        SubmitJob: jobsPerS / q.submitJobPerS,
        'Lambda concurrency':
          (perS * (3 * Math.max(cost.fixedUsd > 0 ? 0.1 : 0, 0.1) + 2 * a.fixedLambdaS)) / q.lambdaConcurrency,
        'DynamoDB writes': (perS * a.dynamoWritesPerScan) / q.dynamoWritesPerS,
        'GPU vCPU quota': (instances * 4) / q.gpuVcpus,
      };
      const [bottleneck, share] = Object.entries(load).reduce((x, y) => (y[1] > x[1] ? y : x));
      rows.push({
        scansPerMonth: v,
        kind,
        peakScansPerS: perS,
        gpuInstances: instances,
        load,
        bottleneck,
        bottleneckShare: share,
        // Event-driven: as the monthly table in renderCost (a compute start per window with uploads).
        usdPerMonth:
          kind === 'event-driven'
            ? v * (gpu.workUsd + cost.fixedUsd) + Math.min(v, a.computeStartWindowsPerMonth) * gpu.startUsd
            : v * gpu.cohortUsd,
      });
    }
  }
  return rows;
}

const FIX: Record<string, string> = {
  'GPU vCPU quota':
    'one Batch job per clip holds a whole GPU instance for seconds of work: batch clips per job (a cohort job reads N keys; event-driven uploads buffered by SQS into jobs of up to N clips) or extract in Lambda, and ask for the G-instance quota before a large cohort',
  SubmitJob: 'one SubmitJob per clip: submit array jobs / one job per N clips',
  StartExecution:
    'one Standard execution per clip: a cohort re-run as one execution with a Distributed Map over the keys',
  'state transitions': 'Express workflows for the per-clip path, or a Distributed Map with batched items',
  'Lambda concurrency': 'reserved concurrency for the experts, or score all experts in one invocation',
  'DynamoDB writes': 'batch writes of expert results (one item per scan)',
};

export function renderCost(c: CostModel, m: MeasuredSeconds): string[] {
  const out: string[] = [];
  out.push('## Cost per scan (modelled from the measured seconds)');
  out.push('');
  out.push(
    `Measured here: decode ${fmt(m.decodeS * 1000)} ms per clip (median of the containers), extractor inference of ${m.framesPerClip} frames ${fmt(m.inferCpuS * 1000)} ms at the best CPU setting, ${fmt(m.inferOneThreadS * 1000)} ms on one thread, experts ${fmt(m.expertS * 1000, 2)} ms. Prices: ${c.priceSource} (lib/config.ts). Every mode also pays the workflow around extraction: $${c.fixedUsd.toFixed(6)} per scan (Step Functions transitions, Validate, Finalize, 3 experts).`,
  );
  out.push('');
  out.push('| compute mode | work s/clip | single event-driven clip, USD | cohort batch, USD/clip |');
  out.push('| --- | --- | --- | --- |');
  for (const x of c.modes)
    out.push(`| ${x.mode} | ${x.workSPerClip.toFixed(2)} | ${x.singleUsd.toFixed(6)} | ${x.cohortUsd.toFixed(6)} |`);
  out.push('');
  out.push(
    'Monthly cost, event-driven (work + one compute start per 10-minute window with uploads; Lambda: 10% of invocations cold):',
  );
  out.push('');
  out.push(`| scans/month | ${c.modes.map((x) => x.mode).join(' | ')} | cheapest |`);
  out.push(`| --- | ${c.modes.map(() => '---').join(' | ')} | --- |`);
  for (const r of c.monthly)
    out.push(`| ${fmt(r.scansPerMonth)} | ${r.byMode.map((b) => `$${fmt(b.usd, 2)}`).join(' | ')} | ${r.cheapest} |`);
  out.push('');
  const cheapest = new Set(c.monthly.map((r) => r.cheapest));
  out.push(
    `**Recommendation:** ${cheapest.size === 1 ? `${[...cheapest][0]} is cheapest at every volume modelled` : 'the cheapest mode changes with volume (table above)'}; an extractor of 125k parameters does not need a GPU: its clip is dominated by decode, which is CPU work on every mode. GPU Batch pays for an idle GPU during the decode and a boot per burst of uploads; it only earns its place for a much larger extractor. Extraction inside Lambda is not yet a \`computeMode\` of the CDK app (gpu | cpu today): adding it is the follow-up this table argues for; until then \`computeMode: cpu\` (Fargate) is the cheaper deployed choice.`,
  );
  out.push('');
  out.push(
    `Assumptions (not measured): ${Object.entries(c.assumptions)
      .filter(([k]) => k !== 'quotas')
      .map(([k, v]) => `${k} ${String(v)}`)
      .join('; ')}. GPU seconds are taken as this CPU's (no GPU was measured; bench/gpu.ts measures one).`,
  );
  return out;
}

export function renderScale(rows: ReturnType<typeof scaleModel>): string[] {
  const q = ASSUMPTIONS.quotas;
  const out: string[] = [];
  out.push('## Scale model (GPU Batch, the default deployment), against service quotas');
  out.push('');
  out.push(
    `Quotas assumed (defaults, us-east-1; check the account): StartExecution ${q.startExecutionPerS}/s, state transitions ${q.stateTransitionsPerS}/s, SubmitJob ${q.submitJobPerS}/s, Lambda concurrency ${q.lambdaConcurrency}, DynamoDB on-demand ${q.dynamoWritesPerS} writes/s, G-instance vCPUs ${q.gpuVcpus}. Event-driven peak = ${ASSUMPTIONS.eventDrivenPeakFactor}× the monthly average rate; a cohort re-run does the month's volume in ${ASSUMPTIONS.cohortWindowHours} h with ${ASSUMPTIONS.cohortClipsPerJob} clips per job.`,
  );
  out.push('');
  out.push('| scans/month | kind | peak scans/s | GPU instances | first bottleneck (share of quota) | USD/month |');
  out.push('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    out.push(
      `| ${fmt(r.scansPerMonth)} | ${r.kind} | ${r.peakScansPerS.toFixed(3)} | ${r.gpuInstances} | ${r.bottleneck} (${fmt(r.bottleneckShare * 100, 1)}%) | $${fmt(r.usdPerMonth, 0)} |`,
    );
  out.push('');
  const first = rows.reduce((x, y) => (y.bottleneckShare > x.bottleneckShare ? y : x));
  out.push(
    `First bottleneck: **${first.bottleneck}** (${fmt(first.bottleneckShare * 100, 1)}% of its quota at ${fmt(first.scansPerMonth)} scans/month, ${first.kind}). The change that removes it: ${FIX[first.bottleneck] ?? 'see above'}.`,
  );
  return out;
}
