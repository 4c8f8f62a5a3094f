/**
 * The extractor as a Lambda function (`computeMode: 'lambda'`, lib/constructs/extractor-function.ts):
 * a thin entry over the same job code the Batch container runs (main.ts runExtractJob and
 * runExtractItems), so the two modes cannot drift apart. The payload carries what the Batch
 * job gets as container environment (EXTRACT_ENV); the function's own environment carries the
 * rest (MODELS_DIR, FFMPEG_PATH, ONNX_EXECUTION_PROVIDER, ARTIFACTS_BUCKET for the DICOM salt).
 *
 * A failed extraction writes its error document first (runExtractJob), exactly as the
 * container does, and RecordFailure reads it for the user's reason. A transient failure
 * (throttling, a 5xx, a reset connection) is thrown as Sonomark.TransientError, which the
 * Extract state's first retrier (TRANSIENT_RETRY) retries, as Batch retries the container's
 * EXTRACTOR_EXIT_TRANSIENT exit.
 *
 * The model session and the S3 client live for the execution environment: a warm
 * invocation pays neither the model load nor a new connection.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { ENV, EXTRACT_ENV } from '../../../core/contract';
import { requireEnv } from '../../../core/env';
import { MODALITIES } from '../../../core/modality';
import { toWorkflowError } from '../../../core/transient';
import { parsePayload } from '../../../core/zod-parse';
import { errorLogLine, runExtractItems, runExtractJob, scanEnv, type ExtractJobDeps } from './main';

/** One scan (the workflow's Extract state), field for field the Batch job's EXTRACT_ENV. */
export const ExtractScanPayload = z
  .object({
    scanId: z.string(),
    inputBucket: z.string().min(1),
    inputKey: z.string().min(1),
    /** '' when the bucket is unversioned. */
    inputVersionId: z.string(),
    featuresBucket: z.string().min(1),
    featuresKey: z.string().min(1),
    /** The scan's modality (ScanRef.modality): which extractor runs. Absent: ultrasound. */
    modality: z.enum(MODALITIES).optional(),
  })
  .strict();

/** A cohort batch (the cohort workflow's ExtractBatch state): the item list object (batch.ts). */
export const ExtractItemsPayload = z.object({ itemsBucket: z.string().min(1), itemsKey: z.string().min(1) }).strict();

export const ExtractPayload = z.union([ExtractScanPayload, ExtractItemsPayload]);
export type ExtractPayload = z.infer<typeof ExtractPayload>;

/**
 * What the Extract state reads, the same fields its Batch form selects from the job
 * description (jobId, startedAt, stoppedAt in epoch milliseconds): Finalize bills the
 * extractor's seconds from them in every mode. A batch adds its item counts.
 */
export interface ExtractLambdaResult {
  readonly jobId: string;
  readonly startedAt: number;
  readonly stoppedAt: number;
  readonly succeeded?: number;
  readonly failed?: number;
}

/** The payload as the job's environment: the very variables readExtractEnv / readExtractItems check. */
export function payloadEnv(payload: ExtractPayload): Record<string, string> {
  if ('itemsKey' in payload) {
    return { [EXTRACT_ENV.itemsBucket]: payload.itemsBucket, [EXTRACT_ENV.itemsKey]: payload.itemsKey };
  }
  return scanEnv(payload);
}

/**
 * Runs one invocation with the given job dependencies (the handler's: the function's S3
 * client and models; local mode's: s3rver and the local models). Errors are classified as
 * the workflow sees them: transient ones become Sonomark.TransientError.
 */
export async function extractInvocation(
  input: unknown,
  requestId: string,
  baseEnv: Record<string, string | undefined>,
  deps: ExtractJobDeps,
): Promise<ExtractLambdaResult> {
  // One schema at a time: a union's error would say only "Invalid input", not which field is wrong.
  const isBatch = typeof input === 'object' && input !== null && 'itemsKey' in input;
  const payload: ExtractPayload = isBatch
    ? parsePayload(ExtractItemsPayload, input, 'Extract input (a cohort batch: itemsBucket, itemsKey)')
    : parsePayload(ExtractScanPayload, input, 'Extract input (one scan)');
  const env = { ...baseEnv, ...payloadEnv(payload) };
  const startedAt = Date.now();
  try {
    if ('itemsKey' in payload) {
      const { succeeded, failed } = await runExtractItems(env, deps);
      return { jobId: requestId, startedAt, stoppedAt: Date.now(), succeeded: succeeded.length, failed: failed.length };
    }
    await runExtractJob(env, deps);
    return { jobId: requestId, startedAt, stoppedAt: Date.now() };
  } catch (err) {
    throw toWorkflowError(err);
  }
}

let s3: S3Client | undefined;

/** The Lambda entry (the image's CMD `dist/lambda.handler`). */
export async function handler(event: unknown, context: { awsRequestId: string }): Promise<ExtractLambdaResult> {
  const env = process.env;
  try {
    s3 ??= new S3Client({ region: requireEnv('AWS_REGION', env) });
    return await extractInvocation(event, context.awsRequestId, env, { s3, modelsDir: requireEnv(ENV.modelsDir, env) });
  } catch (err) {
    // The scan id only: keys are redacted from the message (errorLogLine), never logged whole.
    const scanId =
      typeof event === 'object' && event !== null && typeof (event as { scanId?: unknown }).scanId === 'string'
        ? (event as { scanId: string }).scanId
        : undefined;
    const keys = ['inputKey', 'featuresKey', 'itemsKey']
      .map((k) => (event as Record<string, unknown> | null)?.[k])
      .filter((v): v is string => typeof v === 'string');
    console.error(errorLogLine(err, scanId, keys));
    throw err;
  }
}
