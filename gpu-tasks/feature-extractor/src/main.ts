/**
 * The AWS Batch GPU job: read the clip from S3, extract features, write the
 * features document to S3. Local mode calls runExtractJob in-process with an S3
 * client pointed at s3rver.
 *
 * Logs are JSON lines carrying the scan id only: object keys and file names can
 * identify a patient and never appear in logs or error messages.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ENV, EXTRACT_ENV, EXTRACTOR_EXIT_TRANSIENT } from '../../../core/contract';
import { readExtractItems, type ExtractItemsResult } from './batch';
import { requireEnv } from '../../../core/env';
import { checkPseudonymSalt } from '../../../core/dicom/pseudonym';
import { cachedPseudonymSalt } from '../../../core/dicom/salt-object';
import { ConfigError, TRANSIENT_ERROR_NAME } from '../../../core/errors';
import { extractErrorKey } from '../../../core/keys';
import { transientReason } from '../../../core/transient';
import { extractorFor, loadManifest } from '../../../core/manifest';
import { DEFAULT_MODALITY, MODALITIES, type Modality } from '../../../core/modality';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { ProblemDetail, ScanId, type ExtractorEntry, type FeaturesDocument } from '../../../core/schemas';
import { startsAsDicom } from './decode';
import { extractFeatures } from './extract';
import { createExtractorSession, type ExecutionProviderChoice, type ExtractorSession } from './infer';

export interface ExtractJobConfig {
  readonly scanId: string;
  readonly inputBucket: string;
  readonly inputKey: string;
  /** '' when the bucket is unversioned. */
  readonly inputVersionId: string;
  readonly featuresBucket: string;
  readonly featuresKey: string;
  /** Which of the manifest's extractors runs (EXTRACT_ENV.modality; absent: ultrasound). */
  readonly modality: Modality;
}

/** Reads the job's variables (EXTRACT_ENV), failing with the name of the first one missing or malformed. */
export function readExtractEnv(env: Record<string, string | undefined>): ExtractJobConfig {
  const scanId = requireEnv(EXTRACT_ENV.scanId, env);
  if (!ScanId.safeParse(scanId).success) {
    throw new ConfigError(`Environment variable ${EXTRACT_ENV.scanId} must be 32 lowercase hex characters.`);
  }
  return {
    scanId,
    inputBucket: requireEnv(EXTRACT_ENV.inputBucket, env),
    inputKey: requireEnv(EXTRACT_ENV.inputKey, env),
    // Step Functions passes '' for an unversioned bucket; Batch may drop an empty variable altogether.
    inputVersionId: env[EXTRACT_ENV.inputVersionId] ?? '',
    featuresBucket: requireEnv(EXTRACT_ENV.featuresBucket, env),
    featuresKey: requireEnv(EXTRACT_ENV.featuresKey, env),
    modality: readModality(env[EXTRACT_ENV.modality]),
  };
}

function readModality(value: string | undefined): Modality {
  // Absent or empty: a job (or cohort item) from before modalities, which were all ultrasound.
  if (value === undefined || value === '') return DEFAULT_MODALITY;
  if (!(MODALITIES as readonly string[]).includes(value)) {
    throw new ConfigError(`Environment variable ${EXTRACT_ENV.modality} must be one of ${MODALITIES.join(', ')}.`);
  }
  return value as Modality;
}

export interface ExtractJobDeps {
  readonly s3: S3Client;
  /** @default env[ENV.modelsDir], else the package's models/ */
  readonly modelsDir?: string;
  /** A session to use instead of the per-process cached one (it must match the manifest's extractor). */
  readonly session?: ExtractorSession;
  /**
   * Opens the session of this extractor entry (the scan's modality's) instead of the per-process
   * cached one (local mode: inference in a child process, infer-worker.ts).
   */
  readonly openSession?: (entry: ExtractorEntry) => Promise<ExtractorSession>;
  /** @default env[ENV.onnxExecutionProvider], else 'auto' */
  readonly executionProvider?: ExecutionProviderChoice;
  /** ffmpeg binary. @default $FFMPEG_PATH, else @ffmpeg-installer's */
  readonly ffmpegPath?: string;
  /**
   * DICOM study/series pseudonym salt: a fixed value, or a getter called only for a DICOM clip.
   * @default the salt object in the bucket env[ENV.artifactsBucket] names (core/dicom/salt-object.ts:
   * created on first use, read once per process); without that variable, none (no pseudonyms)
   */
  readonly pseudonymSalt?: string | (() => Promise<string>);
  /** One JSON line per call. @default console.log */
  readonly log?: (line: string) => void;
}

