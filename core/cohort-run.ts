/**
 * The cloud cohort run (lib/constructs/cohort-workflow.ts), pure: its input, where its files
 * live in the artifacts bucket, and the one decision that keeps re-scoring off the GPU: which
 * items of a batch already have features for the current extractor (score only) and which
 * need the extractor. The Lambda handlers (lambdas/cohort-*) only add S3 and DynamoDB to this.
 *
 * Scan identity: a scan id is derived from the clip's bytes (core/scan-id.ts), so the plan step
 * hashes each object, as Validate does, instead of trusting a key: a key re-uploaded with other
 * bytes is another scan, and the same bytes map to the scan a per-upload execution analysed
 * (whose features and results the cohort then reuses). There is no key → scan index to read;
 * hashing reads each clip once per run, in the plan Lambda, which costs far less than a GPU job.
 */
import { z } from 'zod';
import { COHORT_REPORT_HTML } from './cohort';
import { featuresKey, parseUploadKey, UPLOADS_PREFIX } from './keys';
import type { ScanItem } from './results-store';
import { DEFAULT_MODALITY, MODALITIES } from './modality';
import { ModelRef, ScanId, SegmentId } from './schemas';

/** Where a cohort's items come from: a manifest object (CSV with a `key` column, or JSONL of {key}), or a prefix listing. */
export const CohortSource = z.union([
  z
    .object({
      manifest: z
        .object({ bucket: z.string().min(3), key: z.string().min(1), format: z.enum(['csv', 'jsonl']) })
        .strict(),
    })
    .strict(),
  z.object({ prefix: z.string().min(1) }).strict(),
]);
export type CohortSource = z.infer<typeof CohortSource>;

/** The execution input of the cohort state machine (a schedule's, or `aws stepfunctions start-execution`'s). */
export const CohortRunInput = z.intersection(z.object({ site: SegmentId }), CohortSource);
export type CohortRunInput = z.infer<typeof CohortRunInput>;

/** The artifacts bucket's folder for cohorts: manifests under it, each run's files under `{site}/{runId}/`. */
export const COHORTS_PREFIX = 'cohorts/';
/** Where cohort manifests must be (the state machine may read nothing else of the artifacts bucket). */
export const COHORT_MANIFESTS_PREFIX = `${COHORTS_PREFIX}manifests/`;

/** `cohorts/{site}/{runId}/`: the run's ResultWriter output, batch files and report. */
export function cohortRunPrefix(siteId: string, runId: string): string {
  return `${COHORTS_PREFIX}${siteId}/${runId}/`;
}
/**
 * A cohort run's id as a path segment: the cohort execution's name (Step Functions generates a
 * UUID when none is given) or local `sonomark cohort run`'s id. Narrower than what Step Functions
 * accepts in a name (it also allows `.`, `!`, `@`, `+`, `=` and more): name runs with letters,
 * digits, `-` and `_` to reach their page through the API.
 */
export const CohortRunId = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$/,
    'must be 1 to 80 letters, digits, "-" or "_", starting with a letter or digit (the cohort execution name)',
  );

/** `cohorts/{site}/{runId}/report.html`: the run's HTML page, the one object the API links to. */
export const cohortReportKey = (siteId: string, runId: string): string =>
  `${cohortRunPrefix(siteId, runId)}${COHORT_REPORT_HTML}`;

/** A batch's extractor item list (ITEMS_KEY of its Batch job). */
export const batchItemsKey = (runPrefix: string, batchId: string): string =>
  `${runPrefix}batches/${batchId}.items.json`;
/** A batch's outcomes (one CohortItemOutcome per item), read by the report. */
export const batchOutcomesKey = (runPrefix: string, batchId: string): string =>
  `${runPrefix}batches/${batchId}.outcomes.json`;
export const BATCH_OUTCOMES_SUFFIX = '.outcomes.json';

/** One map item after the ItemSelector: the upload key, whatever the reader. */
export const CohortItem = z.object({ key: z.string().min(1) }).strict();

/** What the item processor receives for one batch (ItemBatcher: Items plus BatchInput). */
export const PlanBatchInput = z.object({
  Items: z.array(CohortItem).min(1),
  BatchInput: z.object({ site: SegmentId, runPrefix: z.string().min(1) }),
});
export type PlanBatchInput = z.infer<typeof PlanBatchInput>;

/** An item the plan resolved to a scan, with where its features are (or will be). */
export const PlannedScan = z.object({
  item: z.string(),
  scanId: ScanId,
  siteId: SegmentId,
  featuresBucket: z.string().min(3),
  featuresKey: z.string().min(1),
  /** Which extractor's features (the scan's modality, as Validate or the plan decided it). */
  modality: z.enum(MODALITIES).default(DEFAULT_MODALITY),
  /** `scored`: features existed; `analysed`: extracted in this batch's job. */
  action: z.enum(['scored', 'analysed']),
  /** The scan's study (its upload key's), for the usage record. */
  studyId: SegmentId,
  /**
   * This batch holds the scan's RUNNING claim (the plan claimed it, as Validate does), so the
   * score step records it COMPLETED with a usage record, or FAILED. False for a scan already
   * COMPLETED (re-scored only, never billed again) or held by another execution.
   */
  claimed: z.boolean().default(false),
});
export type PlannedScan = z.infer<typeof PlannedScan>;

