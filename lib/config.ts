/**
 * The one deployment configuration of the sonomark CDK app, read from CDK context.
 *
 * Context key `sonomark` holds an object (cdk.json, or `-c sonomark='{"computeMode":"cpu"}'`
 * on the command line, where it arrives as a JSON string); `-c computeMode=cpu` alone
 * also works (TOP_LEVEL_CONTEXT_KEYS). Every field has a default,
 * so an empty context synthesizes a working, environment-agnostic app: nothing here
 * names an account, a region or looks anything up.
 */
import { z } from 'zod';
import { DEFAULT_INPUT_LIMITS, InputLimits } from '../core/limits';
import { SegmentId } from '../core/schemas';
import { formatZodIssues } from '../core/zod-parse';

export const CONTEXT_KEY = 'sonomark';

/** Where the extractor runs (SonomarkConfig `computeMode`). */
export const COMPUTE_MODES = ['gpu', 'cpu', 'lambda'] as const;
export type ComputeMode = (typeof COMPUTE_MODES)[number];

const InstanceTypeName = z
  .string()
  .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must be an EC2 instance type such as g5.xlarge');

/**
 * Price of one interface VPC endpoint in one Availability Zone, per hour, while
 * idle (us-east-1 list price; most regions are $0.01–0.014). Data processed
 * ($0.01/GB) comes on top but only while clips are analysed.
 */
export const INTERFACE_ENDPOINT_USD_PER_AZ_HOUR = 0.01;
export const HOURS_PER_MONTH = 730;

/**
 * Every interface endpoint the private network may need, why, and in which
 * compute mode, with `network.egress: 'endpoints'` (the default). That VPC has no NAT
 * gateway and no internet gateway, so each one listed for a mode is required for that
 * mode to run at all: this table is not a menu. `computeMode: 'lambda'` needs none: Lambda
 * pulls the extractor's image itself, outside the VPC. Lambda functions need none of them
 * (S3 and DynamoDB go through the free gateway endpoints; logs, X-Ray and env
 * decryption go through the Lambda service itself; StartExecution, the one function
 * that calls another API, runs outside the VPC). Idle cost of each: $0.01/h × 730 h =
 * $7.30 per AZ per month. `egress: 'public-ip'` needs none (interfaceEndpointsFor).
 */
export const INTERFACE_ENDPOINTS = {
  /** ECR API (auth token, image manifest lookups), to pull the extractor image. */
  'ecr.api': { modes: ['gpu', 'cpu'] },
  /** ECR Docker registry; image layers then come from S3 through the gateway endpoint. */
  'ecr.dkr': { modes: ['gpu', 'cpu'] },
  /** CloudWatch Logs, for the container's awslogs driver. */
  logs: { modes: ['gpu', 'cpu'] },
  /** ECS control plane: the ECS agent on Batch's EC2 GPU hosts registers with it (Fargate needs none of the three). */
  ecs: { modes: ['gpu'] },
  /** ECS agent communication (task state) from the EC2 hosts. */
  'ecs-agent': { modes: ['gpu'] },
  /** ECS agent telemetry from the EC2 hosts. */
  'ecs-telemetry': { modes: ['gpu'] },
} as const satisfies Record<string, { modes: readonly ComputeMode[] }>;

export type InterfaceEndpointName = keyof typeof INTERFACE_ENDPOINTS;

/**
 * How the extractor's compute reaches the AWS APIs it needs to start (ECR, ECS,
 * CloudWatch Logs). S3 and DynamoDB always go through the free gateway endpoints, and
 * the Lambda functions always stay in isolated subnets, in both.
 *
 * - `endpoints` (default): isolated subnets only, no internet gateway; the interface
 *   endpoints of INTERFACE_ENDPOINTS carry that traffic. Private, HIPAA-check clean, and
 *   a fixed monthly cost (idleNetworkUsdPerMonth).
 * - `public-ip`: the Batch hosts / Fargate tasks run in public subnets with a public IPv4
 *   address and reach those APIs over TLS through an internet gateway; their security
 *   group has no inbound rule and only HTTPS out. No interface endpoint, so the network
 *   costs nothing at rest; public IPv4 addresses are billed (PUBLIC_IPV4_USD_PER_HOUR)
 *   only while a host runs. Trade-off: the compute has a route to the internet, which
 *   the HIPAA Security pack flags (acknowledged, with reasons, in this mode only).
 */
