/**
 * The results table, in one module: pure item builders plus the few operations
 * the workflow performs, each taking its DynamoDBDocumentClient so Lambda, local
 * mode (dynalite) and tests (aws-sdk-client-mock) share the exact same logic.
 *
 * Items of one scan share a partition (`pk = SITE#{siteId}#SCAN#{scanId}`, keys.ts):
 * - `SCAN`            status RUNNING | COMPLETED | FAILED, identity, error or summary
 * - `EXPERT#{name}`   one ExpertResult per expert
 * - `usage` on `SCAN`  the billing record, written in the same conditional update as COMPLETED
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { expertSk, NO_SITE, SCAN_SK, scanPk, sitePk, siteSk, TABLE_KEYS } from './keys';
import type { ScanCostEstimate } from './pricing';
import type {
  ExpertOutput,
  ExpertResult,
  MediaContainer,
  ModelRef,
  ProblemDetail,
  ScanStatus,
  SidecarMetadata,
} from './schemas';

/** A conditional write found the scan in a state that forbids it (e.g. completing a FAILED scan). */
export class ScanStateError extends Error {
  override readonly name = 'ScanStateError';
}

// ---------------------------------------------------------------------------
// Item shapes
// ---------------------------------------------------------------------------

/** What a claim records: a ScanRef, or less of it when the upload is about to be rejected. */
export interface ScanClaim {
  readonly scanId: string;
  readonly siteId: string;
  readonly studyId: string;
  readonly bucket: string;
  readonly key: string;
  readonly versionId: string;
  readonly sha256: string;
  readonly size: number;
  /** Absent when the bytes matched no supported container (the scan is about to be rejected). */
  readonly container?: MediaContainer;
  readonly sidecar?: SidecarMetadata;
  readonly extractor: ModelRef;
  /** Where the extractor writes the features document (absent when the upload is rejected before that matters). */
  readonly featuresBucket?: string;
  readonly featuresKey?: string;
  readonly receivedAt: string;
}

/** Where the object is, for a failure recorded before (or without) a claim. */
export interface ScanIdentity {
  readonly siteId?: string;
  readonly studyId?: string;
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly receivedAt?: string;
}

export interface ScanSummary {
  readonly experts: Record<string, ExpertOutput>;
  readonly expertVersions: Record<string, { version: string; sha256: string }>;
  readonly extractor: ModelRef;
  readonly durations: {
    /** Batch job run time (stoppedAt − startedAt); null when the job summary lacks timestamps. */
    readonly extractorSeconds: number | null;
    readonly expertMs: Record<string, number>;
    readonly totalExpertMs: number;
  };
}

export interface ScanItem {
  readonly pk: string;
  readonly sk: typeof SCAN_SK;
  readonly scanId: string;
  readonly status: ScanStatus;
  readonly siteId?: string;
  readonly studyId?: string;
  readonly bucket?: string;
  readonly key?: string;
  readonly versionId?: string;
  readonly sha256?: string;
  readonly size?: number;
  readonly container?: MediaContainer;
  readonly sidecar?: SidecarMetadata;
  readonly extractor?: ModelRef;
  readonly featuresBucket?: string;
  readonly featuresKey?: string;
  readonly receivedAt?: string;
  readonly updatedAt: string;
  /** How many executions have claimed this scan (a re-claim after FAILED adds one). */
  readonly attempts?: number;
  readonly sitePk?: string;
  readonly siteSk?: string;
  readonly error?: ProblemDetail;
  readonly summary?: ScanSummary;
  readonly usage?: UsageRecord;
}

export interface UsageInput {
  /** Measured Batch job seconds; null when not measurable. */
  readonly extractorSeconds: number | null;
  /** Sum of the experts' inference milliseconds. */
  readonly expertMs: number;
  /** Estimated cost from list prices (core/pricing.ts); null when it cannot be estimated. */
  readonly estimatedCost: ScanCostEstimate | null;
}

/** The billing record of a completed scan, stored as `usage` on its scan item (listed per site by the bySite index). */
export interface UsageRecord {
  readonly scanId: string;
  readonly siteId: string;
  readonly studyId: string;
  readonly extractor: ModelRef;
  readonly extractorSeconds: number | null;
  readonly expertMs: number;
  /**
   * Estimated cost of the scan from this deployment's list prices (core/pricing.ts), by
   * part and with its basis; an estimate, not a bill. Null when it cannot be estimated
   * (no measured extractor seconds). Absent on records written before it existed.
   */
  readonly estimatedCost?: ScanCostEstimate | null;
  /** Billable units: one per analysed clip. */
  readonly units: 1;
  readonly createdAt: string;
}

