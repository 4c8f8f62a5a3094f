/**
 * ScoreBatch of the cohort workflow: every planned scan of one batch scored by the manifest's
 * current experts through the Score step's own code (scoreFeatures, then putExpertResult, which
 * stores the version beside earlier ones and moves the pointer), then the batch's outcomes
 * (core/cohort.ts CohortItemOutcome) written beside the run for the report. No GPU: it reads
 * features documents, the models and the results table. An expert whose current version has
 * already scored a scan is not run again, so a resumed run redoes nothing.
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { CohortItemOutcome } from '../../core/cohort';
import { BatchPlan, batchOutcomesKey, type PlannedScan } from '../../core/cohort-run';
import { extractErrorKey } from '../../core/keys';
import type { LoadedManifest } from '../../core/manifest';
import { listExpertResultVersions, putExpertResult } from '../../core/results-store';
import type { ExpertEntry } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';
import { readFeatures, scoreFeatures } from '../shared/scoring';

export interface ScoreBatchDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly artifactsBucket: string;
  /** The current manifest with every expert's model present locally (BucketModels in the cloud). */
  readonly models: () => Promise<LoadedManifest>;
  readonly now?: () => Date;
}

export const ScoreBatchInput = z.object({ plan: BatchPlan });

export interface ScoreBatchOutput {
  readonly batchId: string;
  readonly outcomesKey: string;
  readonly counts: Record<CohortItemOutcome['action'], number>;
}

/**
 * No object at the key. Without s3:ListBucket (these roles read by key, never list) S3 answers a
 * missing key with 403 rather than 404, so AccessDenied on a key this role may read means missing.
 */
const isMissing = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    e.name === 'NoSuchKey' ||
    e.name === 'NotFound' ||
    e.name === 'AccessDenied' ||
    e.$metadata?.httpStatusCode === 404 ||
    e.$metadata?.httpStatusCode === 403
  );
};

/** The extractor's own reason for an item it could not extract (its error document), when it left one. */
async function extractFailure(s3: S3Client, scan: PlannedScan): Promise<string> {
  try {
    const out = await s3.send(
      new GetObjectCommand({ Bucket: scan.featuresBucket, Key: extractErrorKey(scan.featuresKey) }),
    );
    const doc = JSON.parse((await out.Body?.transformToString('utf8')) ?? '{}') as { message?: unknown };
    if (typeof doc.message === 'string') return doc.message;
  } catch {
    // No error document (the job never ran, or was stopped): the generic reason below.
  }
  return 'The extractor wrote no features for this clip (its batch job failed or was stopped).';
}

async function scoreScan(
  scan: PlannedScan,
  experts: readonly ExpertEntry[],
  loaded: LoadedManifest,
  deps: ScoreBatchDeps,
): Promise<CohortItemOutcome> {
  const extractor = `${loaded.manifest.extractor.name}@${loaded.manifest.extractor.version}`;
  const failed = (code: string, message: string): CohortItemOutcome => ({
    item: scan.item,
    scanId: scan.scanId,
    action: 'failed',
    error: { code, message },
    results: [],
    current: {},
    extractor,
  });
  const before = await listExpertResultVersions(deps.doc, deps.table, scan.siteId, scan.scanId);
  const todo = experts.filter((e) => before.current[e.name] !== e.version);
  if (todo.length > 0) {
    let features;
    try {
      features = await readFeatures(deps.s3, scan.featuresBucket, scan.featuresKey);
    } catch (err) {
      if (!isMissing(err)) return failed('SCORE_FAILED', (err as Error).message);
      return failed('EXTRACT_FAILED', await extractFailure(deps.s3, scan));
    }
    try {
      for (const entry of todo) {
        const result = await scoreFeatures(features, entry, { models: loaded, ...(deps.now ? { now: deps.now } : {}) });
        await putExpertResult(deps.doc, deps.table, result, scan.siteId);
      }
    } catch (err) {
      return failed('SCORE_FAILED', (err as Error).message);
    }
  }
  const after =
    todo.length > 0 ? await listExpertResultVersions(deps.doc, deps.table, scan.siteId, scan.scanId) : before;
  return {
    item: scan.item,
    scanId: scan.scanId,
    // Nothing to run: every current expert version had scored it (a resumed run).
    action: todo.length === 0 ? 'done' : scan.action,
    results: after.results,
    current: after.current,
    extractor,
  };
}

export async function scoreBatch(input: unknown, deps: ScoreBatchDeps): Promise<ScoreBatchOutput> {
  const { plan } = parsePayload(ScoreBatchInput, input, 'cohort score input');
  const loaded = await deps.models();
  const outcomes: CohortItemOutcome[] = plan.failures.map((f) => ({
    item: f.item,
    scanId: f.scanId,
    action: 'failed' as const,
    error: { code: f.code, message: f.message },
    results: [],
    current: {},
  }));
  for (const scan of plan.scans) outcomes.push(await scoreScan(scan, loaded.manifest.experts, loaded, deps));
  const outcomesKey = batchOutcomesKey(plan.runPrefix, plan.batchId);
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.artifactsBucket,
      Key: outcomesKey,
      Body: JSON.stringify(outcomes),
      ContentType: 'application/json',
    }),
  );
  const counts = { done: 0, scored: 0, analysed: 0, failed: 0 };
  for (const o of outcomes) counts[o.action]++;
  // The map's output keeps counts and ids only: the ResultWriter file holds no object key.
  return { batchId: plan.batchId, outcomesKey, counts };
}