export const NETWORK_EGRESS = ['endpoints', 'public-ip'] as const;
export type NetworkEgress = (typeof NETWORK_EGRESS)[number];

/**
 * Price of one in-use public IPv4 address per hour (all regions, since February 2024).
 * In `egress: 'public-ip'` mode each running Batch host or Fargate task holds one, so it
 * is paid only while clips are analysed; it is not part of the per-scan estimate.
 */
export const PUBLIC_IPV4_USD_PER_HOUR = 0.005;

const UsdRate = z.number().finite().nonnegative();
const FargateRates = z.object({ vcpuUsdPerHour: UsdRate, gbUsdPerHour: UsdRate }).strict();

/**
 * The price table: the unit prices cost estimates are computed from (the per-scan
 * estimate in each usage record, core/pricing.ts; the idle network cost). Each key
 * given in config replaces that key of DEFAULT_PRICE_TABLE as a whole.
 */
export const PriceTable = z
  .object({
    /** Region and date of the prices; copied into every estimate as its basis. */
    source: z.string().min(1),
    /**
     * Linux EC2 instance prices per hour, per GPU instance type. `onDemandUsdPerHour` is a
     * list price; `typicalSpotUsdPerHour` is a ballpark for planning only (spot prices move
     * by AZ and hour; no estimate uses it). Every `gpuInstanceTypes` entry needs a price in
     * `gpu` mode.
     */
    gpuInstances: z.record(
      InstanceTypeName,
      z.object({ onDemandUsdPerHour: UsdRate, typicalSpotUsdPerHour: UsdRate.optional() }).strict(),
    ),
    /** Fargate (Linux, on-demand) per vCPU-hour and per GB-hour, by CPU architecture, and its minimum billed seconds per task. */
    fargate: z
      .object({ x86_64: FargateRates, arm64: FargateRates, minimumSeconds: z.number().int().nonnegative() })
      .strict(),
    /** Lambda on arm64: per GB-second of duration (first pricing tier) and per request. */
    lambdaArm64: z.object({ usdPerGbSecond: UsdRate, usdPerRequest: UsdRate }).strict(),
    /** Step Functions Standard workflows: per state transition. */
    stepFunctionsStandard: z.object({ usdPerStateTransition: UsdRate }).strict(),
    /** One interface VPC endpoint in one AZ, per hour (data processed comes on top). */
    interfaceEndpoint: z.object({ usdPerAzHour: UsdRate }).strict(),
  })
  .strict();

export type PriceTable = z.infer<typeof PriceTable>;

/**
 * us-east-1 list prices (Linux, on-demand, USD), as published on the AWS pricing
 * pages and recorded in 2026. They are list prices to be checked before anyone is
 * billed from them, not measured costs: nothing here was read from a bill, and
 * other regions differ (often by 10–30%). The spot figures are rough ballparks, not
 * list prices. Deploying elsewhere, give that region's table as `prices`.
 */
export const DEFAULT_PRICE_TABLE: PriceTable = {
  source: 'AWS list prices, us-east-1, recorded 2026 (unverified against a bill)',
  gpuInstances: {
    'g4dn.xlarge': { onDemandUsdPerHour: 0.526, typicalSpotUsdPerHour: 0.22 },
    'g5.xlarge': { onDemandUsdPerHour: 1.006, typicalSpotUsdPerHour: 0.42 },
    'g5.2xlarge': { onDemandUsdPerHour: 1.212, typicalSpotUsdPerHour: 0.5 },
    'g6.xlarge': { onDemandUsdPerHour: 0.8048, typicalSpotUsdPerHour: 0.4 },
    'g6.2xlarge': { onDemandUsdPerHour: 0.9776, typicalSpotUsdPerHour: 0.48 },
  },
  fargate: {
    x86_64: { vcpuUsdPerHour: 0.04048, gbUsdPerHour: 0.004445 },
    arm64: { vcpuUsdPerHour: 0.03238, gbUsdPerHour: 0.00356 },
    minimumSeconds: 60,
  },
  lambdaArm64: { usdPerGbSecond: 0.0000133334, usdPerRequest: 0.0000002 },
  stepFunctionsStandard: { usdPerStateTransition: 0.000025 },
  interfaceEndpoint: { usdPerAzHour: INTERFACE_ENDPOINT_USD_PER_AZ_HOUR },
};

