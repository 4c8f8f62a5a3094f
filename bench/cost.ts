/**
 * Cost per scan and a scale model, computed from seconds the bench measured, the price
 * table and the deployment defaults in lib/config.ts (DEFAULT_PRICE_TABLE, parseConfig),
 * and the service quotas in QUOTAS (each with the AWS page it was read from). What is not
 * measured here (instance boot, image pull, burstiness) is an assumption, named in
 * ASSUMPTIONS and printed beside the figures. Pure arithmetic: unit-tested in
 * test/unit/bench/cost.test.ts.
 */
import { COMPLETED_SCAN_STATES, FIXED_LAMBDA_REQUESTS_PER_SCAN, PER_EXPERT_STATES } from '../core/pricing';
import { DEFAULT_PRICE_TABLE, parseConfig, type PriceTable } from '../lib/config';
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
  /** Creating the extractor's onnxruntime session (model load), paid once per process. */
  readonly modelLoadS: number;
  readonly framesPerClip: number;
  /** Experts run per scan. */
  readonly experts: number;
}

export const ASSUMPTIONS = {
  gpuColdStartS: 240, // Batch scales a GPU instance from 0: boot + ECS agent + image pull, billed per second
  gpuJobStartS: 15, // a job on a running instance: container start (model load measured, added)
  fargateTaskStartS: 40, // Fargate task: image pull + start; billed from the pull, 60 s minimum (price table)
  lambdaInitS: 2, // Lambda cold start of a container image with onnxruntime + ffmpeg (model load measured, added)
  lambdaColdShare: 0.1, // share of event-driven Lambda extractions that start cold
  lambdaExtractMemoryMb: 2048, // ~1.2 vCPU: the one-thread inference figure applies
  gpuInferenceSpeedup: 1, // GPU inference taken as fast as this CPU's best: an upper bound on GPU seconds (no GPU measured here)
  fixedLambdaS: 0.1, // each of the fixed Lambda invocations of a scan (start, Validate, LoadExperts, Finalize), 1024 MB
  workflowOverheadS: 3, // a scan's execution besides extraction: Lambda round trips and state transitions
  dynamoWritesPerScan: 7, // claim, extractor status, 3 expert results, pointer/summary, usage (1 KB each)
  dynamoReadsPerScan: 3, // idempotency check, experts to run, results for the summary
  eventDrivenPeakFactor: 10, // uploads bunch into working hours: peak rate = 10x the monthly average
  computeStartWindowsPerMonth: 4380, // event-driven: at most one compute start per 10-min window with uploads
  cohortClips: 10_000, // the cohort the per-clip cohort cost is quoted for
  cohortWindowHours: 24, // a cohort re-run of a month's volume should finish within a day
  gpuInstanceVcpus: 4, // the job's vCPUs (one job per single-GPU instance)
  gpuVcpuQuota: 64, // "Running On-Demand G and VT instances" vCPUs: account-specific (new accounts often 0): ask first
} as const;

/** Service quotas (defaults, us-east-1), with the page each was read from. */
export const QUOTAS = {
  startExecutionPerS: {
    value: 300,
    note: 'Standard StartExecution refill rate (bucket 1,300)',
    source: 'https://docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html',
  },
  stateTransitionsPerS: {
    value: 1500,
    note: 'Standard StateTransition refill rate (bucket 5,000)',
    source: 'https://docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html',
  },
  listExecutionsPerS: {
    value: 5,
    note: 'ListExecutions refill rate (bucket 200)',
    source: 'https://docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html',
  },
  submitJobPerS: {
    value: 50,
    note: 'Batch SubmitJob TPS per account, not adjustable',
    source: 'https://docs.aws.amazon.com/batch/latest/userguide/service_limits.html',
  },
  lambdaConcurrency: {
    value: 1000,
    note: 'account concurrency (scaling rate 1,000 environments per 10 s per function)',
    source: 'https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html',
  },
  dynamoOnDemandPerTable: {
    value: 40000,
    note: 'on-demand read and write request units per second per table',
    source:
      'https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html',
  },
} as const;

const HOUR = 3600;
const MONTH_S = 30 * 86400;

export type ModeKey = 'gpu' | 'fargate' | 'lambda';

export interface ModeCost {
  readonly key: ModeKey;
  readonly mode: string;
  /** Seconds the compute is busy per clip (decode + inference). */
  readonly workSPerClip: number;
  /** USD per second of that compute. */
  readonly usdPerS: number;
  /** USD of one start (boot/pull/init), not counting work. */
  readonly startUsd: number;
  readonly singleUsd: number;
  readonly cohortUsd: number;
}

