/**
 * Score: one expert on one scan's features document. Pure apart from the clients
 * and the model directory it is handed; the ONNX session is cached per container.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type * as ort from 'onnxruntime-node';
import { ModelError } from '../../core/errors';
import { findExpert, type LoadedManifest } from '../../core/manifest';
import { putExpertResult } from '../../core/results-store';
import { ExpertTaskInput, type ExpertResult } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';
import { readFeatures, scoreFeatures } from '../shared/scoring';

// The scoring itself is shared with the cohort scorer (lambdas/shared/scoring.ts).
export { expertSession, readFeatures, scoreFeatures } from '../shared/scoring';

export interface ScoreDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** The models, in a local folder: the Lambda bundle's or local mode's manifest. */
  readonly models?: LoadedManifest;
  /**
   * The models as this expert version needs them (the cloud: the artifacts bucket's manifest and
   * file, fetched into the container, core/bucket-models.ts). Used instead of `models` when set.
   */
  readonly resolveModels?: (expert: { name: string; version: string; sha256: string }) => Promise<LoadedManifest>;
  readonly now?: () => Date;
  /** Per-container session cache; defaults to the module-level one. */
  readonly sessions?: Map<string, Promise<ort.InferenceSession>>;
}

export async function scoreExpert(input: unknown, deps: ScoreDeps): Promise<ExpertResult> {
  const task = parsePayload(ExpertTaskInput, input, 'expert task input');
  const { scan } = task;
  const models = deps.resolveModels ? await deps.resolveModels(task.expert) : deps.models;
  if (!models) throw new ModelError('The expert function has no models: set MODELS_DIR or ARTIFACTS_BUCKET.');
  const entry = findExpert(models.manifest, task.expert.name);
  if (entry.version !== task.expert.version || entry.sha256 !== task.expert.sha256) {
    throw new ModelError(
      `Expert "${entry.name}" was requested as version ${task.expert.version} (sha256 ${task.expert.sha256.slice(0, 12)}…), ` +
        `but this function's manifest has version ${entry.version} (sha256 ${entry.sha256.slice(0, 12)}…). Redeploy so the workflow and the function agree.`,
    );
  }

  const features = await readFeatures(deps.s3, scan.featuresBucket, scan.featuresKey);
  if (features.scanId !== scan.scanId) {
    throw new ModelError(
      `Features document at the scan's features key belongs to scan ${features.scanId}, not ${scan.scanId}.`,
    );
  }
  const result = await scoreFeatures(features, entry, { ...deps, models });
  await putExpertResult(deps.doc, deps.table, result, scan.siteId);
  return result;
}