export type ExpertResultItem = ExpertResult & { readonly pk: string; readonly sk: string };

// ---------------------------------------------------------------------------
// Pure builders
// ---------------------------------------------------------------------------

/** Drops undefined fields, so items marshal whatever `removeUndefinedValues` the client was built with. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function scanKey(siteId: string, scanId: string): { pk: string; sk: typeof SCAN_SK } {
  return { pk: scanPk(siteId, scanId), sk: SCAN_SK };
}

export function runningScanItem(claim: ScanClaim, now: string, attempts = 1): ScanItem {
  return compact<ScanItem>({
    ...scanKey(claim.siteId, claim.scanId),
    scanId: claim.scanId,
    status: 'RUNNING',
    siteId: claim.siteId,
    studyId: claim.studyId,
    bucket: claim.bucket,
    key: claim.key,
    versionId: claim.versionId,
    sha256: claim.sha256,
    size: claim.size,
    container: claim.container,
    sidecar: claim.sidecar,
    extractor: claim.extractor,
    featuresBucket: claim.featuresBucket,
    featuresKey: claim.featuresKey,
    receivedAt: claim.receivedAt,
    updatedAt: now,
    attempts,
    sitePk: sitePk(claim.siteId),
    siteSk: siteSk(claim.receivedAt, claim.scanId),
  });
}

/** `siteId`: the scan's site, whose partition the result goes in (an ExpertResult does not carry it). */
export function expertResultItem(result: ExpertResult, siteId: string): ExpertResultItem {
  return { pk: scanPk(siteId, result.scanId), sk: expertSk(result.expert.name), ...result };
}

export function usageRecord(
  scan: Pick<ScanClaim, 'scanId' | 'siteId' | 'studyId' | 'extractor'>,
  usage: UsageInput,
  now: string,
): UsageRecord {
  return {
    scanId: scan.scanId,
    siteId: scan.siteId,
    studyId: scan.studyId,
    extractor: scan.extractor,
    extractorSeconds: usage.extractorSeconds,
    expertMs: usage.expertMs,
    estimatedCost: usage.estimatedCost,
    units: 1,
    createdAt: now,
  };
}

/** Batch job seconds from epoch-millisecond timestamps; null when either is missing or they are inconsistent. */
export function measuredSeconds(startedAt?: number, stoppedAt?: number): number | null {
  if (startedAt === undefined || stoppedAt === undefined || stoppedAt < startedAt) return null;
  return (stoppedAt - startedAt) / 1000;
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

export type ClaimResult =
  | { readonly claimed: true; readonly reclaimed: boolean; readonly item: ScanItem }
  | { readonly claimed: false; readonly existingStatus: ScanStatus; readonly item: ScanItem };

const isConditionFailure = (err: unknown): boolean =>
  err instanceof ConditionalCheckFailedException ||
  (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException';

/**
 * Claims a scan for this execution. A new scan is written RUNNING. An existing
 * RUNNING or COMPLETED scan is left alone and reported (the caller skips). A
 * FAILED scan may be claimed again, so a retry or a fixed re-upload can run;
 * the conditional write makes two racing re-claims end with exactly one winner.
 */
export async function claimScan(
  doc: DynamoDBDocumentClient,
  table: string,
  claim: ScanClaim,
  now: string = new Date().toISOString(),
): Promise<ClaimResult> {
  const item = runningScanItem(claim, now);
  try {
    await doc.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    return { claimed: true, reclaimed: false, item };
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
  }
  const existing = await getScan(doc, table, claim.siteId, claim.scanId);
  if (!existing) {
    // Deleted between the two calls (only an operator does that): the caller's retry will claim it.
    throw new ScanStateError(`Scan ${claim.scanId} existed at claim time but is gone now; retry.`);
  }
  if (existing.status !== 'FAILED') return { claimed: false, existingStatus: existing.status, item: existing };
  const again = runningScanItem(claim, now, (existing.attempts ?? 1) + 1);
  try {
    await doc.send(
      new PutCommand({
        TableName: table,
        Item: again,
        ConditionExpression: '#status = :failed',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':failed': 'FAILED' },
      }),
    );
    return { claimed: true, reclaimed: true, item: again };
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    const winner = await getScan(doc, table, claim.siteId, claim.scanId);
    return { claimed: false, existingStatus: winner?.status ?? 'RUNNING', item: winner ?? existing };
  }
}

/** Writes (or, on a retried invocation, overwrites with the same content) one expert's result. */
export async function putExpertResult(
  doc: DynamoDBDocumentClient,
  table: string,
  result: ExpertResult,
  siteId: string,
): Promise<ExpertResultItem> {
  const item = expertResultItem(result, siteId);
  await doc.send(new PutCommand({ TableName: table, Item: item }));
  return item;
}

export interface CompleteScanInput {
  readonly scan: Pick<ScanClaim, 'scanId' | 'siteId' | 'studyId' | 'extractor'>;
  readonly summary: ScanSummary;
  readonly usage: UsageInput;
  readonly now?: string;
}

/**
 * Marks the scan COMPLETED and records its usage on the same item, in one
 * conditional UpdateItem: atomic without a transaction, so a site is billed
 * exactly for the scans that completed. Idempotent for a retried Finalize;
 * refuses to complete a scan that is FAILED or was never claimed.
 */
export async function completeScan(
  doc: DynamoDBDocumentClient,
  table: string,
  input: CompleteScanInput,
): Promise<UsageRecord> {
  const now = input.now ?? new Date().toISOString();
  const usage = usageRecord(input.scan, input.usage, now);
  try {
    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: scanKey(input.scan.siteId, input.scan.scanId),
        UpdateExpression:
          'SET #status = :completed, #summary = :summary, #usage = :usage, #updatedAt = :now REMOVE #error',
        ConditionExpression: 'attribute_exists(pk) AND (#status = :running OR #status = :completed)',
        ExpressionAttributeNames: {
          '#status': 'status',
          '#summary': 'summary',
          '#usage': 'usage',
          '#updatedAt': 'updatedAt',
          '#error': 'error',
        },
        ExpressionAttributeValues: {
          ':completed': 'COMPLETED',
          ':running': 'RUNNING',
          ':summary': input.summary,
          ':usage': usage,
          ':now': now,
        },
      }),
    );
  } catch (err) {
    if (isConditionFailure(err)) {
      const existing = await getScan(doc, table, input.scan.siteId, input.scan.scanId);
      throw new ScanStateError(
        `Scan ${input.scan.scanId} cannot be completed: it is ${existing ? existing.status : 'not claimed'} (expected RUNNING).`,
      );
    }
    throw err;
  }
  return usage;
}