/** The deployment the model prices: defaults of lib/config.ts (or a given config). */
export function deployment(config = parseConfig(undefined), prices: PriceTable = DEFAULT_PRICE_TABLE) {
  // The per-scan estimate prices the dearest configured GPU type; so does this model.
  const gpuType = [...config.gpuInstanceTypes].sort(
    (a, b) => (prices.gpuInstances[b]?.onDemandUsdPerHour ?? 0) - (prices.gpuInstances[a]?.onDemandUsdPerHour ?? 0),
  )[0]!;
  return {
    gpuType,
    cpuJob: config.cpuJob,
    admission: config.admission,
    cohort: config.cohortBatching,
    // Spot and on-demand environments, each up to maxvCpus.
    gpuJobSlots: Math.floor((2 * config.maxvCpus) / ASSUMPTIONS.gpuInstanceVcpus),
    prices,
  };
}

export function transitionsPerScan(experts: number): number {
  return COMPLETED_SCAN_STATES.length + PER_EXPERT_STATES.length * experts;
}

export function costModel(m: MeasuredSeconds, d = deployment()) {
  const { prices } = d;
  const a = ASSUMPTIONS;
  const gpuUsdPerS = prices.gpuInstances[d.gpuType]!.onDemandUsdPerHour / HOUR;
  const { vcpus, memoryMiB, architecture } = d.cpuJob;
  const fargateUsdPerS =
    (vcpus * prices.fargate[architecture].vcpuUsdPerHour +
      (memoryMiB / 1024) * prices.fargate[architecture].gbUsdPerHour) /
    HOUR;
  const lambdaGbS = prices.lambdaArm64.usdPerGbSecond;
  const lambdaUsdPerS = (a.lambdaExtractMemoryMb / 1024) * lambdaGbS;

  // Every mode pays the same workflow around the extraction.
  const fixedUsd =
    transitionsPerScan(m.experts) * prices.stepFunctionsStandard.usdPerStateTransition +
    (FIXED_LAMBDA_REQUESTS_PER_SCAN + m.experts) * prices.lambdaArm64.usdPerRequest +
    FIXED_LAMBDA_REQUESTS_PER_SCAN * a.fixedLambdaS * 1 * lambdaGbS +
    Math.max(m.expertS, 0.001) * 1 * lambdaGbS;

  const gpuWork = m.decodeS + m.inferCpuS / a.gpuInferenceSpeedup;
  const fargateWork = m.decodeS + m.inferCpuS;
  const lambdaWork = m.decodeS + m.inferOneThreadS;
  const n = d.cohort.batchSize;
  const jobs = a.cohortClips / n;
  const conc = d.cohort.maxConcurrency;
  const gpuStartS = a.gpuColdStartS + a.gpuJobStartS + m.modelLoadS;
  const lambdaStartS = a.lambdaInitS + m.modelLoadS;
  const modes: ModeCost[] = [
    {
      key: 'gpu',
      mode: `GPU Batch (${d.gpuType} on-demand)`,
      workSPerClip: gpuWork,
      usdPerS: gpuUsdPerS,
      startUsd: gpuStartS * gpuUsdPerS,
      singleUsd: (gpuStartS + gpuWork) * gpuUsdPerS + fixedUsd,
      // A cohort: `conc` instances booted once, a job start per batch, then the work.
      cohortUsd:
        ((conc * a.gpuColdStartS + jobs * (a.gpuJobStartS + m.modelLoadS)) / a.cohortClips + gpuWork) * gpuUsdPerS +
        fixedUsd,
    },
    {
      key: 'fargate',
      mode: `Fargate CPU (${architecture}, ${vcpus} vCPU, ${memoryMiB} MiB)`,
      workSPerClip: fargateWork,
      usdPerS: fargateUsdPerS,
      startUsd: Math.max(prices.fargate.minimumSeconds, a.fargateTaskStartS + m.modelLoadS) * fargateUsdPerS,
      singleUsd:
        Math.max(prices.fargate.minimumSeconds, a.fargateTaskStartS + m.modelLoadS + fargateWork) * fargateUsdPerS +
        fixedUsd,
      cohortUsd:
        ((jobs * (a.fargateTaskStartS + m.modelLoadS)) / a.cohortClips + fargateWork) * fargateUsdPerS + fixedUsd,
    },
    {
      key: 'lambda',
      mode: `Lambda extraction (arm64, ${a.lambdaExtractMemoryMb} MB)`,
      workSPerClip: lambdaWork,
      usdPerS: lambdaUsdPerS,
      startUsd: lambdaStartS * lambdaUsdPerS,
      singleUsd: (lambdaStartS + lambdaWork) * lambdaUsdPerS + prices.lambdaArm64.usdPerRequest + fixedUsd,
      // One invocation per batch of n clips, cold once each.
      cohortUsd:
        ((jobs * lambdaStartS) / a.cohortClips + lambdaWork) * lambdaUsdPerS +
        prices.lambdaArm64.usdPerRequest / n +
        fixedUsd,
    },
  ];

  // Monthly cost, event-driven: every scan's work, plus one compute start per window with
  // uploads (GPU, Fargate), or a cold start for a share of invocations (Lambda).
  const volumes = [1_000, 10_000, 100_000, 1_000_000];
  const monthly = volumes.map((v) => {
    const byMode = modes.map((c) => ({ key: c.key, mode: c.mode, usd: monthlyEventDrivenUsd(c, v, fixedUsd) }));
    const cheapest = byMode.reduce((x, y) => (y.usd < x.usd ? y : x));
    return { scansPerMonth: v, byMode, cheapest: cheapest.mode, cheapestKey: cheapest.key };
  });
  return { priceSource: prices.source, fixedUsd, modes, monthly, assumptions: ASSUMPTIONS, deployment: d };
}

