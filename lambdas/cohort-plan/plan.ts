/**
 * PlanBatch of the cohort workflow: resolves each item of one Distributed Map batch to its scan
 * (the scan id from the clip's bytes, as Validate computes it; core/cohort-run.ts says why) and
 * splits the batch into scans that already have features for the current extractor (scored
 * only, no GPU) and the rest, which it writes as the item list of one batch-mode extractor job
 * (gpu-tasks/feature-extractor/src/batch.ts). Each scan not yet COMPLETED is claimed here, a
 * RUNNING scan item with Validate's fields (core/results-store.ts claimScan), so the score step
 * records it COMPLETED and billed, or FAILED, as the per-upload workflow would. No job starts here.
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  batchIdOf,
  batchItemsKey,
  COHORT_LEASE_SECONDS,
  cohortLeaseHolder,
  featuresLocation,
  hasCurrentFeatures,
  PlanBatchInput,
  siteUpload,
  type BatchPlan,
  type PlanFailure,
  type PlannedScan,
} from '../../core/cohort-run';
import { extractorFor } from '../../core/manifest';
import { isSidecarKey } from '../../core/keys';
import { isUnsupported, sniffContainer, SNIFF_BYTES } from '../../core/media';
import { claimScan, getScan, type ScanClaim } from '../../core/results-store';
import { hashStream, scanIdFromContent, sha256Hex } from '../../core/scan-id';
import type { Manifest, ModelRef } from '../../core/schemas';
import { isMissingObject } from '../../core/s3-errors';
import { parsePayload } from '../../core/zod-parse';

export interface PlanDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** Where the items' clips are (the keys are upload keys). */
  readonly uploadsBucket: string;
  /** Where features, batch item lists and reports go. */
  readonly artifactsBucket: string;
  /** The manifest now (the artifacts bucket's): its extractor is the current one. */
  readonly manifest: () => Promise<Manifest>;
  readonly now?: () => Date;
}

/** The batch's claim context: who holds the claims, since when, until when. */
interface ClaimContext {
  readonly holder: string;
  readonly now: Date;
}

/** One extractor item (ExtractItem of batch.ts). */
interface ExtractItemOut {
  scanId: string;
  inputBucket: string;
  inputKey: string;
  inputVersionId: string;
  featuresBucket: string;
  featuresKey: string;
}

async function objectExists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    if (isMissingObject(err)) return false;
    throw err;
  }
}

type Resolved = { scan: PlannedScan; extract?: ExtractItemOut } | { failure: PlanFailure };

/**
 * Claims a scan for this batch, with the fields Validate writes (no sidecar: the cohort does not
 * read one). Claimed when new, FAILED or under a lapsed lease, and when this batch already holds
 * it (a retried plan); not when it is COMPLETED or another execution's claim still holds.
 */
async function claimForBatch(claim: ScanClaim, ctx: ClaimContext, deps: PlanDeps): Promise<boolean> {
  const out = await claimScan(deps.doc, deps.table, claim, ctx.now.toISOString());
  if (out.claimed) return true;
  return out.existingStatus === 'RUNNING' && out.item.lease?.executionId === ctx.holder;
}