/**
 * One site of the registry: who may upload and read, under which id, at which prices.
 * The id names the site's key prefixes (`uploads/{id}/`, `features/{id}/`, `invoices/{id}/`)
 * and its table partition (`SITE#{id}#…`); the API maps the caller's IAM role to it.
 */
export const SiteConfig = z
  .object({
    /** The site id (a SegmentId): the `{siteId}` of every key and partition of the site. */
    id: SegmentId,
    /** Shown on invoices and in the API's usage summary. */
    displayName: z.string().trim().min(1).max(100),
    /**
     * This site's price plan: keys of the price table (PriceTable) that replace the
     * deployment's `prices` for this site's usage and invoices (each key as a whole), e.g.
     * a negotiated `lambdaArm64` rate. The stored per-scan estimate keeps the deployment's.
     * @default {} - the deployment's price table
     */
    prices: z.object(PriceTable.partial().shape).strict().default({}),
  })
  .strict();
export type SiteConfig = z.infer<typeof SiteConfig>;

/** Fargate's valid memory sizes (MiB) per vCPU count: [min, max, step]. */
const FARGATE_MEMORY_MIB: Record<number, readonly [number, number, number]> = {
  1: [2048, 8192, 1024],
  2: [4096, 16384, 1024],
  4: [8192, 30720, 1024],
  8: [16384, 61440, 4096],
  16: [32768, 122880, 8192],
};

/** CloudWatch Logs accepts only these retention periods (days). */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** /tmp the Lambda extractor keeps free beyond the clip (ffmpeg's and the DICOM decoder's temp files). */
export const LAMBDA_TMP_HEADROOM_MIB = 512;
type SonomarkConfigInputLambda = { ephemeralStorageMiB?: unknown };

