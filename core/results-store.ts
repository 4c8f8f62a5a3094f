/**
 * The results table, in one module: pure item builders plus the few operations
 * the workflow performs, each taking its DynamoDBDocumentClient so Lambda, local
 * mode (dynalite) and tests (aws-sdk-client-mock) share the exact same logic.
 *
 * Items of one scan share a partition (`pk = SITE#{siteId}#SCAN#{scanId}`, keys.ts):
 * - `SCAN`            status RUNNING | COMPLETED | FAILED, identity, error or summary
 * - `EXPERT#{name}#{version}`  one ExpertResult per expert version, each beside the earlier ones
 *                    (`EXPERT#{name}` without a version: a result stored before versions were kept)
 * - `CURRENT#EXPERT#{name}`    which stored version is the scan's current result for that expert;
 *                    readers return the current version unless they ask for every version
 * - `usage` on `SCAN`  the billing record, written in the same conditional update as COMPLETED
 * - `lease` on a RUNNING `SCAN`  which execution holds the claim, and until when
 *
 * And one item per execution that reached a claim (`pk = EXECUTION#{executionId}`):
 * the scan it claimed, so an execution-ended event (it names only the execution) finds it.
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
import {
  CURRENT_EXPERT_SK_PREFIX,
  currentExpertSk,
  EXECUTION_POINTER_TTL_SECONDS,
  EXECUTION_SK,
  executionPk,
  expertSk,
  expertVersionSk,
  NO_SITE,
  SCAN_SK,
  scanPk,
  sitePk,
  siteSk,
  TABLE_KEYS,
} from './keys';
import type { Modality } from './modality';
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
  /** What Validate decided the upload is (absent when it could not decide: the scan is about to be rejected). */
  readonly modality?: Modality;
  readonly sidecar?: SidecarMetadata;
  readonly extractor: ModelRef;
  /** Where the extractor writes the features document (absent when the upload is rejected before that matters). */
  readonly featuresBucket?: string;
  readonly featuresKey?: string;
  readonly receivedAt: string;
  /** The claiming execution and the claim's expiry; absent for a caller outside any execution (tests, tools). */
  readonly lease?: ScanLease;
}

/**
 * Who holds a RUNNING scan: the execution's ARN (a local execution id in local mode) and
 * when the claim lapses. An expired lease may be claimed again, so a scan whose execution
 * died without a word (a crash, a lost event) is analysed again, not skipped forever.
 */
export interface ScanLease {
  readonly executionId: string;
  /** ISO-8601 (UTC, toISOString): compared as a string in the claim's condition. */
  readonly expiresAt: string;
}

/**
 * How long a claim holds when the caller names no lease duration: the deployed state
 * machine's default timeout (3 × 1 h extract + 2 h; lib/constructs/workflow.ts), after
 * which its execution cannot be running any more.
 */
export const DEFAULT_LEASE_SECONDS = 5 * 3600;

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
  /** Absent on scans stored before modalities (ultrasound) and on uploads refused before one was decided. */
  readonly modality?: Modality;
  readonly sidecar?: SidecarMetadata;
  readonly extractor?: ModelRef;
  readonly featuresBucket?: string;
  readonly featuresKey?: string;
  readonly receivedAt?: string;
  readonly updatedAt: string;
  /** How many executions have claimed this scan (a re-claim after FAILED adds one). */
  readonly attempts?: number;
  /** On a RUNNING scan: which execution holds it, until when. Kept on the item after it ends (history). */
  readonly lease?: ScanLease;
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

/** The pointer to an expert's current stored version for one scan. */
export interface CurrentExpertItem {
  readonly pk: string;
  readonly sk: string;
  readonly scanId: string;
  readonly expert: ExpertResult['expert'];
  readonly updatedAt: string;
}

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
    modality: claim.modality,
    sidecar: claim.sidecar,
    extractor: claim.extractor,
    featuresBucket: claim.featuresBucket,
    featuresKey: claim.featuresKey,
    receivedAt: claim.receivedAt,
    updatedAt: now,
    attempts,
    lease: claim.lease,
    sitePk: sitePk(claim.siteId),
    siteSk: siteSk(claim.receivedAt, claim.scanId),
  });
}