export function monthlyEventDrivenUsd(c: ModeCost, scans: number, fixedUsd: number): number {
  const a = ASSUMPTIONS;
  const starts = c.key === 'lambda' ? scans * a.lambdaColdShare : Math.min(scans, a.computeStartWindowsPerMonth);
  return scans * (c.workSPerClip * c.usdPerS + fixedUsd) + starts * c.startUsd;
}

export type CostModel = ReturnType<typeof costModel>;

export interface ScaleRow {
  readonly scansPerMonth: number;
  readonly kind: 'event-driven' | 'cohort re-run';
  readonly peakScansPerS: number;
  /** Demand / limit for each quota and configured cap (1 = at the limit). */
  readonly load: Record<string, number>;
  /** Request rates behind the loads (per second) or counts. */
  readonly rates: Record<string, number>;
  readonly gpuInstances: number;
  readonly fargateTasks: number;
  readonly lambdaExtractConcurrency: number;
  readonly usdPerMonth: Record<ModeKey, number>;
  readonly bottleneck: string;
  readonly bottleneckShare: number;
}

/**
 * Request rates and fleet sizes of the default deployment (GPU Batch) at 10k, 100k and 1M
 * scans a month, against the quotas and the deployment's own caps (admission's
 * maxRunningScans, the GPU environments' maxvCpus, the cohort map's maxConcurrency).
 */