export interface ExtractJobResult {
  readonly document: FeaturesDocument;
  readonly bucket: string;
  readonly key: string;
}

// Model load is the slow part of a cold job and of every local-mode clip: once per process and model.
const sessions = new Map<string, Promise<ExtractorSession>>();

/** The process-wide session for this extractor entry and provider, created on first use. */
export function cachedExtractorSession(
  modelsDir: string,
  entry: ExtractorEntry,
  executionProvider: ExecutionProviderChoice = 'auto',
): Promise<ExtractorSession> {
  const key = `${modelsDir}\0${entry.sha256}\0${executionProvider}`;
  let session = sessions.get(key);
  if (!session) {
    session = createExtractorSession(modelsDir, entry, { executionProvider });
    // A failed load is not cached: the next call retries (and reports) it.
    const pending = session;
    pending.catch(() => {
      if (sessions.get(key) === pending) sessions.delete(key);
    });
    sessions.set(key, pending);
  }
  return session;
}

/** Releases every cached session (tests, and local mode on shutdown). */
export async function releaseCachedSessions(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  await Promise.all(all.map(async (s) => (await s.catch(() => undefined))?.release()));
}

/**
 * Runs one extraction: S3 clip → features document in S3. On failure it also writes the
 * reason as a ProblemDetail to `extractErrorKey(FEATURES_KEY)` (Batch tells Step Functions
 * only an exit code; RecordFailure reads this document), then rethrows.
 */
export async function runExtractJob(
  env: Record<string, string | undefined>,
  deps: ExtractJobDeps,
): Promise<ExtractJobResult> {
  const config = readExtractEnv(env);
  try {
    return await extractJob(config, env, deps);
  } catch (err) {
    await writeProblem(deps.s3, config, err).catch((writeErr: unknown) => {
      // The original error is what matters; this one is only logged.
      (deps.log ?? ((l: string) => console.error(l)))(
        errorLogLine(writeErr, config.scanId, [config.inputKey, config.featuresKey]).replace(
          'extract failed',
          'error document not written',
        ),
      );
    });
    throw err;
  }
}