export type FailScanResult =
  | { readonly recorded: true }
  /** The scan had already COMPLETED: a failure of a duplicate execution never downgrades it. */
  | { readonly recorded: false; readonly existingStatus: ScanStatus };

/**
 * Records a scan as FAILED with a reason. An upsert: it works whether or not a
 * claim exists (a bad key or an unreadable object fails before any claim), and
 * fills identity fields only where the item lacks them. A failure without a site (a key
 * that does not parse) goes under NO_SITE, which no site's role can read.
 */
export async function failScan(
  doc: DynamoDBDocumentClient,
  table: string,
  scanId: string,
  identity: ScanIdentity,
  problem: ProblemDetail,
  now: string = new Date().toISOString(),
): Promise<FailScanResult> {
  const names: Record<string, string> = {
    '#status': 'status',
    '#error': 'error',
    '#updatedAt': 'updatedAt',
    '#scanId': 'scanId',
  };
  const values: Record<string, unknown> = {
    ':failed': 'FAILED',
    ':error': problem,
    ':now': now,
    ':scanId': scanId,
    ':completed': 'COMPLETED',
  };
  const sets = ['#status = :failed', '#error = :error', '#updatedAt = :now', '#scanId = :scanId'];
  const receivedAt = identity.receivedAt ?? now;
  const keep: Record<string, string | undefined> = {
    bucket: identity.bucket,
    key: identity.key,
    versionId: identity.versionId,
    siteId: identity.siteId,
    studyId: identity.studyId,
    receivedAt,
    sitePk: identity.siteId !== undefined ? sitePk(identity.siteId) : undefined,
    siteSk: identity.siteId !== undefined ? siteSk(receivedAt, scanId) : undefined,
  };
  for (const [field, value] of Object.entries(keep)) {
    if (value === undefined) continue;
    names[`#${field}`] = field;
    values[`:${field}`] = value;
    sets.push(`#${field} = if_not_exists(#${field}, :${field})`);
  }
  try {
    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: scanKey(identity.siteId ?? NO_SITE, scanId),
        UpdateExpression: `SET ${sets.join(', ')}`,
        ConditionExpression: 'attribute_not_exists(#status) OR #status <> :completed',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
    );
    return { recorded: true };
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    return { recorded: false, existingStatus: 'COMPLETED' };
  }
}