/** `siteId`: the scan's site, whose partition the result goes in (an ExpertResult does not carry it). */
export function expertResultItem(result: ExpertResult, siteId: string): ExpertResultItem {
  return {
    pk: scanPk(siteId, result.scanId),
    sk: expertVersionSk(result.expert.name, result.expert.version),
    ...result,
  };
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
  | {
      readonly claimed: true;
      readonly reclaimed: boolean;
      /** The scan was RUNNING under an expired lease (its execution died) and is claimed again. */
      readonly leaseExpired?: boolean;
      readonly item: ScanItem;
    }
  | { readonly claimed: false; readonly existingStatus: ScanStatus; readonly item: ScanItem };

const isConditionFailure = (err: unknown): boolean =>
  err instanceof ConditionalCheckFailedException ||
  (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException';

/**
 * Whether a RUNNING scan's claim has lapsed at `now`: its lease expired, or (an item
 * claimed before leases existed) it was last updated longer than DEFAULT_LEASE_SECONDS ago.
 */
export function leaseExpired(item: ScanItem, now: string): boolean {
  if (item.status !== 'RUNNING') return false;
  if (item.lease) return item.lease.expiresAt < now;
  return item.updatedAt < legacyCutoff(now);
}

const legacyCutoff = (now: string): string => new Date(Date.parse(now) - DEFAULT_LEASE_SECONDS * 1000).toISOString();

/**
 * Claims a scan for this execution. A new scan is written RUNNING. An existing
 * COMPLETED scan, or a RUNNING one whose lease holds, is left alone and reported
 * (the caller skips). A FAILED scan, or a RUNNING one whose lease has expired (its
 * execution died without recording anything), may be claimed again, so a retry or a
 * re-upload runs; the conditional write makes two racing re-claims end with exactly one winner.
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
  const expired = leaseExpired(existing, now);
  if (existing.status !== 'FAILED' && !expired) {
    return { claimed: false, existingStatus: existing.status, item: existing };
  }
  const again = runningScanItem(claim, now, (existing.attempts ?? 1) + 1);
  try {
    await doc.send(
      new PutCommand({
        TableName: table,
        Item: again,
        // The state read above, re-checked: FAILED, or RUNNING under a lapsed lease.
        ConditionExpression:
          '#status = :failed OR (#status = :running AND (#lease.#expiresAt < :now OR ' +
          '(attribute_not_exists(#lease) AND #updatedAt < :legacyCutoff)))',
        ExpressionAttributeNames: {
          '#status': 'status',
          '#lease': 'lease',
          '#expiresAt': 'expiresAt',
          '#updatedAt': 'updatedAt',
        },
        ExpressionAttributeValues: {
          ':failed': 'FAILED',
          ':running': 'RUNNING',
          ':now': now,
          ':legacyCutoff': legacyCutoff(now),
        },
      }),
    );
    return { claimed: true, reclaimed: true, ...(expired ? { leaseExpired: true } : {}), item: again };
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    const winner = await getScan(doc, table, claim.siteId, claim.scanId);
    return { claimed: false, existingStatus: winner?.status ?? 'RUNNING', item: winner ?? existing };
  }
}

/** The execution pointer item: which scan an execution claimed. */
export interface ExecutionItem {
  readonly pk: string;
  readonly sk: typeof EXECUTION_SK;
  readonly executionId: string;
  /** The scan's site: its item lives in the site's partition (scanPk). */
  readonly siteId: string;
  readonly scanId: string;
  readonly createdAt: string;
  /** Epoch seconds after which DynamoDB deletes the pointer (TABLE_KEYS.timeToLive). */
  readonly expiresAt: number;
}

/**
 * Records which scan an execution is about to claim. Written before the claim, so an
 * execution that dies right after claiming can still be found; harmless if the claim
 * then goes to another execution (recordAbandonedScan checks the scan's lease).
 */
export async function putExecutionPointer(
  doc: DynamoDBDocumentClient,
  table: string,
  executionId: string,
  siteId: string,
  scanId: string,
  now: string = new Date().toISOString(),
): Promise<ExecutionItem> {
  const item: ExecutionItem = {
    pk: executionPk(executionId),
    sk: EXECUTION_SK,
    executionId,
    siteId,
    scanId,
    createdAt: now,
    expiresAt: Math.floor(Date.parse(now) / 1000) + EXECUTION_POINTER_TTL_SECONDS,
  };
  await doc.send(new PutCommand({ TableName: table, Item: item }));
  return item;
}

export async function getExecutionPointer(
  doc: DynamoDBDocumentClient,
  table: string,
  executionId: string,
): Promise<ExecutionItem | undefined> {
  const out = await doc.send(
    new GetCommand({ TableName: table, Key: { pk: executionPk(executionId), sk: EXECUTION_SK }, ConsistentRead: true }),
  );
  return out.Item as ExecutionItem | undefined;
}

export type AbandonedScanResult =
  | { readonly recorded: true; readonly scanId: string }
  /**
   * Nothing written: the execution claimed no scan (it stopped before, or skipped), or
   * the scan is no longer RUNNING under this execution (RecordFailure or Finalize
   * recorded it, another execution re-claimed it, or this event was delivered before).
   */
  | {
      readonly recorded: false;
      readonly reason: 'no-claim' | 'not-running-under-execution';
      readonly scanId?: string;
    };

/**
 * An execution ended without recording its scan (timed out, aborted, or failed in a
 * way that skipped RecordFailure): records the scan FAILED with `problem` if and only
 * if it is still RUNNING under that execution's lease. One conditional write, so a
 * duplicated or late event, or a scan another execution has re-claimed, is never touched.
 */
export async function recordAbandonedScan(
  doc: DynamoDBDocumentClient,
  table: string,
  executionId: string,
  problem: ProblemDetail,
  now: string = new Date().toISOString(),
): Promise<AbandonedScanResult> {
  const pointer = await getExecutionPointer(doc, table, executionId);
  if (!pointer) return { recorded: false, reason: 'no-claim' };
  try {
    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: scanKey(pointer.siteId, pointer.scanId),
        UpdateExpression: 'SET #status = :failed, #error = :error, #updatedAt = :now',
        ConditionExpression: '#status = :running AND #lease.#executionId = :executionId',
        ExpressionAttributeNames: {
          '#status': 'status',
          '#error': 'error',
          '#updatedAt': 'updatedAt',
          '#lease': 'lease',
          '#executionId': 'executionId',
        },
        ExpressionAttributeValues: {
          ':failed': 'FAILED',
          ':running': 'RUNNING',
          ':error': problem,
          ':now': now,
          ':executionId': executionId,
        },
      }),
    );
    return { recorded: true, scanId: pointer.scanId };
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    return { recorded: false, reason: 'not-running-under-execution', scanId: pointer.scanId };
  }
}

