/**
 * ScoreBatch of the cohort workflow: every planned scan of one batch scored by the manifest's
 * current experts through the Score step's own code (scoreFeatures, then putExpertResult, which
 * stores the version beside earlier ones and moves the pointer), then the batch's outcomes
 * (core/cohort.ts CohortItemOutcome) written beside the run for the report. No GPU: it reads
 * features documents, the models and the results table. An expert whose current version has
 * already scored a scan is not run again, so a resumed run redoes nothing.
 *
 * A scan this batch claimed (PlannedScan.claimed) ends as the per-upload workflow's would:
 * COMPLETED with a summary and a usage record (Finalize's completeScan; the batch job's measured
 * seconds divided over its clips, the cost from core/pricing.ts), or FAILED with the extractor's
 * own reason (RecordFailure's failScan). A scan already COMPLETED is re-scored only: not billed again.
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { CohortItemOutcome } from '../../core/cohort';
import { BatchPlan, batchOutcomesKey, type PlannedScan } from '../../core/cohort-run';
import { extractErrorKey } from '../../core/keys';
import type { LoadedManifest } from '../../core/manifest';
import { estimateScanCost, type ScanRates } from '../../core/pricing';
import {
  completeScan,
  failScan,
  listExpertResultVersions,
  measuredSeconds,
  putExpertResult,
  type ExpertResultItem,
  type ScanSummary,
} from '../../core/results-store';
import { ProblemDetail, type ExpertEntry, type ModelRef } from '../../core/schemas';
import { isMissingObject } from '../../core/s3-errors';
import { parsePayload } from '../../core/zod-parse';
import { readFeatures, scoreFeatures } from '../shared/scoring';
import { extractorFor } from '../../core/manifest';

export interface ScoreBatchDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly artifactsBucket: string;
  /** The current manifest with every expert's model present locally (BucketModels in the cloud). */
  readonly models: () => Promise<LoadedManifest>;
  /** This deployment's prices, for the usage records' cost estimate (env SCAN_RATES, as Finalize's). */
  readonly rates: ScanRates;
  readonly now?: () => Date;
}

/**
 * The batch's state: the plan, and the extractor job's timing when the job ran and succeeded
 * (the Batch task's resultSelector; absent when no job ran or it failed). Other fields of the
 * state (the map's Items, an extractError) are not read.
 */
export const ScoreBatchInput = z.object({
  plan: BatchPlan,
  extract: z.object({ startedAt: z.number().optional(), stoppedAt: z.number().optional() }).optional(),
});

export interface ScoreBatchOutput {
  readonly batchId: string;
  readonly outcomesKey: string;
  readonly counts: Record<CohortItemOutcome['action'], number>;
}

/**
 * The extractor's own reason for an item it could not extract (its error document, whose code
 * the scan item records as RecordFailure would), or a generic EXTRACT_FAILED when it left none.
 */
async function extractFailure(s3: S3Client, scan: PlannedScan): Promise<ProblemDetail> {
  try {
    const out = await s3.send(
      new GetObjectCommand({ Bucket: scan.featuresBucket, Key: extractErrorKey(scan.featuresKey) }),
    );
    const doc = JSON.parse((await out.Body?.transformToString('utf8')) ?? '{}') as { message?: unknown };
    const problem = ProblemDetail.safeParse(doc);
    if (problem.success) return problem.data;
    if (typeof doc.message === 'string' && doc.message !== '') return { code: 'EXTRACT_FAILED', message: doc.message };
  } catch {
    // No error document (the job never ran, or was stopped): the generic reason below.
  }
  return {
    code: 'EXTRACT_FAILED',
    message: 'The extractor wrote no features for this clip (its batch job failed or was stopped).',
  };
}

/** A scored scan's outcome with what its scan item needs: the current results, or the failure to record. */
interface Scored {
  readonly outcome: CohortItemOutcome;
  readonly current: readonly ExpertResultItem[];
  readonly problem?: ProblemDetail;
}