async function extractJob(
  config: ExtractJobConfig,
  env: Record<string, string | undefined>,
  deps: ExtractJobDeps,
): Promise<ExtractJobResult> {
  const log = deps.log ?? ((line: string) => console.log(line));
  const modelsDir = deps.modelsDir ?? (env[ENV.modelsDir] || DEFAULT_MODELS_DIR);
  const provider = deps.executionProvider ?? parseProvider(env[ENV.onnxExecutionProvider]);

  const { manifest } = loadManifest(modelsDir);
  // One manifest, one extractor per modality: the scan's (Validate decided it; core/modality-detect.ts).
  const entry = extractorFor(manifest, config.modality);
  const session =
    deps.session ??
    (deps.openSession ? await deps.openSession(entry) : await cachedExtractorSession(modelsDir, entry, provider));
  const saltBucket = env[ENV.artifactsBucket];
  const saltSource = deps.pseudonymSalt ?? (saltBucket ? () => cachedPseudonymSalt(deps.s3, saltBucket) : undefined);
  if (typeof saltSource === 'string') checkPseudonymSalt(saltSource);

  // The clip is streamed to a private temp file, never held in memory: the process's memory is
  // bounded by the frames kept, not by the size of the upload.
  const tempDir = await mkdtemp(path.join(tmpdir(), 'sonomark-job-'));
  let document: FeaturesDocument;
  let bytes: number;
  let downloadMs: number;
  try {
    const clip = path.join(tempDir, 'clip');
    const t0 = performance.now();
    const object = await deps.s3.send(
      new GetObjectCommand({
        Bucket: config.inputBucket,
        Key: config.inputKey,
        ...(config.inputVersionId ? { VersionId: config.inputVersionId } : {}),
      }),
    );
    if (!object.Body) throw new Error('The clip object has no body.');
    await pipeline(object.Body as Readable, createWriteStream(clip, { mode: 0o600 }));
    bytes = (await stat(clip)).size;
    downloadMs = performance.now() - t0;
    // Only a DICOM clip needs the salt: another format never waits on it or fails for it.
    let pseudonymSalt = typeof saltSource === 'string' ? saltSource : undefined;
    if (typeof saltSource === 'function' && (await startsAsDicom(clip))) pseudonymSalt = await saltSource();

    document = await extractFeatures({
      clip,
      scanId: config.scanId,
      session,
      entry,
      modality: config.modality,
      decode: {
        ...(deps.ffmpegPath ? { ffmpegPath: deps.ffmpegPath } : {}),
        ...(pseudonymSalt ? { pseudonymSalt } : {}),
      },
    });
  } finally {
    await rm(tempDir, { recursive: true, force: true });
  }

  await deps.s3.send(
    new PutObjectCommand({
      Bucket: config.featuresBucket,
      Key: config.featuresKey,
      Body: JSON.stringify(document),
      ContentType: 'application/json',
      // Encryption: the bucket's default KMS key, so the job needs no key configuration.
    }),
  );
  log(
    JSON.stringify({
      level: 'INFO',
      msg: 'features written',
      scanId: config.scanId,
      extractor: `${entry.name}@${entry.version}`,
      executionProvider: session.executionProvider,
      decodedFrames: document.sampling.decodedFrames,
      frames: document.sampling.frameIndices.length,
      bytes,
      downloadMs: Math.round(downloadMs),
      decodeMs: document.runtime.decodeMs,
      inferMs: document.runtime.inferMs,
    }),
  );
  return { document, bucket: config.featuresBucket, key: config.featuresKey };
}

const PROBLEM_CODES: Record<string, string> = {
  ModelError: 'MODEL_ERROR',
  ConfigError: 'CONFIG_ERROR',
  PayloadError: 'INVALID_FEATURES',
  NoSuchKey: 'CLIP_NOT_FOUND',
  NoSuchVersion: 'CLIP_NOT_FOUND',
  AccessDenied: 'ACCESS_DENIED',
  // The last attempt's document is what RecordFailure reads once the retries ran out (a decoder
  // killed every time, an S3 outage): the same code a Lambda step's exhausted retries get.
  [TRANSIENT_ERROR_NAME]: 'RETRIES_EXHAUSTED',
};

/** What went wrong, as the ProblemDetail RecordFailure shows the user. Messages are redacted like the logs. */
export function problemFor(err: unknown, redact: readonly string[] = []): ProblemDetail {
  const e = err instanceof Error ? err : new Error(String(err));
  const own = (e as { code?: unknown }).code;
  const code =
    typeof own === 'string' && /^[A-Z][A-Z0-9_]*$/.test(own) ? own : (PROBLEM_CODES[e.name] ?? 'EXTRACT_FAILED');
  const { error } = JSON.parse(errorLogLine(e, undefined, redact)) as { error: { message: string } };
  return ProblemDetail.parse({ code, message: error.message.slice(0, 1000) || `${e.name}.` });
}

async function writeProblem(s3: S3Client, config: ExtractJobConfig, err: unknown): Promise<void> {
  const problem = problemFor(err, [config.inputKey, config.featuresKey]);
  await s3.send(
    new PutObjectCommand({
      Bucket: config.featuresBucket,
      Key: extractErrorKey(config.featuresKey),
      Body: JSON.stringify(problem),
      ContentType: 'application/json',
    }),
  );
}

function parseProvider(value: string | undefined): ExecutionProviderChoice {
  if (value === undefined || value === '') return 'auto';
  if (value === 'auto' || value === 'cuda' || value === 'cpu') return value;
  throw new ConfigError(`Environment variable ${ENV.onnxExecutionProvider} must be auto, cuda or cpu, got "${value}".`);
}