export function currentExpertItem(
  result: Pick<ExpertResult, 'scanId' | 'expert'>,
  siteId: string,
  now: string,
): CurrentExpertItem {
  return {
    pk: scanPk(siteId, result.scanId),
    sk: currentExpertSk(result.expert.name),
    scanId: result.scanId,
    expert: result.expert,
    updatedAt: now,
  };
}

/**
 * Stores one expert version's result beside the earlier versions and makes it the scan's
 * current one (putExpertVersion, then setCurrentExpertVersion).
 */
export async function putExpertResult(
  doc: DynamoDBDocumentClient,
  table: string,
  result: ExpertResult,
  siteId: string,
  now: string = new Date().toISOString(),
): Promise<ExpertResultItem> {
  const item = await putExpertVersion(doc, table, result, siteId);
  await setCurrentExpertVersion(doc, table, result, siteId, now);
  return item;
}

/**
 * Stores one expert version's result under its own sort key. Written once: a retried
 * invocation or a second re-score with the same version keeps the first item (the same
 * expert on the same features gives the same output), so no stored result is ever replaced.
 */
export async function putExpertVersion(
  doc: DynamoDBDocumentClient,
  table: string,
  result: ExpertResult,
  siteId: string,
): Promise<ExpertResultItem> {
  const item = expertResultItem(result, siteId);
  try {
    await doc.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    return item;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
  }
  const out = await doc.send(
    new GetCommand({ TableName: table, Key: { pk: item.pk, sk: item.sk }, ConsistentRead: true }),
  );
  return (out.Item as ExpertResultItem | undefined) ?? item;
}

