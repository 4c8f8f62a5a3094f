/**
 * Scoring one expert on one features document, shared by the Score step's expert functions
 * (lambdas/expert) and the cohort workflow's batch scorer (lambdas/cohort-score), so a result is
 * the same whichever wrote it; local re-scoring (local/rescore.ts) runs it too. The ONNX session
 * is cached per container.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import * as ort from 'onnxruntime-node';
import { ModelError, PayloadError } from '../../core/errors';
import { interpretProbabilities } from '../../core/expert-output';
import { featureVector } from '../../core/features';
import { readVerifiedModel, type LoadedManifest } from '../../core/manifest';
import { FeaturesDocument, type ExpertEntry, type ExpertResult } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';

/** What scoring needs besides the models: a clock and the per-container session cache. */
export interface ScoringOptions {
  readonly now?: () => Date;
  /** Per-container session cache; defaults to the module-level one. */
  readonly sessions?: Map<string, Promise<ort.InferenceSession>>;
}

const SESSIONS = new Map<string, Promise<ort.InferenceSession>>();

/** Loads (once per container) the verified ONNX session for an expert. */
export function expertSession(
  models: LoadedManifest,
  entry: ExpertEntry,
  sessions: Map<string, Promise<ort.InferenceSession>> = SESSIONS,
): Promise<ort.InferenceSession> {
  const cacheKey = `${models.dir}\0${entry.file}\0${entry.sha256}`;
  let session = sessions.get(cacheKey);
  if (!session) {
    const bytes = readVerifiedModel(models.dir, entry);
    // One thread: a 120-input model runs in microseconds; a thread pool would only spin.
    session = ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    // A failed load must not poison the cache for the next invocation.
    session.catch(() => sessions.delete(cacheKey));
    sessions.set(cacheKey, session);
  }
  return session;
}

/**
 * One expert on one stored features document, nothing written: the Score step above and a
 * re-score of stored features (local/rescore.ts) both run this, so a re-scored result is the
 * one the workflow would have written. Throws ModelError when the expert cannot read these features.
 */
export async function scoreFeatures(
  features: FeaturesDocument,
  entry: ExpertEntry,
  deps: { readonly models: LoadedManifest } & ScoringOptions,
): Promise<ExpertResult> {
  if (features.modality !== entry.extractor.modality) {
    throw new ModelError(
      `Expert "${entry.name}"@${entry.version} reads ${entry.extractor.modality} features, but this scan's features are ${features.modality}: ` +
        `an expert scores only scans of its own modality.`,
    );
  }
  if (features.extractor.name !== entry.extractor.name || features.extractor.version !== entry.extractor.version) {
    throw new ModelError(
      `Expert "${entry.name}"@${entry.version} was trained on ${entry.extractor.name}@${entry.extractor.version} features, ` +
        `but this scan's features come from ${features.extractor.name}@${features.extractor.version}. Re-run the extractor or use a matching expert.`,
    );
  }
  const vector = featureVector(features, entry.input.blocks);
  if (vector.length !== entry.input.dim) {
    throw new ModelError(
      `Expert "${entry.name}" expects ${entry.input.dim} input values, but blocks [${entry.input.blocks.join(', ')}] of the features document give ${vector.length}.`,
    );
  }

  const session = await expertSession(deps.models, entry, deps.sessions);
  const started = performance.now();
  const outputs = await session.run({ [entry.input.name]: new ort.Tensor('float32', vector, [1, vector.length]) });
  const inferMs = performance.now() - started;
  const probs = outputs[entry.output.name];
  if (!probs) {
    throw new ModelError(
      `Expert "${entry.name}" has no output named "${entry.output.name}" (has: ${Object.keys(outputs).join(', ')}).`,
    );
  }

  return {
    scanId: features.scanId,
    expert: { name: entry.name, version: entry.version, sha256: entry.sha256 },
    extractor: features.extractor,
    output: interpretProbabilities(entry, probs.data as Float32Array),
    inferMs,
    createdAt: (deps.now?.() ?? new Date()).toISOString(),
  };
}

/** The features document at a scan's features key, validated. */
export async function readFeatures(s3: S3Client, bucket: string, key: string): Promise<FeaturesDocument> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = out.Body ? await out.Body.transformToString('utf8') : '';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PayloadError('Invalid features document: not valid JSON.');
  }
  return parsePayload(FeaturesDocument, json, 'features document');
}