export const SonomarkConfig = z
  .object({
    /**
     * Sites allowed to upload. When set, the EventBridge rule only matches
     * `uploads/{siteId}/...` for these sites; when absent, any site prefix matches
     * (Validate still checks the key shape).
     * @default - every site
     */
    siteIds: z.array(SegmentId).min(1).optional(),
    /**
     * The site registry (SiteConfig): each site gets an IAM role for the HTTP API, a
     * monthly invoice, and (unless `siteIds` says otherwise) may upload. Without it,
     * today's behaviour: any site prefix may upload (or those of `siteIds`), the CLI and
     * local mode work as before, and the API has no caller.
     * @default [] - no registered site
     */
    sites: z
      .array(SiteConfig)
      .default([])
      .superRefine((sites, ctx) => {
        const seen = new Set<string>();
        for (const [i, site] of sites.entries()) {
          if (seen.has(site.id))
            ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `site id ${site.id} is registered twice` });
          seen.add(site.id);
        }
      }),
    /**
     * EC2 instance types of the GPU compute environments: single-GPU NVIDIA types with at
     * least the job's 4 vCPU and 16 GiB whose GPU runs onnxruntime's CUDA 12 build. g4dn
     * (T4), g5 (A10G) and g6 (L4) give the spot allocation strategy three pools, so a
     * shortage of one type does not stop the fleet. Larger sizes (g5.2xlarge, g6.2xlarge)
     * add pools but hold one job each at a higher price, and the per-scan cost estimate
     * uses the dearest type. Each needs a price in prices.gpuInstances.
     * @default ['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge']
     */
    gpuInstanceTypes: z.array(InstanceTypeName).min(1).default(['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge']),
    /**
     * Minutes an extractor job may wait at the head of the spot queue for spot capacity
     * (Batch's CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY) before Batch cancels it there and
     * the workflow resubmits it to the on-demand queue (ExtractOnDemand). Batch accepts
     * 10 minutes to 24 hours.
     * @default 10
     */
    spotCapacityWaitMinutes: z.number().int().min(10).max(1440).default(10),
    /**
     * Where the extractor runs: `gpu` = Batch on EC2 GPU (spot first, on-demand
     * fallback); `cpu` = Batch on Fargate (no GPU quota needed; slower, fine for
     * small studies and accounts without G-instance quota); `lambda` = a Lambda function
     * built from the same extractor code (`lambdaExtractor`; no Batch, no compute
     * environment, no interface endpoint; clips must fit its timeout). BENCHMARKS.md,
     * "Cost per scan", says which is cheapest at which volume.
     * @default 'gpu'
     */
    computeMode: z.enum(COMPUTE_MODES).default('gpu'),
    /**
     * The extractor's Lambda function of `computeMode: 'lambda'` (ignored otherwise): the
     * same extractor code as the Batch job, as a container-image function (arm64, like every
     * sonomark function and the price table's `lambdaArm64`).
     *
     * - `memoryMb`: Lambda gives CPU in proportion to memory (1769 MB = one vCPU); the
     *   benchmark's cost model (bench/cost.ts) prices extraction at 2048 MB on one thread.
     *   2048 to 10240.
     * - `timeoutSeconds`: one invocation's limit, at most Lambda's 900 s. It must cover the
     *   slowest clip Validate admits: the input limits (`limits`: duration, frames, picture
     *   size) bound the decode and inference work, and a clip that passes them but does not
     *   finish in time fails with Sandbox.Timedout (retried twice, then recorded FAILED with
     *   code TIMEOUT). Deployments that accept long clips keep `gpu` or `cpu`.
     * - `ephemeralStorageMiB`: /tmp, where the clip is downloaded before decoding; it must
     *   hold `maxUploadBytes` (checked below). 512 to 10240.
     * @default { memoryMb: 2048, timeoutSeconds: 300, ephemeralStorageMiB: 2560 }
     */
    lambdaExtractor: z
      .object({
        memoryMb: z.number().int().min(2048).max(10240).default(2048),
        timeoutSeconds: z.number().int().min(30).max(900).default(300),
        ephemeralStorageMiB: z.number().int().min(512).max(10240).default(2560),
      })
      .strict()
      .default({ memoryMb: 2048, timeoutSeconds: 300, ephemeralStorageMiB: 2560 }),
    /**
     * The Fargate job of `computeMode: 'cpu'`. ARM64 (Graviton) Fargate is about 20%
     * cheaper per vCPU-hour than x86_64, but building its image on an x86 machine needs
     * Docker buildx with QEMU (and multi-arch base-image digests in the Dockerfile).
     * Ignored in `gpu` mode.
     * @default { architecture: 'x86_64', vcpus: 2, memoryMiB: 4096 }
     */
    cpuJob: z
      .object({
        architecture: z.enum(['x86_64', 'arm64']).default('x86_64'),
        vcpus: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8), z.literal(16)]).default(2),
        memoryMiB: z.number().int().default(4096),
      })
      .strict()
      .superRefine((job, ctx) => {
        const [min, max, step] = FARGATE_MEMORY_MIB[job.vcpus] as readonly [number, number, number];
        if (job.memoryMiB < min || job.memoryMiB > max || job.memoryMiB % step !== 0) {
          ctx.addIssue({
            code: 'custom',
            path: ['memoryMiB'],
            message: `Fargate with ${job.vcpus} vCPU takes ${min}–${max} MiB in steps of ${step}`,
          });
        }
      })
      .default({ architecture: 'x86_64', vcpus: 2, memoryMiB: 4096 }),
    /**
     * Minutes an extractor job may sit at the head of a queue in RUNNABLE, blocked
     * because no capacity can be had (on demand: no instance of the configured types, a
     * vCPU quota; either queue: a job larger than any instance), before Batch cancels it. The
     * cancellation fails the Extract state, so the scan is recorded FAILED with
     * Batch's reason instead of waiting for the execution timeout. Batch accepts
     * 10 minutes to 24 hours.
     * @default 30
     */
    runnableTimeLimitMinutes: z.number().int().min(10).max(1440).default(30),
    /**
     * The network. It never has a NAT gateway; S3 and DynamoDB are reached through
     * gateway endpoints (free) and the Lambda functions run in isolated subnets.
     *
     * - `egress` (NETWORK_EGRESS): `endpoints` (default) keeps the extractor's compute in
     *   isolated subnets without an internet gateway; its fixed monthly cost is the
     *   interface endpoints the compute mode needs (INTERFACE_ENDPOINTS: 6 for `gpu`, 3 for
     *   `cpu`) × `endpointAzs` × $7.30. `public-ip` puts the compute in public subnets with
     *   public IPv4 addresses (no inbound rule, HTTPS out only) and creates no interface
     *   endpoint: $0 at rest, $0.005/h per address while a host runs.
     * - `maxAzs`: Availability Zones of the subnets (Lambda ENIs, Batch compute).
     * - `endpointAzs`: how many of those AZs get the interface endpoints. 1 halves their
     *   cost (compute in the other AZ reaches them across AZs, $0.01/GB); jobs then cannot
     *   start while that one AZ is down. Only with `egress: 'endpoints'`; it is 0 with
     *   `public-ip`.
     * @default { maxAzs: 2, endpointAzs: 2, egress: 'endpoints' }
     */
    network: z
      .object({
        // The stacks are environment-agnostic, and CDK gives such a stack at most two AZs.
        maxAzs: z.number().int().min(1).max(2).default(2),
        endpointAzs: z.number().int().min(1).max(2).optional(),
        egress: z.enum(NETWORK_EGRESS).default('endpoints'),
      })
      .strict()
      .refine((n) => n.endpointAzs === undefined || n.endpointAzs <= n.maxAzs, {
        message: 'endpointAzs cannot exceed maxAzs',
        path: ['endpointAzs'],
      })
      .refine((n) => n.endpointAzs === undefined || n.egress === 'endpoints', {
        message: "endpointAzs applies to egress 'endpoints' only; egress 'public-ip' creates no interface endpoints",
        path: ['endpointAzs'],
      })
      .transform((n) => ({
        maxAzs: n.maxAzs,
        endpointAzs: n.egress === 'public-ip' ? 0 : (n.endpointAzs ?? n.maxAzs),
        egress: n.egress,
      }))
      .default({ maxAzs: 2, endpointAzs: 2, egress: 'endpoints' }),
    /**
     * Per-expert Lambda sizing over the manifest's `lambda` block (memory, timeout,
     * reserved concurrency), keyed by expert name. The manifest says what a model
     * needs; this says what a deployment allows (e.g. more concurrency for a big
     * retrospective cohort). A name that is not in the manifest fails synthesis.
     * @default {} - every expert as its manifest entry says
     */
    expertOverrides: z
      .record(
        z.string().regex(/^[a-z][a-z0-9-]*$/),
        z
          .object({
            memoryMb: z.number().int().min(128).max(10240).optional(),
            timeoutSeconds: z.number().int().min(3).max(900).optional(),
            reservedConcurrency: z.number().int().min(1).max(1000).optional(),
          })
          .strict(),
      )
      .default({}),
    /**
     * Admission control (lambdas/start-execution/admission.ts, README "Reliability"):
     * uploads wait in the SQS upload queue and the starter starts an execution only
     * while fewer than `maxRunningScans` run.
     *
     * - `maxRunningScans`: the cap on executions RUNNING at once. 64 by default: the
     *   default GPU fleet runs up to 8 jobs at once (spot and on-demand environments ×
     *   maxvCpus 16 / 4 vCPU per job), so 64 keeps about 8 scans per GPU slot: enough to keep the fleet busy,
     *   few enough that no job waits in Batch for long, far below StartExecution's and
     *   SubmitJob's rates. Raise it with maxvCpus.
     * - `starterConcurrency`: the queue event source's maximumConcurrency (2–1000; 2 is
     *   the least Lambda allows), also the starter's reserved concurrency. Each starter
     *   holds one batch; the cap is soft by at most one batch per extra starter.
     * - `batchSize`: messages per starter invocation (1–10).
     * - `maxReceiveCount`: receives before a message goes to the dead-letter queue. A
     *   message a waiting starter held comes back 6 minutes after it was received (the
     *   queue's visibility timeout), so 50 is about 5 hours of a fleet that finishes
     *   nothing, or 50 failed starts.
     * @default { maxRunningScans: 64, starterConcurrency: 2, batchSize: 10, maxReceiveCount: 50 }
     */
    admission: z
      .object({
        maxRunningScans: z.number().int().min(1).max(100_000).default(64),
        starterConcurrency: z.number().int().min(2).max(1000).default(2),
        batchSize: z.number().int().min(1).max(10).default(10),
        maxReceiveCount: z.number().int().min(1).max(1000).default(50),
      })
      .strict()
      .default({ maxRunningScans: 64, starterConcurrency: 2, batchSize: 10, maxReceiveCount: 50 }),
    /**
     * Maximum vCPUs each Batch compute environment may scale to.
     * @default 16
     */
    maxvCpus: z.number().int().min(1).max(10000).default(16),
    /**
     * Retention of every log group the app creates (Lambda, state machine, Batch).
     * @default 365
     */
    logRetentionDays: z
      .number()
      .int()
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .default(365),
    /**
     * Email subscribed to the alarm topic (a subscription confirmation is sent).
     * @default - no subscription; subscribe to the topic yourself
     */
    alarmEmail: z.email().optional(),
    /**
     * Largest clip Validate accepts, in bytes (passed to the Lambda as MAX_UPLOAD_BYTES).
     * @default 2 GiB
     */
    maxUploadBytes: z
      .number()
      .int()
      .positive()
      .default(2 * 1024 ** 3),
    /**
     * Limits Validate checks on the container header before any GPU job (duration,
     * picture size, frame count; core/limits.ts), passed to the Lambda as INPUT_LIMITS.
     * Each key given replaces that default.
     * @default DEFAULT_INPUT_LIMITS - 600 s, 5000 frames, 32×32 to 4096×4096 pixels
     */
    limits: InputLimits.partial()
      .strict()
      .transform((l): InputLimits => ({ ...DEFAULT_INPUT_LIMITS, ...definedKeys(l) }))
      .default(DEFAULT_INPUT_LIMITS),
    /**
     * Extractor job timeout in seconds (Batch attempt timeout and the Step Functions task timeout).
     * @default 3600
     */
    extractTimeoutSeconds: z.number().int().min(60).max(86400).default(3600),
    /**
     * The price table (PriceTable) behind the per-scan cost estimate and the idle
     * network cost. Each key given replaces that key of the default as a whole
     * (e.g. `{"gpuInstances": {...}}` replaces every instance price).
     * @default DEFAULT_PRICE_TABLE - us-east-1 list prices
     */
    prices: z
      .object(PriceTable.partial().shape)
      .strict()
      .transform((p): PriceTable => ({ ...DEFAULT_PRICE_TABLE, ...definedKeys(p) }))
      .default(DEFAULT_PRICE_TABLE),
    /**
     * The cloud cohort workflow (CohortStack, README "Cohorts and re-scoring"): how its
     * Distributed Map cuts a cohort into batches.
     *
     * - `batchSize`: items per batch (ItemBatcher MaxItemsPerBatch): one plan Lambda, at most
     *   one extractor job (container start and model load paid once for the batch) and one
     *   scoring Lambda per batch.
     * - `maxConcurrency`: batches in flight at once (MaxConcurrency); each may hold a GPU job.
     * - `toleratedFailurePercentage`: failed batches the run tolerates before it fails
     *   (a failed item inside a batch is recorded in the report and does not fail the batch).
     * @default { batchSize: 25, maxConcurrency: 4, toleratedFailurePercentage: 10 }
     */
    cohortBatching: z
      .object({
        batchSize: z.number().int().min(1).max(500).default(25),
        maxConcurrency: z.number().int().min(1).max(1000).default(4),
        toleratedFailurePercentage: z.number().min(0).max(100).default(10),
      })
      .strict()
      .default({ batchSize: 25, maxConcurrency: 4, toleratedFailurePercentage: 10 }),
    /**
     * Scheduled cohort runs (EventBridge Scheduler, one schedule each), started with the input
     * a manual start-execution takes (CohortRunInput, core/cohort-run.ts). Each names its
     * site and its items: a manifest of upload keys (CSV with a `key` column, or JSONL of
     * `{"key": ...}`) in the artifacts bucket under cohorts/manifests/, or a prefix of that
     * site's uploads. `cron` is Scheduler's six-field cron body, e.g. `0 3 ? * MON *`, in UTC.
     * @default [] - no schedule; start runs on demand
     */
    cohorts: z
      .array(
        z
          .object({
            name: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be lowercase letters, digits and -'),
            site: SegmentId,
            cron: z
              .string()
              .regex(/^\S+( \S+){5}$/, 'must be six cron fields (minutes hours day-of-month month day-of-week year)'),
            manifest: z
              .object({ key: z.string().min(1), format: z.enum(['csv', 'jsonl']) })
              .strict()
              .optional(),
            prefix: z.string().min(1).optional(),
          })
          .strict()
          .refine((c) => (c.manifest === undefined) !== (c.prefix === undefined), {
            message: 'give exactly one of manifest ({key, format}) or prefix',
          }),
      )
      .default([])
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        for (const [i, c] of list.entries()) {
          if (seen.has(c.name))
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `cohort ${c.name} is configured twice` });
          seen.add(c.name);
        }
      }),
  })
  .strict()
  .superRefine((config, ctx) => {
    // The clip is downloaded to /tmp before decoding: the largest accepted upload must fit there.
    const tmp = (config.lambdaExtractor as SonomarkConfigInputLambda | undefined)?.ephemeralStorageMiB;
    if (config.computeMode === 'lambda' && typeof tmp === 'number' && typeof config.maxUploadBytes === 'number') {
      const needMiB = Math.ceil(config.maxUploadBytes / 1024 ** 2) + LAMBDA_TMP_HEADROOM_MIB;
      if (needMiB > tmp) {
        ctx.addIssue({
          code: 'custom',
          path: ['lambdaExtractor', 'ephemeralStorageMiB'],
          message: `${tmp} MiB of /tmp cannot hold an upload of maxUploadBytes (${config.maxUploadBytes} bytes) plus ${LAMBDA_TMP_HEADROOM_MIB} MiB for decoding; give at least ${needMiB} (at most 10240) or lower maxUploadBytes`,
        });
      }
    }
    // public-ip puts the Batch compute in public subnets; lambda mode has no such compute.
    if (
      config.computeMode === 'lambda' &&
      (config.network as { egress?: unknown } | undefined)?.egress === 'public-ip'
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['network', 'egress'],
        message:
          "egress 'public-ip' is for the Batch compute of computeMode gpu or cpu; computeMode lambda has none and needs no interface endpoint: leave egress at 'endpoints'",
      });
    }
    // zod runs this check even when a field above failed; then that failure is the message.
    const prices = (config.prices as PriceTable | undefined)?.gpuInstances;
    if (config.computeMode !== 'gpu' || prices === undefined || !Array.isArray(config.gpuInstanceTypes)) return;
    for (const type of config.gpuInstanceTypes) {
      if (prices[type] === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['prices', 'gpuInstances', type],
          message: `no price for GPU instance type ${type}; add its on-demand price to prices.gpuInstances`,
        });
      }
    }
  });

