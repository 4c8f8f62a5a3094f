/**
 * RecordFailure: every Catch of the workflow lands here with the whole execution
 * state. It works out which scan failed and why, in words a site can act on, and
 * records the scan FAILED. It never copies stack traces into the record.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { TRANSIENT_ERROR_NAME } from '../../core/errors';
import { extractErrorKey, parseUploadKey } from '../../core/keys';
import { failScan, type ScanIdentity } from '../../core/results-store';
import { scanIdFromObjectIdentity } from '../../core/scan-id';
import { ProblemDetail, RecordFailureInput, type ScanRef, type StatesError } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';

export interface RecordFailureDeps {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** When given, a failed extractor job's own reason (`extractErrorKey`, written by the container) is preferred. */
  readonly s3?: S3Client;
  readonly now?: () => Date;
}

export interface RecordFailureOutput {
  readonly status: 'FAILED';
  readonly scanId: string;
  readonly problem: ProblemDetail;
  /** false when the scan had already COMPLETED (a duplicate execution's failure does not downgrade it). */
  readonly recorded: boolean;
}

/** Error names (Lambda errorType / Step Functions error) → stable problem codes. */
const ERROR_CODES: Record<string, string> = {
  InvalidUpload: 'INVALID_UPLOAD',
  DecodeError: 'DECODE_FAILED',
  ModelError: 'MODEL_ERROR',
  PayloadError: 'INVALID_PAYLOAD',
  ConfigError: 'CONFIG_ERROR',
  // A permission the step's role lacks (S3 / DynamoDB names): permanent, and the site's operator must act.
  AccessDenied: 'ACCESS_DENIED',
  AccessDeniedException: 'ACCESS_DENIED',
  'States.TaskFailed': 'TASK_FAILED',
  'States.Timeout': 'TIMEOUT',
  'States.HeartbeatTimeout': 'TIMEOUT',
  'Sandbox.Timedout': 'TIMEOUT',
  // Throttling, 5xx or timeouts that outlasted every retry of the state (workflow.ts TRANSIENT_RETRY).
  [TRANSIENT_ERROR_NAME]: 'RETRIES_EXHAUSTED',
};

const GENERIC_ERRORS = new Set(['States.TaskFailed', 'States.ALL', 'Error', 'Lambda.Unknown']);
const MAX_MESSAGE = 600;

export async function recordFailure(input: unknown, deps: RecordFailureDeps): Promise<RecordFailureOutput> {
  const state = parsePayload(RecordFailureInput, input, 'RecordFailure input');
  const { event, scan, validation, error } = state;
  const bucket = event.detail.bucket.name;
  const key = event.detail.object.key;
  const versionId = event.detail.object['version-id'];

  const scanId =
    scan?.scanId ??
    (validation && 'scanId' in validation ? validation.scanId : undefined) ??
    scanIdFromObjectIdentity(bucket, key, versionId, event.detail.object.etag);

  const problem: ProblemDetail =
    validation?.action === 'reject' && !error
      ? validation.problem
      : error
        ? ((scan && deps.s3 ? await extractorProblem(deps.s3, scan) : undefined) ?? problemFromError(error))
        : { code: 'INTERNAL_ERROR', message: 'The analysis failed without an error description.' };

  const identity: ScanIdentity = scan
    ? {
        siteId: scan.siteId,
        studyId: scan.studyId,
        bucket: scan.bucket,
        key: scan.key,
        versionId: scan.versionId,
        receivedAt: scan.receivedAt,
      }
    : { ...siteAndStudy(key), bucket, key, versionId: versionId ?? '' };

  const result = await failScan(
    deps.doc,
    deps.table,
    scanId,
    identity,
    problem,
    (deps.now?.() ?? new Date()).toISOString(),
  );
  return { status: 'FAILED', scanId, problem, recorded: result.recorded };
}

/** The extractor container's own account of its failure, if it left one; never fails the recording itself. */
async function extractorProblem(s3: S3Client, scan: ScanRef): Promise<ProblemDetail | undefined> {
  try {
    const out = await s3.send(
      new GetObjectCommand({ Bucket: scan.featuresBucket, Key: extractErrorKey(scan.featuresKey) }),
    );
    const parsed = ProblemDetail.safeParse(JSON.parse(out.Body ? await out.Body.transformToString('utf8') : ''));
    return parsed.success ? { code: parsed.data.code, message: truncate(stripStack(parsed.data.message)) } : undefined;
  } catch {
    // Absent (the usual case: the failure was not the extractor's) or unreadable: fall back to the Cause.
    return undefined;
  }
}