export function scaleModel(cost: CostModel, m: MeasuredSeconds): ScaleRow[] {
  const a = ASSUMPTIONS;
  const q = QUOTAS;
  const d = cost.deployment;
  const byKey = Object.fromEntries(cost.modes.map((c) => [c.key, c])) as Record<ModeKey, ModeCost>;
  const gpu = byKey.gpu;
  const rows: ScaleRow[] = [];
  for (const v of [10_000, 100_000, 1_000_000]) {
    for (const kind of ['event-driven', 'cohort re-run'] as const) {
      const event = kind === 'event-driven';
      const perS = event ? (v / MONTH_S) * a.eventDrivenPeakFactor : v / (a.cohortWindowHours * HOUR);
      const n = d.cohort.batchSize;
      // Little's law: busy units = arrival rate x seconds each holds one.
      const jobS = event
        ? a.gpuJobStartS + m.modelLoadS + gpu.workSPerClip
        : a.gpuJobStartS + m.modelLoadS + n * gpu.workSPerClip;
      const jobsPerS = event ? perS : perS / n;
      const gpuInstances = Math.ceil(jobsPerS * jobS);
      const fargateTasks = Math.ceil(
        jobsPerS * (a.fargateTaskStartS + m.modelLoadS + (event ? 1 : n) * byKey.fargate.workSPerClip),
      );
      const lambdaExtractConcurrency = Math.ceil(
        perS * byKey.lambda.workSPerClip + (event ? perS * a.lambdaColdShare * a.lambdaInitS : 0),
      );
      const lambdaS = FIXED_LAMBDA_REQUESTS_PER_SCAN * a.fixedLambdaS + m.expertS + 0.05 * m.experts;
      const rates = {
        StartExecution: event ? perS : 1 / (a.cohortWindowHours * HOUR),
        'state transitions': perS * transitionsPerScan(m.experts),
        // One ListExecutions(RUNNING) per starter batch, plus each starter re-counting every 15 s while the cap is reached.
        ListExecutions: event ? perS / d.admission.batchSize + d.admission.starterConcurrency / 15 : 0,
        SubmitJob: jobsPerS,
        'Lambda concurrency': perS * lambdaS,
        'DynamoDB request units': perS * Math.max(a.dynamoWritesPerScan, a.dynamoReadsPerScan),
        'GPU vCPUs': gpuInstances * a.gpuInstanceVcpus,
        'running executions': event ? perS * (a.workflowOverheadS + jobS) : 0,
        'map batches in flight': event ? 0 : jobsPerS * jobS,
      };
      const load: Record<string, number> = {
        StartExecution: rates.StartExecution / q.startExecutionPerS.value,
        'state transitions': rates['state transitions'] / q.stateTransitionsPerS.value,
        ListExecutions: rates.ListExecutions / q.listExecutionsPerS.value,
        SubmitJob: rates.SubmitJob / q.submitJobPerS.value,
        'Lambda concurrency': rates['Lambda concurrency'] / q.lambdaConcurrency.value,
        'DynamoDB request units': rates['DynamoDB request units'] / q.dynamoOnDemandPerTable.value,
        'GPU vCPU quota': rates['GPU vCPUs'] / a.gpuVcpuQuota,
        'GPU job slots (config maxvCpus)': gpuInstances / d.gpuJobSlots,
        ...(event
          ? { 'admission cap (config maxRunningScans)': rates['running executions'] / d.admission.maxRunningScans }
          : {
              'cohort map concurrency (config maxConcurrency)':
                rates['map batches in flight'] / d.cohort.maxConcurrency,
            }),
      };
      const [bottleneck, share] = Object.entries(load).reduce((x, y) => (y[1] > x[1] ? y : x));
      const usdPerMonth = Object.fromEntries(
        cost.modes.map((c) => [c.key, event ? monthlyEventDrivenUsd(c, v, cost.fixedUsd) : v * c.cohortUsd]),
      ) as Record<ModeKey, number>;
      rows.push({
        scansPerMonth: v,
        kind,
        peakScansPerS: perS,
        load,
        rates,
        gpuInstances,
        fargateTasks,
        lambdaExtractConcurrency,
        usdPerMonth,
        bottleneck,
        bottleneckShare: share,
      });
    }
  }
  return rows;
}

const FIX: Record<string, string> = {
  'GPU vCPU quota':
    'ask for the G-instance vCPU quota before the volume arrives, or batch clips per GPU job (event-driven uploads buffered into jobs of up to N clips, as the cohort map does), or extract on CPU (Fargate/Lambda: no G quota)',
  'GPU job slots (config maxvCpus)':
    'raise `maxvCpus` (and with it `admission.maxRunningScans`), or put several clips in one GPU job',
  'admission cap (config maxRunningScans)':
    'each execution holds a running slot for a whole Batch job start: raise `admission.maxRunningScans` with `maxvCpus`, or extract in Lambda (seconds per scan instead of a job start)',
  'cohort map concurrency (config maxConcurrency)':
    'raise `cohortBatching.maxConcurrency` (and `maxvCpus` so the jobs get instances) or `cohortBatching.batchSize` (fewer job starts)',
  SubmitJob: 'one SubmitJob per clip: array jobs, or one job per N clips',
  StartExecution:
    'one Standard execution per clip: buffer uploads into batches (a Distributed Map per batch), or Express workflows for the per-clip path',
  'state transitions': 'Express workflows for the per-clip path, or ask for a higher StateTransition rate',
  ListExecutions: 'count running scans in the table instead of ListExecutions, or fewer, larger starter batches',
  'Lambda concurrency': 'ask for more account concurrency; score all experts in one invocation',
  'DynamoDB request units': 'batch the expert results into one item per scan',
};

const pct = (x: number) => `${fmt(x * 100, x < 0.01 ? 2 : 1)}%`;

