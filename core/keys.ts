/**
 * Where things live: the S3 key layout and the results-table keys.
 *
 * One place defines them so the CDK rule filter, the handlers, the extractor,
 * local mode and the tests cannot drift apart.
 */
import { SegmentId } from './schemas';

export const UPLOADS_PREFIX = 'uploads/';
export const FEATURES_PREFIX = 'features/';
/** Optional acquisition metadata next to a clip: `{clipKey}.meta.json`. */
export const SIDECAR_SUFFIX = '.meta.json';

export interface UploadKey {
  readonly siteId: string;
  readonly studyId: string;
  /** Path below the study, e.g. `day1/clip.mp4`. Stored, never logged: a file name can name a person. */
  readonly fileName: string;
}

export class UploadKeyError extends Error {
  override readonly name = 'UploadKeyError';
}

/** Parses `uploads/{siteId}/{studyId}/{file...}`; throws UploadKeyError saying what is accepted. */
export function parseUploadKey(key: string): UploadKey {
  const accepted = `expected "${UPLOADS_PREFIX}{siteId}/{studyId}/{file}"`;
  if (!key.startsWith(UPLOADS_PREFIX)) {
    throw new UploadKeyError(`Object key is outside ${UPLOADS_PREFIX}: ${accepted}.`);
  }
  const parts = key.slice(UPLOADS_PREFIX.length).split('/');
  if (parts.length < 3 || parts.slice(2).some((p) => p.length === 0)) {
    throw new UploadKeyError(`Object key has no site, study and file name: ${accepted}.`);
  }
  const [siteId, studyId] = parts as [string, string];
  for (const [what, value] of [
    ['siteId', siteId],
    ['studyId', studyId],
  ] as const) {
    const parsed = SegmentId.safeParse(value);
    if (!parsed.success) {
      throw new UploadKeyError(`Invalid ${what} in object key: ${parsed.error.issues[0]?.message ?? 'invalid'}.`);
    }
  }
  return { siteId, studyId, fileName: parts.slice(2).join('/') };
}

export function uploadKey(siteId: string, studyId: string, fileName: string): string {
  return `${UPLOADS_PREFIX}${siteId}/${studyId}/${fileName}`;
}

export function isSidecarKey(key: string): boolean {
  return key.endsWith(SIDECAR_SUFFIX);
}

export function sidecarKeyFor(clipKey: string): string {
  return `${clipKey}${SIDECAR_SUFFIX}`;
}

/**
 * `features/{siteId}/{extractorName}-{extractorVersion}/{scanId}.json`: one document per scan and
 * extractor version, under its site so an IAM `s3:prefix` condition on `features/{siteId}/` confines a site.
 */
export function featuresKey(siteId: string, extractor: { name: string; version: string }, scanId: string): string {
  return `${FEATURES_PREFIX}${siteId}/${extractor.name}-${extractor.version}/${scanId}.json`;
}

/**
 * The DICOM pseudonym salt (core/dicom/salt-object.ts): one object in the artifacts bucket, outside
 * every prefix a role reads by prefix (features/, models/), so only the roles granted this exact key
 * (the extractor's) can read it.
 */
export const DICOM_PSEUDONYM_SALT_KEY = 'secrets/dicom-pseudonym-salt';

/** A site's monthly invoices (CSV, written by the scheduled invoice job): `invoices/{siteId}/{YYYY-MM}.csv`. */
export const INVOICES_PREFIX = 'invoices/';
export function invoiceKey(siteId: string, month: string): string {
  return `${INVOICES_PREFIX}${siteId}/${month}.csv`;
}

/** Every S3 prefix that holds a site's objects: what a site's IAM role is confined to. */
export function sitePrefixes(siteId: string): { uploads: string; features: string; invoices: string } {
  return {
    uploads: `${UPLOADS_PREFIX}${siteId}/`,
    features: `${FEATURES_PREFIX}${siteId}/`,
    invoices: `${INVOICES_PREFIX}${siteId}/`,
  };
}

// ---------------------------------------------------------------------------
// Results table: one partition per scan, under its site (`SITE#{siteId}#SCAN#{scanId}`), so an
// IAM `dynamodb:LeadingKeys` condition on `SITE#{siteId}#*` confines a site to its own items;
// the site index lists a site's scans by time (`sitePk = SITE#{siteId}`).
// ---------------------------------------------------------------------------

export const TABLE_KEYS = {
  partitionKey: 'pk',
  sortKey: 'sk',
  siteIndex: 'bySite',
  siteIndexPartitionKey: 'sitePk',
  siteIndexSortKey: 'siteSk',
  /**
   * DynamoDB's time-to-live attribute (epoch seconds). Only bookkeeping items carry it (the
   * execution pointers); scans and results never expire.
   */
  timeToLive: 'expiresAt',
} as const;

/**
 * Stands in for the site of a failure recorded before a site was known (an object key that
 * does not parse). Not a valid SegmentId (it cannot start with "_"), so no site owns it.
 */
export const NO_SITE = '_';
export const scanPk = (siteId: string, scanId: string): string => `SITE#${siteId}#SCAN#${scanId}`;
/** The partition-key prefix of every item of one site: the value an IAM LeadingKeys condition allows. */
export const siteItemsPrefix = (siteId: string): string => `SITE#${siteId}#`;
export const SCAN_SK = 'SCAN';
/** The prefix of an expert's result items; `EXPERT#{name}` alone is a result stored before versions were kept. */
export const expertSk = (expertName: string): string => `EXPERT#${expertName}`;
/**
 * One result item per expert version (`EXPERT#{name}#{version}`): a new version is stored beside
 * the earlier ones, never over them. Names and versions cannot hold `#` (ExpertEntry's patterns).
 */
export const expertVersionSk = (expertName: string, version: string): string => `EXPERT#${expertName}#${version}`;
/** Prefix of the pointer items; kept apart from `EXPERT#` so a prefix query of results never returns one. */
export const CURRENT_EXPERT_SK_PREFIX = 'CURRENT#EXPERT#';
/** The pointer naming which stored version of an expert is the scan's current result. */
export const currentExpertSk = (expertName: string): string => `${CURRENT_EXPERT_SK_PREFIX}${expertName}`;
export const sitePk = (siteId: string): string => `SITE#${siteId}`;
export const siteSk = (receivedAt: string, scanId: string): string => `${receivedAt}#${scanId}`;
/**
 * The execution pointer: which scan an execution claimed (`pk = EXECUTION#{executionId}`), so
 * that an execution-ended event, which names only the execution, finds its scan.
 */
export const executionPk = (executionId: string): string => `EXECUTION#${executionId}`;
export const EXECUTION_SK = 'EXECUTION';
/**
 * How long a pointer is kept: it is read only when its execution ends (the EventBridge event comes
 * within seconds of the end; EventBridge retries a target for up to 24 h) or by a retried claim,
 * and no execution outlives the state machine timeout. A week covers both with room to spare.
 */
export const EXECUTION_POINTER_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Where the extractor job records why it failed. Batch reports only an exit
 * code to Step Functions, so RecordFailure reads this to give the user the
 * real reason ("the clip could not be decoded: …") instead of "exit 1".
 */
export function extractErrorKey(featuresKeyValue: string): string {
  return featuresKeyValue.replace(/\.json$/, '') + '.error.json';
}
