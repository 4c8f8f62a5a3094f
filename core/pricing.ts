/**
 * The estimated cost of one completed scan, from list prices (config `prices`).
 *
 * Pure: the CDK app resolves this deployment's rates once (scanRates, lib/rates.ts) and hands
 * them to the Finalize function as the SCAN_RATES environment variable; Finalize
 * applies them to the scan's measured seconds (estimateScanCost) and stores the
 * result in the scan's usage record. It is an estimate, not a bill:
 *
 * - the extractor is priced at the on-demand rate of the priciest configured
 *   capacity (GPU mode: the dearest `gpuInstanceTypes` entry; CPU mode: the Fargate
 *   task; Lambda mode: the function's GB-seconds plus its request, no ceiling), a ceiling, since the spot environment comes first and which one ran the
 *   job is not recorded; it counts the job's running seconds only (no instance
 *   start-up or scale-down idle, no image pull);
 * - experts are priced by their inference milliseconds at their memory size; the
 *   billed duration also covers model loading and the S3/DynamoDB calls, so this
 *   part is low;
 * - Lambda requests and state transitions are those of a scan that completes
 *   without retries;
 * - left out: the duration of StartExecution, Validate and Finalize, S3, DynamoDB,
 *   KMS and CloudWatch requests, and endpoint data processing.
 */
import { z } from 'zod';
import { STATE } from './contract';

/** States a scan that completes passes once each (without retries). */
export const COMPLETED_SCAN_STATES = [
  STATE.start,
  STATE.validate,
  STATE.validated,
  STATE.route,
  STATE.claimed,
  STATE.extract,
  STATE.loadExperts,
  STATE.score,
  STATE.finalize,
  STATE.done,
] as const;

/** States a completed scan passes once per expert (Score's iterations). */
export const PER_EXPERT_STATES = [STATE.scoreExpert] as const;

/** Lambda invocations of a completed scan besides one per expert: StartExecution, Validate, LoadExperts, Finalize. */
export const FIXED_LAMBDA_REQUESTS_PER_SCAN = 4;

const UsdRate = z.number().finite().nonnegative();

/** One deployment's resolved rates: what the Finalize function needs to price a scan. */
export const ScanRates = z
  .object({
    /** Where the prices come from and which capacity the extractor is priced at. */
    basis: z.string().min(1),
    extractor: z
      .object({
        usdPerSecond: UsdRate,
        /** Billed seconds are at least this (Fargate bills a minute at least). */
        minimumSeconds: z.number().nonnegative(),
        /** A fee per extraction on top of its seconds: the Lambda request of `computeMode: 'lambda'`. @default 0 */
        usdPerRun: UsdRate.optional(),
      })
      .strict(),
    lambda: z.object({ usdPerGbSecond: UsdRate, usdPerRequest: UsdRate }).strict(),
    /** Memory of each expert function, by expert name. */
    expertMemoryMb: z.record(z.string().min(1), z.number().int().min(128).max(10240)),
    usdPerStateTransition: UsdRate,
  })
  .strict();

export type ScanRates = z.infer<typeof ScanRates>;

/** The estimated cost of one completed scan, USD, by part; stored in its usage record. */
export interface ScanCostEstimate {
  readonly totalUsd: number;
  /** Extractor job seconds (at least the minimum) × the extractor's rate. */
  readonly extractorUsd: number;
  /** Experts' inference milliseconds × their memory (GB) × the Lambda GB-second price. */
  readonly expertsUsd: number;
  /** Lambda requests: StartExecution, Validate, LoadExperts, each expert, Finalize. */
  readonly requestsUsd: number;
  /** State transitions of a completed scan without retries. */
  readonly stateTransitionsUsd: number;
  /** ScanRates.basis: a list-price estimate, and of which capacity. */
  readonly basis: string;
}

export interface ScanUsage {
  /** Measured Batch job seconds; null when the job summary lacks timestamps. */
  readonly extractorSeconds: number | null;
  /** Inference milliseconds, by expert name. */
  readonly expertMs: Readonly<Record<string, number>>;
}

/** Rounds to 1e-10 USD: far below any price here, above float noise. */
const roundUsd = (usd: number): number => Math.round(usd * 1e10) / 1e10;

/**
 * The estimated cost of one completed scan. Null when it cannot be estimated: the
 * extractor seconds were not measured, or an expert has no memory size in `rates`
 * (rates of another deployment).
 */
export function estimateScanCost(usage: ScanUsage, rates: ScanRates): ScanCostEstimate | null {
  if (usage.extractorSeconds === null) return null;
  const experts = Object.entries(usage.expertMs);
  let expertGbSeconds = 0;
  for (const [name, ms] of experts) {
    const memoryMb = rates.expertMemoryMb[name];
    if (memoryMb === undefined) return null;
    expertGbSeconds += (ms / 1000) * (memoryMb / 1024);
  }
  const extractorUsd =
    Math.max(usage.extractorSeconds, rates.extractor.minimumSeconds) * rates.extractor.usdPerSecond +
    (rates.extractor.usdPerRun ?? 0);
  const expertsUsd = expertGbSeconds * rates.lambda.usdPerGbSecond;
  const requestsUsd = (FIXED_LAMBDA_REQUESTS_PER_SCAN + experts.length) * rates.lambda.usdPerRequest;
  const transitions = COMPLETED_SCAN_STATES.length + PER_EXPERT_STATES.length * experts.length;
  const stateTransitionsUsd = transitions * rates.usdPerStateTransition;
  return {
    totalUsd: roundUsd(extractorUsd + expertsUsd + requestsUsd + stateTransitionsUsd),
    extractorUsd: roundUsd(extractorUsd),
    expertsUsd: roundUsd(expertsUsd),
    requestsUsd: roundUsd(requestsUsd),
    stateTransitionsUsd: roundUsd(stateTransitionsUsd),
    basis: rates.basis,
  };
}