export type SonomarkConfig = z.infer<typeof SonomarkConfig>;

/**
 * The sites whose uploads the trigger matches: `siteIds` when given, else the registry's
 * ids when it has any, else undefined (any site: the default, today's behaviour).
 */
export function uploadSiteIds(config: Pick<SonomarkConfig, 'siteIds' | 'sites'>): string[] | undefined {
  if (config.siteIds) return config.siteIds;
  return config.sites.length > 0 ? config.sites.map((s) => s.id) : undefined;
}

/** The price table a site's usage is priced at: the deployment's, with the site's plan over it. */
export function sitePriceTable(config: Pick<SonomarkConfig, 'prices'>, site: SiteConfig | undefined): PriceTable {
  return { ...config.prices, ...definedKeys(site?.prices ?? {}) };
}

function definedKeys<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The interface endpoints `computeMode` needs (see INTERFACE_ENDPOINTS), in table order;
 * none with `egress: 'public-ip'`, where the compute reaches ECR, ECS and CloudWatch Logs
 * through the internet gateway and the Lambda functions need only S3 and DynamoDB
 * (gateway endpoints).
 */
export function interfaceEndpointsFor(
  computeMode: SonomarkConfig['computeMode'],
  egress: NetworkEgress = 'endpoints',
): InterfaceEndpointName[] {
  if (egress === 'public-ip') return [];
  return (Object.keys(INTERFACE_ENDPOINTS) as InterfaceEndpointName[]).filter((name) =>
    (INTERFACE_ENDPOINTS[name].modes as readonly string[]).includes(computeMode),
  );
}