/** An item the plan could not resolve (outside the site, unreadable): reported as failed. */
export const PlanFailure = z.object({
  item: z.string(),
  scanId: ScanId.nullable(),
  code: z.string(),
  message: z.string(),
});
export type PlanFailure = z.infer<typeof PlanFailure>;

/** The plan's answer; `extractCount` drives the Choice that skips the Batch job. */
export const BatchPlan = z.object({
  batchId: z.string().regex(/^[0-9a-f]{16}$/),
  site: SegmentId,
  runPrefix: z.string(),
  extractor: ModelRef,
  scans: z.array(PlannedScan),
  failures: z.array(PlanFailure),
  extractCount: z.number().int().nonnegative(),
  /** ITEMS_BUCKET/ITEMS_KEY of the Batch job; empty strings when nothing needs extracting. */
  itemsBucket: z.string(),
  itemsKey: z.string(),
});
export type BatchPlan = z.infer<typeof BatchPlan>;

/** An item's key, checked to be an upload of the run's site: a cohort never reaches into another site's clips. */
export function siteUpload(
  key: string,
  site: string,
): { ok: true; studyId: string } | { ok: false; code: string; message: string } {
  let upload;
  try {
    upload = parseUploadKey(key);
  } catch (err) {
    return { ok: false, code: 'INVALID_KEY', message: (err as Error).message };
  }
  if (upload.siteId !== site) {
    return {
      ok: false,
      code: 'OTHER_SITE',
      message: `The item is an upload of another site; this cohort runs for site ${site} (${UPLOADS_PREFIX}${site}/...).`,
    };
  }
  return { ok: true, studyId: upload.studyId };
}

/**
 * Whether a scan already has features for the current extractor: its scan item is COMPLETED
 * with that extractor and a features key (a per-upload execution), or a features document
 * exists at the scan's deterministic features key (an earlier cohort batch extracted it).
 * Either way, the experts can score it without the GPU.
 */
export function hasCurrentFeatures(
  scan: Pick<ScanItem, 'status' | 'extractor' | 'featuresKey'> | undefined,
  extractor: ModelRef,
  featuresObjectExists: boolean,
): boolean {
  if (featuresObjectExists) return true;
  return (
    scan !== undefined &&
    scan.status === 'COMPLETED' &&
    scan.featuresKey !== undefined &&
    scan.extractor?.name === extractor.name &&
    scan.extractor.version === extractor.version
  );
}

/** Where a scan's features are: the scan item's own location when it has current features, else the deterministic key. */
export function featuresLocation(
  scan: Pick<ScanItem, 'status' | 'extractor' | 'featuresKey' | 'featuresBucket'> | undefined,
  site: string,
  scanId: string,
  extractor: ModelRef,
  artifactsBucket: string,
): { featuresBucket: string; featuresKey: string } {
  if (hasCurrentFeatures(scan, extractor, false) && scan?.featuresKey) {
    return { featuresBucket: scan.featuresBucket ?? artifactsBucket, featuresKey: scan.featuresKey };
  }
  return { featuresBucket: artifactsBucket, featuresKey: featuresKey(site, extractor, scanId) };
}

/**
 * How long a cohort batch's claim holds: the cohort state machine's timeout
 * (lib/constructs/cohort-workflow.ts), after which no batch of the run can still be running,
 * so a scan left RUNNING by a batch that died may be claimed again.
 */
export const COHORT_LEASE_SECONDS = 24 * 3600;

/**
 * The lease holder of a cohort batch's claims: the run's folder and the batch id, stable for
 * the same items in the same run, so a retried plan recognises its own claims. No object key.
 */
export const cohortLeaseHolder = (runPrefix: string, batchId: string): string => `${runPrefix}batches/${batchId}`;

/** A stable id for a batch: the same items make the same id, so a retried plan rewrites the same files. */
export function batchIdOf(keys: readonly string[], hash: (s: string) => string): string {
  return hash(keys.join('\n')).slice(0, 16);
}

/** A configured cohort (config `cohorts`): its site, and a manifest under COHORT_MANIFESTS_PREFIX or a prefix. */
export interface CohortScheduleConfig {
  readonly site: string;
  readonly manifest?: { readonly key: string; readonly format: 'csv' | 'jsonl' };
  readonly prefix?: string;
}

/**
 * The execution input a schedule starts a cohort run with: the same shape as a manual start.
 * A manifest is read from the artifacts bucket, which the state machine may read only under
 * COHORT_MANIFESTS_PREFIX; a prefix must lie in the site's uploads. Throws naming what is wrong.
 */
export function cohortScheduleInput(cohort: CohortScheduleConfig, artifactsBucket: string): CohortRunInput {
  if (cohort.manifest) {
    if (!cohort.manifest.key.startsWith(COHORT_MANIFESTS_PREFIX)) {
      throw new Error(
        `Cohort manifest key "${cohort.manifest.key}" must be under ${COHORT_MANIFESTS_PREFIX} of the artifacts bucket.`,
      );
    }
    return {
      site: cohort.site,
      manifest: { bucket: artifactsBucket, key: cohort.manifest.key, format: cohort.manifest.format },
    };
  }
  const sitePrefix = `${UPLOADS_PREFIX}${cohort.site}/`;
  if (!cohort.prefix || !cohort.prefix.startsWith(sitePrefix)) {
    throw new Error(`Cohort prefix "${cohort.prefix ?? ''}" must start with ${sitePrefix} (the site's uploads).`);
  }
  return { site: cohort.site, prefix: cohort.prefix };
}
