/**
 * Validate: from an S3 "Object Created" event to a decision (analyze, skip,
 * reject, ignore). Pure apart from the clients it is handed, so Lambda, local
 * mode and unit tests run the same code.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import {
  featuresKey,
  isSidecarKey,
  parseUploadKey,
  sidecarKeyFor,
  UPLOADS_PREFIX,
  UploadKeyError,
  type UploadKey,
} from '../../core/keys';
import { DICOM_HEAD_BYTES, dicomHeadProblem } from '../../core/dicom/header';
import { extractorRef, extractorFor } from '../../core/manifest';
import { DEFAULT_INPUT_LIMITS, type InputLimits } from '../../core/limits';
import { isUnsupported, sniffContainer, SNIFF_BYTES } from '../../core/media';
import { checkHeaderLimits, readHeaderInfoRanged, type HeaderInfo } from '../../core/media-header';
import { claimScan, DEFAULT_LEASE_SECONDS, putExecutionPointer, type ScanClaim } from '../../core/results-store';
import { hashStream, scanIdFromContent, scanIdFromObjectIdentity, type HashedStream } from '../../core/scan-id';
import {
  S3ObjectCreatedEvent,
  SidecarMetadata,
  type Manifest,
  type ProblemDetail,
  type ScanRef,
  type ValidateOutput,
} from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';
import { s3RangeReader } from './range-reader';

export const ValidateInput = z.object({
  event: S3ObjectCreatedEvent,
  /**
   * The execution's id (`$$.Execution.Id`: its ARN; a local execution id in local mode): the
   * claim's lease holder. Absent outside an execution (tests, tools): the claim has no lease holder.
   */
  execution: z.string().min(1).optional(),
});
export type ValidateInput = z.infer<typeof ValidateInput>;

export { DEFAULT_MAX_UPLOAD_BYTES } from '../../core/limits';
/** A sidecar is a few fields of JSON; anything bigger is not one. */
export const MAX_SIDECAR_BYTES = 64 * 1024;

export interface ValidateDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** Where the extractor writes the features document. */
  readonly artifactsBucket: string;
  readonly manifest: Manifest;
  readonly maxUploadBytes: number;
  /** Duration, size and frame limits checked on the container header. @default DEFAULT_INPUT_LIMITS */
  readonly limits?: InputLimits;
  /** How long a claim holds (the state machine's timeout). @default DEFAULT_LEASE_SECONDS */
  readonly leaseSeconds?: number;
  readonly now: () => Date;
  /** Told when the header's limits could not be read (the extractor checks them then); the reason names no file. */
  readonly onLimitsUnchecked?: (scanId: string, reason: string) => void;
}

const SIDECAR_FIELDS = Object.keys(SidecarMetadata.shape);