/**
 * Monthly cost of the network while no clip is analysed, at the price table's endpoint
 * price (default: the us-east-1 list price). There is no NAT gateway and no idle compute,
 * so with `egress: 'endpoints'` it is the interface endpoints; with `public-ip` it is $0
 * (no interface endpoint; public IPv4 addresses exist only while hosts run).
 */
export function idleNetworkUsdPerMonth(config: {
  readonly computeMode: SonomarkConfig['computeMode'];
  readonly network: Pick<SonomarkConfig['network'], 'endpointAzs'> & Partial<SonomarkConfig['network']>;
  readonly prices?: PriceTable;
}): number {
  const endpoints = interfaceEndpointsFor(config.computeMode, config.network.egress ?? 'endpoints');
  const endpointAzHours = endpoints.length * config.network.endpointAzs * HOURS_PER_MONTH;
  const usdPerAzHour = (config.prices ?? DEFAULT_PRICE_TABLE).interfaceEndpoint.usdPerAzHour;
  return Math.round(endpointAzHours * usdPerAzHour * 100) / 100;
}

/**
 * Context keys read on their own, outside the `sonomark` object, so the common
 * switch is one flag: `npx cdk deploy --all -c computeMode=cpu`. Such a key wins
 * over the same field in the object (cdk.json sets `sonomark.computeMode`).
 */