function siteAndStudy(key: string): { siteId?: string; studyId?: string } {
  try {
    const { siteId, studyId } = parseUploadKey(key);
    return { siteId, studyId };
  } catch {
    return {};
  }
}

/** Turns a Step Functions {Error, Cause} into a problem: a code from the error name, a readable message from the cause. */
export function problemFromError(error: StatesError): ProblemDetail {
  const cause = parseCause(error.Cause);
  const name =
    GENERIC_ERRORS.has(error.Error) && cause.errorType && ERROR_CODES[cause.errorType] ? cause.errorType : error.Error;
  let code = ERROR_CODES[name] ?? 'INTERNAL_ERROR';
  // The extractor container reports decode failures by name in its exit reason.
  if (code === 'TASK_FAILED' && cause.message && /\bDecodeError\b/.test(cause.message)) code = 'DECODE_FAILED';
  const detail = cause.message ?? (code === 'TIMEOUT' ? 'The step did not finish within its time limit.' : undefined);
  const what = `The analysis failed (${name})`;
  return { code, message: truncate(detail ? `${what}: ${detail}` : `${what}.`) };
}

interface ParsedCause {
  readonly errorType?: string;
  readonly message?: string;
}

/**
 * Cause shapes: a Lambda error `{"errorType","errorMessage","trace"}`; a Batch
 * `.sync` failure, the job description (`StatusReason`, `Container.Reason`,
 * `Attempts[].StatusReason`, PascalCase from Step Functions, camelCase from the
 * Batch API); or plain text.
 */
export function parseCause(cause: string | undefined): ParsedCause {
  if (cause === undefined || cause.trim() === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(cause);
  } catch {
    return { message: stripStack(cause) };
  }
  if (typeof json !== 'object' || json === null) return { message: stripStack(String(json)) };
  const o = json as Record<string, unknown>;
  if (typeof o.errorMessage === 'string' || typeof o.errorType === 'string') {
    return {
      errorType: typeof o.errorType === 'string' ? o.errorType : undefined,
      message: typeof o.errorMessage === 'string' ? stripStack(o.errorMessage) : undefined,
    };
  }
  const batch = batchReason(o);
  if (batch) return { message: batch };
  if (typeof o.message === 'string') return { message: stripStack(o.message) };
  return {};
}

function field(o: unknown, ...names: string[]): unknown {
  if (typeof o !== 'object' || o === null) return undefined;
  const rec = o as Record<string, unknown>;
  for (const n of names) if (rec[n] !== undefined) return rec[n];
  return undefined;
}

function batchReason(job: Record<string, unknown>): string | undefined {
  const reasons: string[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'string' && v.trim() !== '' && !reasons.includes(v.trim())) reasons.push(v.trim());
  };
  const container = field(job, 'Container', 'container');
  add(field(container, 'Reason', 'reason'));
  const attempts = field(job, 'Attempts', 'attempts');
  if (Array.isArray(attempts)) {
    for (const a of attempts) {
      add(field(field(a, 'Container', 'container'), 'Reason', 'reason'));
      add(field(a, 'StatusReason', 'statusReason'));
    }
  }
  add(field(job, 'StatusReason', 'statusReason'));
  if (reasons.length === 0) return undefined;
  const exitCode = field(container, 'ExitCode', 'exitCode');
  const attemptsCount = Array.isArray(attempts) ? attempts.length : 0;
  const suffix = [
    typeof exitCode === 'number' ? `exit code ${exitCode}` : undefined,
    attemptsCount > 1 ? `${attemptsCount} attempts` : undefined,
  ].filter(Boolean);
  return stripStack(`${reasons.join('; ')}${suffix.length > 0 ? ` (${suffix.join(', ')})` : ''}`);
}

/** Keeps the human part of a message: drops "    at fn (file:line)" frames and Traceback blocks. */
function stripStack(text: string): string {
  const lines = text.split(/\r?\n/);
  const kept: string[] = [];
  for (const line of lines) {
    if (/^\s+at\s/.test(line) || /^Traceback \(most recent call last\)/.test(line)) break;
    if (line.trim() !== '') kept.push(line.trim());
  }
  return kept.join(' ').trim() || text.split(/\r?\n/)[0]?.trim() || '';
}

function truncate(s: string): string {
  return s.length <= MAX_MESSAGE ? s : `${s.slice(0, MAX_MESSAGE - 1)}…`;
}