export async function validateUpload(input: unknown, deps: ValidateDeps): Promise<ValidateOutput> {
  const { event, execution } = parsePayload(ValidateInput, input, 'Validate input');
  const bucket = event.detail.bucket.name;
  const key = event.detail.object.key;
  const versionId = event.detail.object['version-id'];
  const etag = event.detail.object.etag;

  if (isSidecarKey(key)) return { action: 'ignore', reason: 'Sidecar metadata is read together with its clip.' };

  let upload: UploadKey | undefined;
  let keyProblem: ProblemDetail | undefined;
  try {
    upload = parseUploadKey(key);
  } catch (err) {
    if (!(err instanceof UploadKeyError)) throw err;
    keyProblem = { code: 'INVALID_KEY', message: err.message };
  }

  const object = await readObject(deps.s3, bucket, key, versionId, deps.maxUploadBytes);

  if (!upload) {
    // No valid site/study: no claim (nothing to bill or list), but a stable id so the failure is recorded once.
    const [rawSite = '', rawStudy = ''] = key.startsWith(UPLOADS_PREFIX)
      ? key.slice(UPLOADS_PREFIX.length).split('/')
      : [];
    const scanId =
      object.kind === 'hashed'
        ? scanIdFromContent(rawSite, rawStudy, object.hashed.sha256)
        : scanIdFromObjectIdentity(bucket, key, versionId, etag);
    return { action: 'reject', scanId, problem: keyProblem as ProblemDetail };
  }

  if (object.kind === 'missing') {
    // Deleted (or replaced) before we could read it: nothing to analyse, and nothing a retry would fix.
    const scanId = scanIdFromObjectIdentity(bucket, key, versionId, etag);
    return {
      action: 'reject',
      scanId,
      problem: {
        code: 'OBJECT_MISSING',
        message: 'The uploaded object no longer exists (deleted or overwritten before validation). Upload it again.',
      },
    };
  }

  // A file over the limit is never read: its id comes from the object identity, not its bytes.
  const hashed: HashedStream =
    object.kind === 'hashed' ? object.hashed : { sha256: '', size: object.size, head: Buffer.alloc(0) };
  const scanId =
    object.kind === 'hashed'
      ? scanIdFromContent(upload.siteId, upload.studyId, hashed.sha256)
      : scanIdFromObjectIdentity(bucket, key, versionId, etag);
  const sniffed = hashed.size > 0 && object.kind === 'hashed' ? sniffContainer(hashed.head) : undefined;
  const container = sniffed !== undefined && !isUnsupported(sniffed) ? sniffed : undefined;
  // modality: routed in xray-routing (detected from the upload before the extractor is chosen)
  const extractor = extractorRef(extractorFor(deps.manifest, 'ultrasound'));
  const nowDate = deps.now();
  const receivedAt = nowDate.toISOString();
  const leaseSeconds = deps.leaseSeconds ?? DEFAULT_LEASE_SECONDS;

  // Every read that can fail transiently comes before the claim: a Validate retried after
  // its own claim would find the scan RUNNING and skip it, leaving it RUNNING for good.
  const sidecar = await readSidecar(deps.s3, bucket, key);
  // The header's numbers, including what lies past the head (an MP4 index at the end,
  // Matroska Info/Tracks placed later): small ranged reads, before the claim for the same reason.
  const headerInfo: HeaderInfo =
    container !== undefined && object.kind === 'hashed' && hashed.size <= deps.maxUploadBytes
      ? await readHeaderInfoRanged(
          container,
          hashed.head,
          hashed.size,
          s3RangeReader(deps.s3, bucket, key, versionId),
        ).catch((err: unknown) => {
          // Gone or replaced since it was hashed: the head's numbers stand, the extractor checks the rest.
          if (isNotFound(err) || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412)
            return { unchecked: 'the object changed while its header was read; the extractor checks the limits' };
          throw err;
        })
      : {};
  if (headerInfo.unchecked) deps.onLimitsUnchecked?.(scanId, headerInfo.unchecked);

  // Claim first: a reject then maps to a scan record that RecordFailure marks FAILED,
  // and a re-delivered event for bytes already analysed stops here.
  const claim: ScanClaim = {
    scanId,
    siteId: upload.siteId,
    studyId: upload.studyId,
    bucket,
    key,
    versionId: versionId ?? '',
    // sha256 of nothing read (too large): the empty-string hash would be a lie, so store the marker of "not hashed".
    sha256: hashed.sha256 || '0'.repeat(64),
    size: hashed.size,
    container,
    extractor,
    featuresBucket: deps.artifactsBucket,
    featuresKey: featuresKey(upload.siteId, extractor, scanId),
    receivedAt,
    ...(execution
      ? {
          lease: {
            executionId: execution,
            expiresAt: new Date(nowDate.getTime() + leaseSeconds * 1000).toISOString(),
          },
        }
      : {}),
  };
  // The pointer first: an execution that dies right after its claim can still be found
  // from its execution-ended event (lambdas/execution-ended).
  if (execution) await putExecutionPointer(deps.doc, deps.table, execution, upload.siteId, scanId, receivedAt);
  const claimed = await claimScan(deps.doc, deps.table, claim, receivedAt);
  if (!claimed.claimed) {
    return {
      action: 'skip',
      scanId,
      existingStatus: claimed.existingStatus,
      reason:
        claimed.existingStatus === 'COMPLETED'
          ? 'These bytes were already analysed for this study.'
          : 'Another execution is analysing these bytes for this study.',
    };
  }

  const reject = (code: string, message: string): ValidateOutput => ({
    action: 'reject',
    scanId,
    problem: { code, message },
  });

  if (object.kind === 'too-large' || hashed.size > deps.maxUploadBytes) {
    return reject(
      'TOO_LARGE',
      `The file is ${formatBytes(hashed.size)}, over the ${formatBytes(deps.maxUploadBytes)} limit. Upload a shorter clip or export it at a lower resolution.`,
    );
  }
  if (hashed.size === 0) {
    return reject(
      'EMPTY_FILE',
      'The file is empty (0 bytes). Upload the clip again; the previous upload may have been interrupted.',
    );
  }
  if (sniffed !== undefined && isUnsupported(sniffed)) return reject('UNSUPPORTED_FORMAT', sniffed.unsupported);
  if (container === undefined) return reject('UNSUPPORTED_FORMAT', 'The file format could not be identified.');
  if (container === 'dicom') {
    // No pixel data, an encoding or colour model the extractor cannot decode: refused before any GPU job.
    const problem = dicomHeadProblem(hashed.head, hashed.head.length >= hashed.size);
    if (problem) return reject(problem.code, problem.message);
  }

  // Before any GPU job: what the header states (numbers only, nothing allocated from them).
  const overLimit = checkHeaderLimits(headerInfo, deps.limits ?? DEFAULT_INPUT_LIMITS);
  if (overLimit) return reject(overLimit.code, overLimit.message);

  if (sidecar.kind === 'invalid') return reject('INVALID_SIDECAR', sidecar.message);

  // The scan is the claim, now known to be a supported clip, plus its sidecar.
  // The lease is the table's business, not the workflow state's.
  const { lease: _lease, ...claimFields } = claim;
  const scan: ScanRef = {
    ...claimFields,
    sha256: hashed.sha256,
    container,
    featuresBucket: deps.artifactsBucket,
    featuresKey: featuresKey(upload.siteId, extractor, scanId),
    ...(sidecar.kind === 'valid' ? { sidecar: sidecar.value } : {}),
  };
  return { action: 'analyze', scan };
}