export const TOP_LEVEL_CONTEXT_KEYS = ['computeMode'] as const;

function contextObject(raw: unknown): Record<string, unknown> {
  let value: unknown = raw ?? {};
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (err) {
      throw new Error(`CDK context "${CONTEXT_KEY}" is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`Invalid CDK context "${CONTEXT_KEY}": (root): must be an object`);
  }
  return value as Record<string, unknown>;
}

/** Parses the `sonomark` context value (an object, a JSON string, or absent). */
export function parseConfig(raw: unknown, overrides: Record<string, unknown> = {}): SonomarkConfig {
  const parsed = SonomarkConfig.safeParse({ ...contextObject(raw), ...overrides });
  if (!parsed.success) {
    // Every issue, not the first few: a deployment's config is fixed in one go.
    throw new Error(`Invalid CDK context "${CONTEXT_KEY}": ${formatZodIssues(parsed.error, Infinity)}`);
  }
  return parsed.data;
}

/** Reads the config from a construct's context: `sonomark`, then the TOP_LEVEL_CONTEXT_KEYS over it. */
export function configFromContext(node: { tryGetContext(key: string): unknown }): SonomarkConfig {
  const overrides: Record<string, unknown> = {};
  for (const key of TOP_LEVEL_CONTEXT_KEYS) {
    const value = node.tryGetContext(key);
    if (value !== undefined) overrides[key] = value;
  }
  return parseConfig(node.tryGetContext(CONTEXT_KEY), overrides);
}