export function renderCost(c: CostModel, m: MeasuredSeconds): string[] {
  const out: string[] = [];
  const a = c.assumptions;
  out.push('## Cost per scan (modelled from the measured seconds)');
  out.push('');
  out.push(
    `Measured here: decode ${fmt(m.decodeS * 1000)} ms per clip (median of the containers), extractor inference of ${m.framesPerClip} frames ${fmt(m.inferCpuS * 1000)} ms of CPU at the best setting, ${fmt(m.inferOneThreadS * 1000)} ms on one thread, model load ${fmt(m.modelLoadS * 1000)} ms, ${m.experts} experts ${fmt(m.expertS * 1000, 2)} ms. Prices: ${c.priceSource} (lib/config.ts \`prices\`). Every mode also pays the workflow around extraction: $${c.fixedUsd.toFixed(6)} per scan (${transitionsPerScan(m.experts)} state transitions, ${FIXED_LAMBDA_REQUESTS_PER_SCAN + m.experts} Lambda requests).`,
  );
  out.push('');
  out.push(
    `| compute mode | work s/clip | start-up (assumed + measured model load) | single event-driven clip, USD | cohort of ${fmt(a.cohortClips)} (batches of ${c.deployment.cohort.batchSize}), USD/clip |`,
  );
  out.push('| --- | --- | --- | --- | --- |');
  for (const x of c.modes)
    out.push(
      `| ${x.mode} | ${x.workSPerClip.toFixed(2)} | $${x.startUsd.toFixed(6)} | ${x.singleUsd.toFixed(6)} | ${x.cohortUsd.toFixed(6)} |`,
    );
  out.push('');
  out.push(
    `Monthly cost, event-driven (work + one compute start per 10-minute window with uploads; Lambda: ${a.lambdaColdShare * 100}% of invocations cold):`,
  );
  out.push('');
  out.push(`| scans/month | ${c.modes.map((x) => x.mode).join(' | ')} | cheapest |`);
  out.push(`| --- | ${c.modes.map(() => '---').join(' | ')} | --- |`);
  for (const r of c.monthly)
    out.push(`| ${fmt(r.scansPerMonth)} | ${r.byMode.map((b) => `$${fmt(b.usd, 2)}`).join(' | ')} | ${r.cheapest} |`);
  out.push('');
  out.push(`**Recommendation (default compute mode by volume):** ${recommendation(c)}`);
  out.push('');
  out.push(
    `Assumptions (not measured): ${Object.entries(a)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join('; ')}. GPU seconds are taken as this CPU's best (an upper bound: bench/gpu.ts measures a GPU).`,
  );
  return out;
}

export function recommendation(c: CostModel): string {
  const parts: string[] = [];
  let from = 0;
  const rows = c.monthly;
  for (let i = 0; i < rows.length; i++) {
    if (i + 1 < rows.length && rows[i + 1]!.cheapestKey === rows[i]!.cheapestKey) continue;
    parts.push(`${fmt(rows[from]!.scansPerMonth)}–${fmt(rows[i]!.scansPerMonth)} scans/month: ${rows[i]!.cheapest}`);
    from = i + 1;
  }
  const lambdaWinsLow = rows[0]!.cheapestKey === 'lambda';
  const cheapestDeployed = rows[0]!.byMode.filter((b) => b.key !== 'lambda').reduce((x, y) => (y.usd < x.usd ? y : x));
  return [
    `${parts.join('; ')}.`,
    lambdaWinsLow
      ? `Extraction in Lambda wins at low volume: the clip's work is a fraction of a second of CPU (decode dominates), so any fleet that boots per burst pays more for starting than for working. Deploy it with \`computeMode: 'lambda'\` (\`-c computeMode=lambda\`): the extractor image as a container-image Lambda (arm64, config \`lambdaExtractor\`, default ${c.assumptions.lambdaExtractMemoryMb} MB), the Extract state a Lambda task in place of Batch \`submitJob.sync\` (no Batch, no VPC endpoints for ECR/ECS), and the cohort map's ExtractBatch invoking it per batch. Clips must fit the function's timeout (at most 15 minutes); among the Batch modes, \`computeMode: '${cheapestDeployed.key === 'fargate' ? 'cpu' : 'gpu'}'\` (${cheapestDeployed.mode}) is the cheapest at low volume.`
      : `The cheapest deployable mode at low volume is ${cheapestDeployed.mode}.`,
    'GPU Batch pays for an idle GPU during decode and a boot per burst of uploads; for an extractor this small it does not earn its place at these volumes.',
  ].join(' ');
}