type ReadResult = { kind: 'hashed'; hashed: HashedStream } | { kind: 'too-large'; size: number } | { kind: 'missing' };

const isNotFound = (err: unknown): boolean => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | null;
  return (
    e?.name === 'NoSuchKey' ||
    e?.name === 'NotFound' ||
    e?.name === 'NoSuchVersion' ||
    e?.$metadata?.httpStatusCode === 404
  );
};

/** Streams the object through sha256, keeping its first bytes for sniffing; never holds the whole file. */
async function readObject(
  s3: S3Client,
  bucket: string,
  key: string,
  versionId: string | undefined,
  maxBytes: number,
): Promise<ReadResult> {
  let out;
  try {
    out = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
    );
  } catch (err) {
    if (isNotFound(err)) return { kind: 'missing' };
    throw err; // access denied, throttling: let Step Functions retry, then RecordFailure
  }
  const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
  if (out.ContentLength !== undefined && out.ContentLength > maxBytes) {
    body?.destroy?.();
    return { kind: 'too-large', size: out.ContentLength };
  }
  if (!body) return { kind: 'hashed', hashed: { sha256: EMPTY_SHA256, size: 0, head: Buffer.alloc(0) } };
  // DICOM needs more than the sniffer's bytes: Validate reads its header (core/dicom) from this head.
  return { kind: 'hashed', hashed: await hashStream(body, Math.max(SNIFF_BYTES, DICOM_HEAD_BYTES)) };
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

type SidecarResult =
  { kind: 'none' } | { kind: 'valid'; value: SidecarMetadata } | { kind: 'invalid'; message: string };

async function readSidecar(s3: S3Client, bucket: string, clipKey: string): Promise<SidecarResult> {
  let text: string;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: sidecarKeyFor(clipKey) }));
    if (out.ContentLength !== undefined && out.ContentLength > MAX_SIDECAR_BYTES) {
      return {
        kind: 'invalid',
        message: `The sidecar metadata file is larger than ${MAX_SIDECAR_BYTES / 1024} KiB; it should hold a few fields (${SIDECAR_FIELDS.join(', ')}).`,
      };
    }
    text = out.Body ? await out.Body.transformToString('utf8') : '';
  } catch (err) {
    if (isNotFound(err)) return { kind: 'none' };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return {
      kind: 'invalid',
      message: `The sidecar metadata file is not valid JSON. Accepted: a JSON object with optional keys ${SIDECAR_FIELDS.join(', ')}.`,
    };
  }
  const parsed = SidecarMetadata.safeParse(json);
  if (parsed.success) return { kind: 'valid', value: parsed.data };
  const issues = parsed.error.issues.slice(0, 3).map((i) => {
    // Counted, not named: a sidecar's keys are the uploader's text and can name a patient (found by fuzzing).
    if (i.code === 'unrecognized_keys') return `${i.keys.length} unknown key(s)`;
    const field = i.path.length > 0 ? `"${i.path.join('.')}"` : 'the document';
    return `${field}: ${i.message}`;
  });
  return {
    kind: 'invalid',
    message: `The sidecar metadata is invalid (${issues.join('; ')}). Accepted keys: ${SIDECAR_FIELDS.join(', ')}; no other fields are allowed.`,
  };
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2).replace(/\.?0+$/, '')} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1).replace(/\.0$/, '')} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1).replace(/\.0$/, '')} KiB`;
  return `${n} bytes`;
}
