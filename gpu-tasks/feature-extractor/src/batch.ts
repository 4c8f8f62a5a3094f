/**
 * Batch mode of the extractor job: a list of items extracted in one container, so a cohort pays
 * the container start and the model load once per batch, not once per clip. The list is a JSON
 * array in S3 (ITEMS_BUCKET/ITEMS_KEY: Batch's environment is too small for a list), each item
 * what one job's environment holds (EXTRACT_ENV). Every item runs through runExtractJob, so a
 * failed item leaves its own error document beside its features key and the others go on.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { EXTRACT_ENV } from '../../../core/contract';
import { ConfigError } from '../../../core/errors';
import { MODALITIES } from '../../../core/modality';
import { ScanId } from '../../../core/schemas';
import { parsePayload } from '../../../core/zod-parse';

export const ExtractItem = z
  .object({
    scanId: ScanId,
    inputBucket: z.string().min(3),
    inputKey: z.string().min(1),
    inputVersionId: z.string().default(''),
    featuresBucket: z.string().min(3),
    featuresKey: z.string().min(1),
    /** The scan's modality (which extractor runs); absent: ultrasound. */
    modality: z.enum(MODALITIES).optional(),
  })
  .strict();
export type ExtractItem = z.infer<typeof ExtractItem>;

export const ExtractItems = z.array(ExtractItem).min(1).max(10_000);

export interface ExtractItemsResult {
  readonly succeeded: readonly string[];
  /** Scan ids whose extraction failed (each has its error document). */
  readonly failed: readonly string[];
}

/** Whether the job's environment names a list of items rather than one scan. */
export function isBatchJob(env: Record<string, string | undefined>): boolean {
  return Boolean(env[EXTRACT_ENV.itemsKey]);
}

/** Reads the item list the environment names. */
export async function readExtractItems(
  env: Record<string, string | undefined>,
  deps: { readonly s3: S3Client },
): Promise<ExtractItem[]> {
  const bucket = env[EXTRACT_ENV.itemsBucket];
  const key = env[EXTRACT_ENV.itemsKey];
  if (!bucket || !key) {
    throw new ConfigError(`A batch job needs both ${EXTRACT_ENV.itemsBucket} and ${EXTRACT_ENV.itemsKey}.`);
  }
  const out = await deps.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  let json: unknown;
  try {
    json = JSON.parse((await out.Body?.transformToString('utf8')) ?? '');
  } catch {
    throw new ConfigError(`The item list at ${EXTRACT_ENV.itemsKey} is not JSON (expected an array of items).`);
  }
  return parsePayload(ExtractItems, json, 'extractor item list');
}