export function renderScale(rows: readonly ScaleRow[], c: CostModel): string[] {
  const a = ASSUMPTIONS;
  const d = c.deployment;
  const out: string[] = [];
  out.push('## Scale model on paper (default deployment: GPU Batch), against service quotas');
  out.push('');
  out.push(
    `Quotas (defaults, us-east-1; check the account's Service Quotas): ${Object.values(QUOTAS)
      .map((x) => `${x.note} ${fmt(x.value)} ([source](${x.source}))`)
      .join(
        '; ',
      )}; G-instance vCPUs ${a.gpuVcpuQuota} (assumed: account-specific). Deployment caps (lib/config.ts defaults): admission.maxRunningScans ${d.admission.maxRunningScans}, ${d.gpuJobSlots} GPU job slots (2 environments × maxvCpus / ${a.gpuInstanceVcpus} vCPU), cohort batches of ${d.cohort.batchSize} with maxConcurrency ${d.cohort.maxConcurrency}. Event-driven peak = ${a.eventDrivenPeakFactor}× the monthly average rate; a cohort re-run (new extractor version: every clip extracted again) does the month's volume in ${a.cohortWindowHours} h. Fleet sizes by Little's law from the measured seconds per clip plus the assumed start-ups.`,
  );
  out.push('');
  out.push(
    '| scans/month | kind | peak scans/s | StartExecution /s | transitions /s | ListExecutions /s | SubmitJob /s | Lambda concurrency | DynamoDB units/s | GPU instances | Fargate tasks (cpu mode) | Lambda extract concurrency | USD/month GPU · Fargate · Lambda | first bottleneck (demand/limit) |',
  );
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    out.push(
      `| ${fmt(r.scansPerMonth)} | ${r.kind} | ${r.peakScansPerS.toFixed(3)} | ${r.rates.StartExecution!.toFixed(3)} (${pct(r.load.StartExecution!)}) | ${fmt(r.rates['state transitions']!, 1)} (${pct(r.load['state transitions']!)}) | ${r.rates.ListExecutions!.toFixed(2)} (${pct(r.load.ListExecutions!)}) | ${r.rates.SubmitJob!.toFixed(3)} (${pct(r.load.SubmitJob!)}) | ${r.rates['Lambda concurrency']!.toFixed(2)} (${pct(r.load['Lambda concurrency']!)}) | ${fmt(r.rates['DynamoDB request units']!, 1)} (${pct(r.load['DynamoDB request units']!)}) | ${r.gpuInstances} | ${r.fargateTasks} | ${r.lambdaExtractConcurrency} | $${fmt(r.usdPerMonth.gpu)} · $${fmt(r.usdPerMonth.fargate)} · $${fmt(r.usdPerMonth.lambda)} | ${r.bottleneck} (${pct(r.bottleneckShare)}) |`,
    );
  out.push('');
  const first = rows.find((r) => r.bottleneckShare >= 1);
  const worst = rows.reduce((x, y) => (y.bottleneckShare > x.bottleneckShare ? y : x));
  const hit = first ?? worst;
  out.push(
    first
      ? `First limit reached: **${hit.bottleneck}** at ${fmt(hit.scansPerMonth)} scans/month (${hit.kind}), ${pct(hit.bottleneckShare)} of it. The change that removes it: ${FIX[hit.bottleneck] ?? 'see above'}.`
      : `No limit is reached up to 1M scans/month; the nearest is **${hit.bottleneck}** (${pct(hit.bottleneckShare)} at ${fmt(hit.scansPerMonth)}, ${hit.kind}). The change that removes it: ${FIX[hit.bottleneck] ?? 'see above'}.`,
  );
  // Every limit some row exceeds, not only each row's largest.
  const others = [
    ...new Set(
      rows.flatMap((r) =>
        Object.entries(r.load)
          .filter(([, v]) => v >= 1)
          .map(([k]) => k),
      ),
    ),
  ].filter((k) => k !== hit.bottleneck);
  for (const b of others) out.push(`Then **${b}**: ${FIX[b] ?? ''}.`);
  const serviceKeys = [
    'StartExecution',
    'state transitions',
    'ListExecutions',
    'SubmitJob',
    'Lambda concurrency',
    'DynamoDB request units',
  ];
  const [svc, svcShare] = rows
    .flatMap((r) => serviceKeys.map((k) => [k, r.load[k] ?? 0] as const))
    .reduce((x, y) => (y[1] > x[1] ? y : x));
  out.push(
    `Of the API and service quotas, the highest demand at 1M scans/month is ${svc} at ${pct(svcShare)} of its limit${svcShare < 1 ? "; the deployment's own caps and the GPU quota bind first" : ''}.`,
  );
  return out;
}