/**
 * Points the scan's current result for this expert at this version. On a COMPLETED scan (a
 * re-score) the scan's summary follows, so listScans reads the current outputs; on a RUNNING
 * scan Finalize writes the summary from the results it is handed.
 */
export async function setCurrentExpertVersion(
  doc: DynamoDBDocumentClient,
  table: string,
  result: Pick<ExpertResult, 'scanId' | 'expert'> & { readonly output?: ExpertResult['output'] },
  siteId: string,
  now: string = new Date().toISOString(),
): Promise<CurrentExpertItem> {
  const pointer = currentExpertItem(result, siteId, now);
  await doc.send(new PutCommand({ TableName: table, Item: pointer }));
  if (result.output) {
    try {
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: scanKey(siteId, result.scanId),
          UpdateExpression: 'SET #summary.#experts.#name = :output, #summary.#versions.#name = :version',
          ConditionExpression: '#status = :completed AND attribute_exists(#summary)',
          ExpressionAttributeNames: {
            '#status': 'status',
            '#summary': 'summary',
            '#experts': 'experts',
            '#versions': 'expertVersions',
            '#name': result.expert.name,
          },
          ExpressionAttributeValues: {
            ':completed': 'COMPLETED',
            ':output': result.output,
            ':version': { version: result.expert.version, sha256: result.expert.sha256 },
          },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
  return pointer;
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

/** Every item of one scan's partition: the scan, each stored expert version and the pointers. */
async function scanPartition(
  doc: DynamoDBDocumentClient,
  table: string,
  siteId: string,
  scanId: string,
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': scanPk(siteId, scanId) },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

const isResultItem = (i: Record<string, unknown>): boolean => typeof i.sk === 'string' && i.sk.startsWith(expertSk(''));
const isPointerItem = (i: Record<string, unknown>): boolean =>
  typeof i.sk === 'string' && i.sk.startsWith(CURRENT_EXPERT_SK_PREFIX);

/**
 * The current result of each expert on a scan: the version its pointer names; for an expert
 * without a pointer (results stored before versions were kept), its most recent result.
 */
export function currentResults(
  results: readonly ExpertResultItem[],
  pointers: readonly Pick<CurrentExpertItem, 'expert'>[],
): ExpertResultItem[] {
  const pointed = new Map(pointers.map((p) => [p.expert.name, p.expert.version]));
  const byName = new Map<string, ExpertResultItem>();
  for (const r of results) {
    const want = pointed.get(r.expert.name);
    const held = byName.get(r.expert.name);
    if (want !== undefined) {
      if (r.expert.version === want) byName.set(r.expert.name, r);
    } else if (!held || r.createdAt > held.createdAt) {
      byName.set(r.expert.name, r);
    }
  }
  return [...byName.values()].sort((a, b) => a.expert.name.localeCompare(b.expert.name));
}

/** The scan's current expert results, one per expert (what `analyze`, reports and exports show by default). */
export async function listExpertResults(
  doc: DynamoDBDocumentClient,
  table: string,
  siteId: string,
  scanId: string,
): Promise<ExpertResultItem[]> {
  const items = await scanPartition(doc, table, siteId, scanId);
  return currentResults(
    items.filter(isResultItem) as unknown as ExpertResultItem[],
    items.filter(isPointerItem) as unknown as CurrentExpertItem[],
  );
}

/** Every stored version of every expert's result on a scan (the report's agreement between versions reads these). */
export async function listExpertResultVersions(
  doc: DynamoDBDocumentClient,
  table: string,
  siteId: string,
  scanId: string,
): Promise<{ results: ExpertResultItem[]; current: Record<string, string> }> {
  const items = await scanPartition(doc, table, siteId, scanId);
  const results = items.filter(isResultItem) as unknown as ExpertResultItem[];
  const current = currentResults(results, items.filter(isPointerItem) as unknown as CurrentExpertItem[]);
  return { results, current: Object.fromEntries(current.map((r) => [r.expert.name, r.expert.version])) };
}

/**
 * Every scan item in the table, in no particular order: a whole-table Scan, which is
 * what a local data directory's cohort report wants (hundreds of items). In the cloud
 * a cohort is listed per site through the bySite index instead. Each item's summary holds
 * the current version of every expert (setCurrentExpertVersion keeps it so after a re-score).
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