/**
 * The error as one JSON log line: name, code and message. Our own messages never carry
 * keys or file names, but an AWS error can (AccessDenied names the object ARN), so the
 * job's object keys and any S3 ARN are redacted.
 */
export function errorLogLine(err: unknown, scanId: string | undefined, redact: readonly string[] = []): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  let message = e.message.replace(/arn:aws[a-z-]*:s3:::\S+/g, '<s3-object>');
  for (const secret of redact) if (secret.length > 0) message = message.split(secret).join('<key>');
  return JSON.stringify({
    level: 'ERROR',
    msg: 'extract failed',
    ...(scanId ? { scanId } : {}),
    error: { name: e.name, ...(typeof code === 'string' ? { code } : {}), message },
  });
}

/**
 * The job's exit status for a failure: EXTRACTOR_EXIT_TRANSIENT for throttling, a 5xx or a
 * reset connection (core/transient.ts), which the Batch job definition retries; 1 for
 * everything else (a decode or model error fails the same way again, on a paid GPU).
 */
export function exitCodeFor(err: unknown): number {
  return transientReason(err) !== undefined ? EXTRACTOR_EXIT_TRANSIENT : 1;
}

/**
 * One scan's fields as the job environment that readExtractEnv checks: how a cohort batch's item and a
 * Lambda invocation's payload become the very variables the Batch job of a single scan is given.
 */
export function scanEnv(
  scan: Omit<ExtractJobConfig, 'modality'> & { readonly modality?: string | undefined },
): Record<string, string> {
  return {
    [EXTRACT_ENV.scanId]: scan.scanId,
    [EXTRACT_ENV.inputBucket]: scan.inputBucket,
    [EXTRACT_ENV.inputKey]: scan.inputKey,
    [EXTRACT_ENV.inputVersionId]: scan.inputVersionId,
    [EXTRACT_ENV.featuresBucket]: scan.featuresBucket,
    [EXTRACT_ENV.featuresKey]: scan.featuresKey,
    ...(scan.modality ? { [EXTRACT_ENV.modality]: scan.modality } : {}),
  };
}

/**
 * Batch mode (a cohort batch, batch.ts reads the item list): extracts every item, one after
 * another on the process's one model session.
 */
export async function runExtractItems(
  env: Record<string, string | undefined>,
  deps: ExtractJobDeps,
): Promise<ExtractItemsResult> {
  const items = await readExtractItems(env, deps);
  const succeeded: string[] = [];
  const failed: string[] = [];
  for (const item of items) {
    try {
      await runExtractJob({ ...env, ...scanEnv(item) }, deps);
      succeeded.push(item.scanId);
    } catch {
      // runExtractJob wrote this item's error document; the batch goes on.
      failed.push(item.scanId);
    }
  }
  return { succeeded, failed };
}

async function main(): Promise<number> {
  const env = process.env;
  let config: ExtractJobConfig | undefined;
  let s3: S3Client | undefined;
  try {
    // AWS_REGION is the platform's (Batch sets it), not part of sonomark's contract.
    const region = requireEnv('AWS_REGION', env);
    const modelsDir = requireEnv(ENV.modelsDir, env);
    if (env[EXTRACT_ENV.itemsKey]) {
      // A cohort batch: every item on one model load; each failed item has its error document.
      s3 = new S3Client({ region });
      const result = await runExtractItems(env, { s3, modelsDir });
      console.log(
        JSON.stringify({
          level: 'INFO',
          msg: 'batch extracted',
          succeeded: result.succeeded.length,
          failed: result.failed.length,
        }),
      );
      return 0;
    }
    // Everything the job needs, checked before any work so a misconfigured job definition fails in milliseconds.
    config = readExtractEnv(env);
    s3 = new S3Client({ region });
    await runExtractJob(env, { s3, modelsDir });
    return 0;
  } catch (err) {
    console.error(errorLogLine(err, config?.scanId, config ? [config.inputKey, config.featuresKey] : []));
    return exitCodeFor(err);
  } finally {
    s3?.destroy();
    await releaseCachedSessions().catch(() => undefined);
  }
}

if (require.main === module) {
  // Exit explicitly: a stray handle must not keep a GPU instance busy after the work is done.
  void main().then((code) => process.exit(code));
}