async function scoreScan(
  scan: PlannedScan,
  experts: readonly ExpertEntry[],
  loaded: LoadedManifest,
  deps: ScoreBatchDeps,
): Promise<Scored> {
  const x = extractorFor(loaded.manifest, 'ultrasound');
  const extractor = `${x.name}@${x.version}`;
  const failed = (code: string, message: string, problem: ProblemDetail = { code, message }): Scored => ({
    outcome: {
      item: scan.item,
      scanId: scan.scanId,
      action: 'failed',
      error: { code, message },
      results: [],
      current: {},
      extractor,
    },
    current: [],
    problem,
  });
  const before = await listExpertResultVersions(deps.doc, deps.table, scan.siteId, scan.scanId);
  const todo = experts.filter((e) => before.current[e.name] !== e.version);
  if (todo.length > 0) {
    let features;
    try {
      features = await readFeatures(deps.s3, scan.featuresBucket, scan.featuresKey);
    } catch (err) {
      if (!isMissingObject(err)) return failed('SCORE_FAILED', (err as Error).message);
      const problem = await extractFailure(deps.s3, scan);
      return failed('EXTRACT_FAILED', problem.message, problem);
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
    outcome: {
      item: scan.item,
      scanId: scan.scanId,
      // Nothing to run: every current expert version had scored it (a resumed run).
      action: todo.length === 0 ? 'done' : scan.action,
      results: after.results,
      current: after.current,
      extractor,
    },
    current: after.results.filter((r) => after.current[r.expert.name] === r.expert.version),
  };
}

/**
 * Ends a claimed scan as Finalize or RecordFailure would: COMPLETED with its current results'
 * summary and a usage record (extractor seconds: its share of this batch's job when it was
 * extracted here and the job's timing is known, else null), or FAILED with the reason.
 */
async function recordScan(
  scan: PlannedScan,
  scored: Scored,
  extractor: ModelRef,
  extractorSeconds: number | null,
  deps: ScoreBatchDeps,
): Promise<void> {
  const now = (deps.now?.() ?? new Date()).toISOString();
  if (scored.problem) {
    await failScan(
      deps.doc,
      deps.table,
      scan.scanId,
      // The claim holds the object's bucket, key and receivedAt; failScan keeps what the item has.
      { siteId: scan.siteId, studyId: scan.studyId, bucket: '', key: scan.item },
      scored.problem,
      now,
    );
    return;
  }
  const expertMs = Object.fromEntries(scored.current.map((r) => [r.expert.name, r.inferMs]));
  const totalExpertMs = scored.current.reduce((sum, r) => sum + r.inferMs, 0);
  const seconds = scan.action === 'analysed' ? extractorSeconds : null;
  const summary: ScanSummary = {
    experts: Object.fromEntries(scored.current.map((r) => [r.expert.name, r.output])),
    expertVersions: Object.fromEntries(
      scored.current.map((r) => [r.expert.name, { version: r.expert.version, sha256: r.expert.sha256 }]),
    ),
    extractor,
    durations: { extractorSeconds: seconds, expertMs, totalExpertMs },
  };
  await completeScan(deps.doc, deps.table, {
    scan: { scanId: scan.scanId, siteId: scan.siteId, studyId: scan.studyId, extractor },
    summary,
    usage: {
      extractorSeconds: seconds,
      expertMs: totalExpertMs,
      estimatedCost: estimateScanCost({ extractorSeconds: seconds, expertMs }, deps.rates),
    },
    now,
  });
}

export async function scoreBatch(input: unknown, deps: ScoreBatchDeps): Promise<ScoreBatchOutput> {
  const { plan, extract } = parsePayload(ScoreBatchInput, input, 'cohort score input');
  const loaded = await deps.models();
  // The job's measured seconds, shared equally by the clips it extracted (one container start
  // and model load paid once for all of them); null when no job ran here or its timing is unknown.
  const jobSeconds = measuredSeconds(extract?.startedAt, extract?.stoppedAt);
  const perClip = jobSeconds !== null && plan.extractCount > 0 ? jobSeconds / plan.extractCount : null;
  const outcomes: CohortItemOutcome[] = plan.failures.map((f) => ({
    item: f.item,
    scanId: f.scanId,
    action: 'failed' as const,
    error: { code: f.code, message: f.message },
    results: [],
    current: {},
  }));
  const recorded = new Set<string>();
  for (const scan of plan.scans) {
    const scored = await scoreScan(scan, loaded.manifest.experts, loaded, deps);
    outcomes.push(scored.outcome);
    // The same bytes listed twice are one scan: recorded (and billed) once.
    if (scan.claimed && !recorded.has(scan.scanId)) {
      recorded.add(scan.scanId);
      await recordScan(scan, scored, plan.extractor, perClip, deps);
    }
  }
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