async function resolveItem(
  key: string,
  site: string,
  extractor: ModelRef,
  ctx: ClaimContext,
  deps: PlanDeps,
): Promise<Resolved> {
  const upload = siteUpload(key, site);
  if (!upload.ok) return { failure: { item: key, scanId: null, code: upload.code, message: upload.message } };
  let sha: string;
  let size = 0;
  let head: Uint8Array = new Uint8Array(0);
  let versionId: string;
  try {
    const out = await deps.s3.send(new GetObjectCommand({ Bucket: deps.uploadsBucket, Key: key }));
    versionId = out.VersionId ?? '';
    if (out.Body) {
      const hashed = await hashStream(out.Body as AsyncIterable<Uint8Array>, SNIFF_BYTES);
      ({ sha256: sha, size, head } = hashed);
    } else {
      sha = sha256Hex('');
    }
  } catch (err) {
    if (!isMissingObject(err)) throw err;
    return {
      failure: {
        item: key,
        scanId: null,
        code: 'UNREADABLE_INPUT',
        message: 'No object at this key (or not readable by the cohort workflow).',
      },
    };
  }
  const scanId = scanIdFromContent(site, upload.studyId, sha);
  const scanItem = await getScan(deps.doc, deps.table, site, scanId);
  const where = featuresLocation(scanItem, site, scanId, extractor, deps.artifactsBucket);
  const has =
    hasCurrentFeatures(scanItem, extractor, false) ||
    hasCurrentFeatures(undefined, extractor, await objectExists(deps.s3, where.featuresBucket, where.featuresKey));
  // A COMPLETED scan keeps its item and is not billed again (re-scoring moves its summary's
  // versions, setCurrentExpertVersion); any other is claimed, whether extracted now or earlier.
  let claimed = false;
  if (scanItem?.status !== 'COMPLETED') {
    const sniffed = size > 0 ? sniffContainer(head) : undefined;
    claimed = await claimForBatch(
      {
        scanId,
        siteId: site,
        studyId: upload.studyId,
        bucket: deps.uploadsBucket,
        key,
        versionId,
        sha256: sha,
        size,
        container: sniffed !== undefined && !isUnsupported(sniffed) ? sniffed : undefined,
        extractor,
        ...where,
        receivedAt: ctx.now.toISOString(),
        lease: {
          executionId: ctx.holder,
          expiresAt: new Date(ctx.now.getTime() + COHORT_LEASE_SECONDS * 1000).toISOString(),
        },
      },
      ctx,
      deps,
    );
  }
  const scan: PlannedScan = {
    item: key,
    scanId,
    siteId: site,
    studyId: upload.studyId,
    ...where,
    action: has ? 'scored' : 'analysed',
    claimed,
  };
  if (has) return { scan };
  return {
    scan,
    extract: {
      scanId,
      inputBucket: deps.uploadsBucket,
      inputKey: key,
      inputVersionId: versionId,
      featuresBucket: where.featuresBucket,
      featuresKey: where.featuresKey,
    },
  };
}

/** Plans one batch: the scans to score, the failures, and (when some need it) the extractor job's item list in S3. */
export async function planBatch(input: unknown, deps: PlanDeps): Promise<BatchPlan> {
  const { Items, BatchInput } = parsePayload(PlanBatchInput, input, 'cohort batch');
  const { site, runPrefix } = BatchInput;
  // modality: routed in xray-routing (each item's modality, detected as Validate does)
  const extractor = extractorFor(await deps.manifest(), 'ultrasound');
  const ref = { name: extractor.name, version: extractor.version, sha256: extractor.sha256 };
  // A prefix listing also holds sidecars (`{clip}.meta.json`, read with their clip) and folder
  // markers: neither is a clip, as the upload trigger ignores them too.
  const keys = Items.map((i) => i.key).filter((k) => !isSidecarKey(k) && !k.endsWith('/'));
  const batchId = batchIdOf(keys, sha256Hex);
  const ctx: ClaimContext = { holder: cohortLeaseHolder(runPrefix, batchId), now: deps.now?.() ?? new Date() };
  const resolved: Resolved[] = [];
  for (const key of keys) resolved.push(await resolveItem(key, site, ref, ctx, deps));

  const scans = resolved.flatMap((r) => ('scan' in r ? [r.scan] : []));
  const failures = resolved.flatMap((r) => ('failure' in r ? [r.failure] : []));
  // The same bytes listed twice are one scan: extract it once.
  const extract = [
    ...new Map(resolved.flatMap((r) => ('extract' in r && r.extract ? [[r.extract.scanId, r.extract]] : []))).values(),
  ];
  let itemsKey = '';
  if (extract.length > 0) {
    itemsKey = batchItemsKey(runPrefix, batchId);
    await deps.s3.send(
      new PutObjectCommand({
        Bucket: deps.artifactsBucket,
        Key: itemsKey,
        Body: JSON.stringify(extract),
        ContentType: 'application/json',
      }),
    );
  }
  return {
    batchId,
    site,
    runPrefix,
    extractor: ref,
    scans,
    failures,
    extractCount: extract.length,
    itemsBucket: extract.length > 0 ? deps.artifactsBucket : '',
    itemsKey,
  };
}