export async function getScan(
  doc: DynamoDBDocumentClient,
  table: string,
  siteId: string,
  scanId: string,
): Promise<ScanItem | undefined> {
  const out = await doc.send(new GetCommand({ TableName: table, Key: scanKey(siteId, scanId), ConsistentRead: true }));
  return out.Item as ScanItem | undefined;
}

export async function getUsage(
  doc: DynamoDBDocumentClient,
  table: string,
  siteId: string,
  scanId: string,
): Promise<UsageRecord | undefined> {
  return (await getScan(doc, table, siteId, scanId))?.usage;
}

export async function listExpertResults(
  doc: DynamoDBDocumentClient,
  table: string,
  siteId: string,
  scanId: string,
): Promise<ExpertResultItem[]> {
  const items: ExpertResultItem[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': scanPk(siteId, scanId), ':prefix': expertSk('') },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    items.push(...((out.Items ?? []) as ExpertResultItem[]));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

/**
 * Every scan item in the table, in no particular order: a whole-table Scan, which is
 * what a local data directory's cohort report wants (hundreds of items). In the cloud
 * a cohort is listed per site through the bySite index instead.
 */
export async function listScans(doc: DynamoDBDocumentClient, table: string): Promise<ScanItem[]> {
  const items: ScanItem[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: 'sk = :scan',
        ExpressionAttributeValues: { ':scan': SCAN_SK },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    items.push(...((out.Items ?? []) as ScanItem[]));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

/**
 * The scan items with this scan id, whatever their site: a whole-table Scan for local mode's
 * CLI, which is given a bare scan id by its operator. Never for a caller confined to a site
 * (the API reads one site's partition with getScan). A scan id embeds its site (scan-id.ts),
 * so more than one item means a failure recorded under NO_SITE beside its site's item.
 */
export async function findScansById(doc: DynamoDBDocumentClient, table: string, scanId: string): Promise<ScanItem[]> {
  return (await listScans(doc, table)).filter((s) => s.scanId === scanId);
}

// ---------------------------------------------------------------------------
// Site queries (the API, usage): through the bySite index, so one Query reads one site only
// ---------------------------------------------------------------------------

export interface SiteScanRange {
  /** Inclusive lower bound on receivedAt (an ISO timestamp or a prefix of one, e.g. `2026-01`). */
  readonly from?: string;
  /** Exclusive upper bound on receivedAt (ISO timestamp or prefix). */
  readonly to?: string;
  /** Only the scans of this study (a filter on the index items). */
  readonly studyId?: string;
  /** Stop after this many items. */
  readonly limit?: number;
}

/**
 * A site's scan items by time (oldest first), through the bySite index: its partition is
 * `SITE#{siteId}` and its sort key `{receivedAt}#{scanId}`, so a date range is a key condition.
 * The index projects every attribute, so the items are whole scan items.
 */
export async function listSiteScans(
  doc: DynamoDBDocumentClient,
  table: string,
  siteId: string,
  range: SiteScanRange = {},
): Promise<ScanItem[]> {
  const names: Record<string, string> = { '#pk': TABLE_KEYS.siteIndexPartitionKey };
  // DynamoDB refuses an expression attribute name that no expression uses.
  if (range.from !== undefined || range.to !== undefined) names['#sk'] = TABLE_KEYS.siteIndexSortKey;
  const values: Record<string, unknown> = { ':pk': sitePk(siteId) };
  let condition = '#pk = :pk';
  // siteSk starts with the ISO receivedAt; '#' sorts below every digit, so `{to}` excludes `{to}…#…`.
  if (range.from !== undefined && range.to !== undefined) {
    condition += ' AND #sk BETWEEN :from AND :to';
    values[':from'] = range.from;
    values[':to'] = range.to;
  } else if (range.from !== undefined) {
    condition += ' AND #sk >= :from';
    values[':from'] = range.from;
  } else if (range.to !== undefined) {
    condition += ' AND #sk < :to';
    values[':to'] = range.to;
  }
  let filter: string | undefined;
  if (range.studyId !== undefined) {
    filter = '#studyId = :studyId';
    names['#studyId'] = 'studyId';
    values[':studyId'] = range.studyId;
  }
  const items: ScanItem[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(
      new QueryCommand({
        TableName: table,
        IndexName: TABLE_KEYS.siteIndex,
        KeyConditionExpression: condition,
        FilterExpression: filter,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ExclusiveStartKey: start,
      }),
    );
    for (const item of (out.Items ?? []) as ScanItem[]) {
      // BETWEEN is inclusive; `to` is exclusive here.
      if (range.to !== undefined && item.siteSk !== undefined && item.siteSk >= range.to) continue;
      items.push(item);
      if (range.limit !== undefined && items.length >= range.limit) return items;
    }
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}
