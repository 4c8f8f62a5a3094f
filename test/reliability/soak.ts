/**
 * The soak: many uploads, with concurrency, through the real local workflow (the
 * synthesized definition, s3rver, dynalite, the handlers' own code), then an audit of
 * what it left behind. The reliability suite (soak.test.ts) runs a short one; `npm run
 * soak -- --uploads N [--concurrency C]` a longer one and prints the report.
 *
 * The uploads mix real clips from both data sets in ../shared (POCUS and COVID-BLUES),
 * clips ffmpeg generates, and malformed files (noise, truncated, empty, a PDF); some
 * are the same bytes uploaded again under another name, and some the same event
 * delivered twice at once (the Object Created event of an upload run a second time,
 * without a second put, while the first run still goes on).
 *
 * The audit reads the table itself, not the per-upload answers: every upload maps to
 * exactly one scan record, COMPLETED or FAILED (none left RUNNING); no two scan
 * records for the same bytes; every completed scan has exactly one result per expert;
 * no temp files or child processes outlive the run; peak RSS is reported.
 *
 * Faults (`SoakOptions.faults`, soakFaults() for the standard set): injected into the same
 * run through local/faults.ts, so they meet concurrency, repeats and malformed files:
 * - transient: DynamoDB throttling of the claim (PutItem) and of updates (UpdateItem), S3
 *   503 SlowDown and 500s on reading uploads, an expert throwing a transient error N times,
 *   Lambda timeouts (Sandbox.Timedout) of an expert and of Finalize, and the extractor's
 *   decoder (ffmpeg) killed mid-clip from outside, three times.
 *   Each must be retried (the SDK's attempts, then the state's Retry block) and recover:
 *   the report counts the Retry blocks that ran (`retries`) and the faults injected.
 * - permanent: access denied reading one scan's features (its experts cannot run): that
 *   scan must be FAILED with the reason naming AccessDenied, never retried into success.
 * - an execution aborted during Extract (StopExecution), then the same bytes uploaded again
 *   once it has ended: ExecutionEnded records it FAILED, the re-upload claims it again, and
 *   the scan must end COMPLETED.
 * The audit is the same with or without them.
 */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { STATE } from '../../core/contract';
import { PACKAGE_ROOT } from '../../core/paths';
import { expertSk, featuresKey, SCAN_SK, uploadKey } from '../../core/keys';
import { expertsFor, loadManifest } from '../../core/manifest';
import { scanIdFromContent } from '../../core/scan-id';
import type { FaultPlan, SdkFault, HandlerFault } from '../../local/faults';
import type { S3ObjectCreatedEvent } from '../../core/schemas';
import {
  LOCAL_TABLE,
  LOCAL_UPLOADS_BUCKET,
  LocalWorkflow,
  type AnalyzeResult,
  type LocalWorkflowOptions,
} from '../../local/workflow';
import { killDecoders, runningDecoderCount } from '../../gpu-tasks/feature-extractor/src/decode';
import { makeLavfiClip } from '../helpers/clips';

export const POCUS_VIDEOS = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus', 'videos');
export const COVID_BLUES_VIDEOS = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'covid-blues', 'videos');

const SOAK_STUDY = 'soak';

export type UploadKind = 'real-pocus' | 'real-covid-blues' | 'generated' | 'malformed';

export interface PlannedUpload {
  readonly index: number;
  readonly kind: UploadKind;
  readonly file: string;
  readonly objectName: string;
  /** 'again': these bytes were uploaded before under another name; 'redelivered': the same event twice at once. */
  readonly repeat?: 'again' | 'redelivered';
  /** For malformed files: the problem codes a correct run records. */
  readonly expectFailure?: readonly string[];
  /** A permanent fault's upload: the recorded reason must match this. */
  readonly expectReason?: RegExp;
  /** Fault: this upload's execution is aborted (StopExecution) as it enters Extract. */
  readonly abortInExtract?: boolean;
  /** Starts only once upload `after` has ended (the re-upload of an aborted one). */
  readonly after?: number;
}

/** Which faults a soak injects (soakFaults() builds the standard set). */
export interface SoakFaults {
  /** SDK and handler faults, in force from the workflow's start (local/faults.ts). */
  readonly plan: FaultPlan;
  /** Uploads turned into fault cases (a permanent fault's target, an abort and its re-upload). */
  readonly cases: readonly FaultCase[];
  /** Extractor decoders (ffmpeg) to kill mid-clip, from outside, as they are seen running. @default 0 */
  readonly decoderKills?: number;
}

export type FaultCase =
  | { readonly kind: 'permanent'; readonly index: number; readonly expectCode: string; readonly expectReason: RegExp }
  | { readonly kind: 'abort-in-extract'; readonly index: number; readonly reuploadIndex: number };

export interface SoakOptions {
  readonly uploads: number;
  /** Uploads in flight at once. @default 4 */
  readonly concurrency?: number;
  /** Where the corpus and the local data go (created; the caller removes it). */
  readonly workDir: string;
  /**
   * Faults to inject: `true` for the standard set (soakFaults()), or a plan of your own.
   * The plan's `permanent` cases are resolved against the uploads once planned. @default none
   */
  readonly faults?: boolean | ((plan: readonly PlannedUpload[], workDir: string) => SoakFaults);
  readonly workflow?: Omit<LocalWorkflowOptions, 'dataDir' | 'faults'>;
  readonly log?: (line: string) => void;
  /** Temp entries that are the runner's, not the workflow's (run-soak.ts: tsx's). @default none */
  readonly ignoreTemp?: RegExp;
}

export interface UploadOutcome {
  readonly upload: PlannedUpload;
  readonly result?: AnalyzeResult;
  /** analyze() itself threw (it should not: failures are outcomes). */
  readonly thrown?: string;
}

export interface SoakReport {
  readonly uploads: number;
  readonly distinctScans: number;
  readonly completed: number;
  readonly failed: number;
  readonly failedByReason: Record<string, number>;
  /** Uploads whose scan has no record, or a RUNNING one, at the end. */
  readonly unaccounted: readonly string[];
  /** Scan records beyond one for the same bytes (site, study, sha256): must be 0. */
  readonly duplicates: number;
  /** Completed scans whose expert results are not exactly one per expert. */
  readonly badResultSets: readonly string[];
  /** Retry blocks the state machine ran (every execution's AnalyzeResult.retries, summed). */
  readonly retries: number;
  /** The same, by state name. */
  readonly retriesByState: Record<string, number>;
  /** Re-claims of a FAILED scan (scan attempts beyond the first: a re-upload after a failure or an abort). */
  readonly reclaims: number;
  /** Faults injected, by `s3:GetObject`, `handler:expert:…`, `abort:Extract` (local/faults.ts names). */
  readonly faultsInjected: Record<string, number>;
  /** Fault cases whose outcome was wrong (a permanent fault not recorded, an aborted upload not re-analysed). */
  readonly faultCaseErrors: readonly string[];
  /** Uploads answered from an existing scan (same bytes again, or a redelivered event). */
  readonly deduplicated: number;
  /** Malformed uploads recorded with a code other than the expected ones, or completed. */
  readonly wrongOutcomes: readonly string[];
  readonly thrown: readonly string[];
  /** Entries new in the temp directory after the run (the work dir excluded). */
  readonly orphanTempFiles: readonly string[];
  /** Child processes of this process still alive after the run. */
  readonly orphanChildren: readonly string[];
  readonly wallSeconds: number;
  readonly peakRssMiB: number;
  readonly outcomes: readonly UploadOutcome[];
}

function videosUnder(dir: string): string[] {
  if (!existsSync(dir)) {
    throw new Error(`The data set ${dir} is missing: the soak reads real clips from ../shared/data; put it there.`);
  }
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...videosUnder(full));
    else if (/\.(mp4|avi|mov|gif|mpeg|mpg|webm|mkv)$/i.test(e.name)) out.push(full);
  }
  return out.sort();
}

/** The smaller half of a data set's clips, in a fixed order: real bytes, bounded run time. */
function smallClips(dir: string): string[] {
  const files = videosUnder(dir).map((f) => ({ f, size: statSync(f).size }));
  const bySize = [...files].sort((a, b) => a.size - b.size || a.f.localeCompare(b.f));
  return bySize.slice(0, Math.max(1, Math.ceil(bySize.length / 2))).map((x) => x.f);
}

/** Deterministic bytes that are no media at all (a different file per seed). */
function noise(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let h = createHash('sha256').update(`noise-${seed}`).digest();
  for (let i = 0; i < length; i++) {
    if (i % 32 === 0 && i > 0) h = createHash('sha256').update(h).digest();
    out[i] = h[i % 32]!;
  }
  return out;
}

/** The uploads of a soak of n: a fixed, repeatable mix. */
export function planUploads(n: number, workDir: string): PlannedUpload[] {
  const corpus = path.join(workDir, 'corpus');
  mkdirSync(corpus, { recursive: true });
  const pocus = smallClips(POCUS_VIDEOS);
  const blues = smallClips(COVID_BLUES_VIDEOS);
  const plan: PlannedUpload[] = [];
  let generated = 0;
  let malformed = 0;
  let pocusNext = 0;
  let bluesNext = 0;
  for (let i = 0; i < n; i++) {
    const slot = i % 8;
    const name = (ext: string) => `soak-${String(i).padStart(5, '0')}${ext}`;
    let upload: PlannedUpload;
    if (slot === 5 && plan.length > 0) {
      // The same bytes as an earlier upload, under another name.
      // Every other time the one just before (likely still running: a concurrent claim), else an older one.
      const earlier = plan[(i / 8) % 2 < 1 ? plan.length - 1 : (i * 7) % plan.length]!;
      upload = { ...earlier, index: i, objectName: name(path.extname(earlier.file)), repeat: 'again' };
    } else if (slot === 7 && plan.length > 0) {
      // The same event delivered twice: same object name, same bytes, while the first still runs.
      const earlier = plan[plan.length - 1]!;
      upload = { ...earlier, index: i, repeat: 'redelivered' };
    } else if (slot === 0 || slot === 4) {
      const file = pocus[pocusNext++ % pocus.length]!;
      upload = { index: i, kind: 'real-pocus', file, objectName: name(path.extname(file)) };
    } else if (slot === 1 || slot === 6) {
      const file = blues[bluesNext++ % blues.length]!;
      upload = { index: i, kind: 'real-covid-blues', file, objectName: name(path.extname(file)) };
    } else if (slot === 2) {
      const frames = 6 + (generated++ % 11);
      const file = makeLavfiClip(path.join(corpus, `gen-${i}.mp4`), `testsrc=size=160x120:rate=10`, [
        '-frames:v',
        String(frames),
        '-vf',
        `hue=h=${(i * 37) % 360}`,
        '-pix_fmt',
        'yuv420p',
      ]);
      upload = { index: i, kind: 'generated', file, objectName: name('.mp4') };
    } else {
      const variant = malformed++ % 4;
      const file = path.join(corpus, `bad-${i}.${['mp4', 'mp4', 'avi', 'mp4'][variant]}`);
      let expectFailure: string[];
      if (variant === 0) {
        writeFileSync(file, noise(i, 4096 + i));
        expectFailure = ['UNSUPPORTED_FORMAT'];
      } else if (variant === 1) {
        // A real clip cut short: it sniffs as MP4 and fails to decode.
        // MP4 sources only: a truncated GIF or AVI can still hold whole frames and rightly complete.
        const mp4s = pocus.filter((f) => f.toLowerCase().endsWith('.mp4'));
        writeFileSync(file, readFileSync(mp4s[i % mp4s.length]!).subarray(0, 2000 + i));
        expectFailure = ['DECODE_FAILED', 'UNSUPPORTED_FORMAT', 'NO_FRAMES', 'NO_VIDEO_STREAM'];
      } else if (variant === 2) {
        writeFileSync(file, Buffer.alloc(0));
        expectFailure = ['EMPTY_FILE'];
      } else {
        writeFileSync(file, Buffer.concat([Buffer.from(`%PDF-1.7\n% soak ${i}\n`), noise(i, 512)]));
        expectFailure = ['UNSUPPORTED_FORMAT'];
      }
      upload = { index: i, kind: 'malformed', file, objectName: name(path.extname(file)), expectFailure };
    }
    plan.push(upload);
  }
  return plan;
}

const sha256Of = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** The transient faults of the standard set: each recovers through the SDK's attempts and the Retry blocks. */
export function transientFaults(expert: string): { sdk: SdkFault[]; handlers: HandlerFault[] } {
  return {
    sdk: [
      // 3 SDK attempts per run of a state: 4 throttles outlast them once, so the state's retrier runs.
      { service: 'dynamodb', operation: 'PutItem', kind: 'throttle', times: 4 },
      { service: 'dynamodb', operation: 'UpdateItem', kind: 'throttle', times: 4 },
      { service: 's3', operation: 'GetObject', kind: 'throttle', times: 4, keyPrefix: 'uploads/' },
      { service: 's3', operation: 'GetObject', kind: 'server-error', times: 7, keyPrefix: 'uploads/' },
    ],
    handlers: [
      { role: 'expert', expert, times: 3 },
      // Lambda timeouts (Sandbox.Timedout after the handler's work landed): retried, no duplicate result.
      { role: 'expert', expert, kind: 'timeout', times: 2 },
      { role: 'finalize', kind: 'timeout', times: 1 },
    ],
  };
}

/**
 * The standard fault set (module comment): the transient faults, one permanent fault on a
 * generated clip's scan and one abort during Extract of a real clip, re-uploaded later. Needs
 * at least 16 uploads for the fault cases (fewer: transient faults only).
 */
export function soakFaults(
  plan: readonly PlannedUpload[],
  options: { siteId?: string; studyId?: string; modelsDir?: string } = {},
): SoakFaults {
  const loaded = loadManifest(options.modelsDir);
  const { sdk, handlers } = transientFaults(loaded.manifest.experts[0]!.name);
  const cases: FaultCase[] = [];
  const usedOnce = (u: PlannedUpload) => plan.filter((o) => o.file === u.file).length === 1;
  // Permanent: access denied to one scan's features, so its experts cannot read them. The last
  // such upload: the transient expert faults, consumed in upload order, then meet healthy scans
  // first (a Map that fails for good drops its other iterations' retries from the count).
  const target = [...plan].reverse().find((u) => u.index >= 2 && u.kind === 'generated' && usedOnce(u));
  if (target) {
    const scanId = scanIdFromContent(options.siteId ?? 'local', options.studyId ?? SOAK_STUDY, sha256Of(target.file));
    sdk.push({
      service: 's3',
      operation: 'GetObject',
      kind: 'access-denied',
      times: 1_000_000,
      keyPrefix: featuresKey(options.siteId ?? 'local', loaded.manifest.extractors.ultrasound, scanId).replace(
        /\.json$/,
        '',
      ),
    });
    cases.push({ kind: 'permanent', index: target.index, expectCode: 'ACCESS_DENIED', expectReason: /AccessDenied/ });
  }
  // Abort during Extract, then the same bytes again under another name once that execution has ended.
  const aborted = plan.find((u) => u.index >= 8 && u.kind === 'real-pocus' && !u.repeat);
  const reupload = aborted && plan.find((u) => u.index > aborted.index + 2 && u.repeat === 'again');
  if (aborted && reupload)
    cases.push({ kind: 'abort-in-extract', index: aborted.index, reuploadIndex: reupload.index });
  return { plan: { sdk, handlers }, cases, decoderKills: 3 };
}

/** The plan with the fault cases applied to its uploads. */
function withFaultCases(plan: readonly PlannedUpload[], cases: readonly FaultCase[]): PlannedUpload[] {
  const out = [...plan];
  for (const c of cases) {
    const u = out[c.index]!;
    if (c.kind === 'permanent') {
      out[c.index] = { ...u, expectFailure: [c.expectCode], expectReason: c.expectReason };
    } else {
      out[c.index] = { ...u, abortInExtract: true };
      const name = `soak-${String(c.reuploadIndex).padStart(5, '0')}${path.extname(u.file)}`;
      out[c.reuploadIndex] = { ...u, index: c.reuploadIndex, objectName: name, repeat: 'again', after: c.index };
    }
  }
  return out;
}

/** Child processes of this process (Linux /proc), as `pid comm`. */
export function childProcesses(): string[] {
  const out: string[] = [];
  for (const pid of existsSync('/proc') ? readdirSync('/proc') : []) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may contain spaces, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(`${pid} ${comm}`);
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/**
 * The Object Created event S3 sent for an object of the soak, once the object exists
 * (the upload it repeats may still be putting it): what a second delivery carries.
 */
async function deliveredEvent(
  workflow: LocalWorkflow,
  opts: SoakOptions,
  objectName: string,
): Promise<S3ObjectCreatedEvent> {
  const key = uploadKey(opts.workflow?.siteId ?? 'local', opts.workflow?.studyId ?? SOAK_STUDY, objectName);
  for (let attempt = 0; ; attempt++) {
    try {
      const head = await workflow.services.s3.send(new HeadObjectCommand({ Bucket: LOCAL_UPLOADS_BUCKET, Key: key }));
      return {
        'detail-type': 'Object Created',
        source: 'aws.s3',
        time: new Date().toISOString(),
        region: 'local-1',
        detail: {
          bucket: { name: LOCAL_UPLOADS_BUCKET },
          object: { key, size: head.ContentLength ?? 0, etag: head.ETag?.replace(/"/g, '') },
          reason: 'PutObject',
        },
      };
    } catch (err) {
      if (attempt >= 200) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Runs `fn` over the items with at most `limit` in flight; results in item order. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return results;
}

interface Item {
  pk: string;
  sk: string;
  status?: string;
  siteId?: string;
  studyId?: string;
  sha256?: string;
  attempts?: number;
  error?: { code?: string; message?: string };
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  mkdirSync(opts.workDir, { recursive: true });
  // A private temp directory for the run (restored after): other processes on the machine,
  // and other test files in this jest run, write to the shared one, and orphans must be ours.
  const tmp = path.join(opts.workDir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  try {
    return await soakIn(opts, tmp);
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  }
}

async function soakIn(opts: SoakOptions, tmp: string): Promise<SoakReport> {
  const log = opts.log ?? (() => {});
  const concurrency = opts.concurrency ?? 4;
  const tempBefore = new Set(readdirSync(tmp));
  const childrenBefore = new Set(childProcesses());
  const planned = planUploads(opts.uploads, opts.workDir);
  const faults =
    opts.faults === true
      ? soakFaults(planned, { ...opts.workflow, studyId: opts.workflow?.studyId ?? SOAK_STUDY })
      : opts.faults
        ? opts.faults(planned, opts.workDir)
        : undefined;
  const plan = withFaultCases(planned, faults?.cases ?? []);
  log(
    `soak: ${plan.length} uploads, concurrency ${concurrency}` +
      (faults ? `, faults: ${faults.cases.map((c) => `${c.kind} #${c.index}`).join(', ')} + transient` : ''),
  );

  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 100);
  const t0 = performance.now();
  const workflow = await LocalWorkflow.start({
    studyId: SOAK_STUDY,
    ...opts.workflow,
    dataDir: path.join(opts.workDir, 'data'),
    ...(faults ? { faults: faults.plan } : {}),
  });
  let aborts = 0;
  // The extractor killed mid-clip: its ffmpeg child, from outside (killDecoders), as seen running.
  let kills = 0;
  const killer = faults?.decoderKills
    ? setInterval(() => {
        if (kills < faults.decoderKills! && runningDecoderCount() > 0) kills += killDecoders();
      }, 2)
    : undefined;
  const ended = new Map<number, Promise<unknown>>();
  let outcomes: UploadOutcome[];
  const items: Item[] = [];
  const experts = expertsFor(workflow.loaded.manifest, 'ultrasound').map((e) => e.name);
  try {
    // A redelivered event runs as soon as the object it names exists, so both runs overlap.
    outcomes = await pool(plan, concurrency, async (upload) => {
      let done!: () => void;
      ended.set(upload.index, new Promise<void>((r) => (done = r)));
      try {
        if (upload.after !== undefined) await ended.get(upload.after);
        const onStateEntered = upload.abortInExtract
          ? (state: string, executionId: string) => {
              if (state === STATE.extract && workflow.abort(executionId)) aborts++;
            }
          : undefined;
        const result =
          upload.repeat === 'redelivered'
            ? await workflow.analyze(upload.file, upload.objectName, {
                redeliver: await deliveredEvent(workflow, opts, upload.objectName),
              })
            : await workflow.analyze(upload.file, upload.objectName, onStateEntered ? { onStateEntered } : {});
        log(
          `  ${upload.index} ${upload.kind}${upload.repeat ? ` (${upload.repeat})` : ''}: ${result.status}` +
            (result.error ? ` ${result.error.code}: ${result.error.message.slice(0, 300)}` : ''),
        );
        return { upload, result };
      } catch (err) {
        return { upload, thrown: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
      } finally {
        done();
      }
    });
    let start: Record<string, unknown> | undefined;
    do {
      const page = await workflow.services.doc.send(
        new ScanCommand({ TableName: LOCAL_TABLE, ...(start ? { ExclusiveStartKey: start } : {}) }),
      );
      items.push(...((page.Items ?? []) as Item[]));
      start = page.LastEvaluatedKey;
    } while (start);
  } finally {
    clearInterval(killer);
    await workflow.close();
    clearInterval(sampler);
  }
  const faultsInjected: Record<string, number> = { ...workflow.faults.injected };
  if (aborts > 0) faultsInjected['abort:Extract'] = aborts;
  if (kills > 0) faultsInjected['kill:decoder'] = kills;

  const wallSeconds = (performance.now() - t0) / 1000;
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);

  // Items of a scan live under `SITE#{site}#SCAN#{scanId}` (core/keys.ts scanPk).
  const scanIdOf = (pk: string) => /^SITE#[^#]*#SCAN#(.+)$/.exec(pk)?.[1];
  const scans = new Map(
    items.filter((i) => i.sk === SCAN_SK && scanIdOf(i.pk)).map((i) => [scanIdOf(i.pk)!, i] as const),
  );
  // One result item per expert version (`EXPERT#{name}#{version}`): the expert's name, once per item.
  const resultsOf = (scanId: string) =>
    items.filter((i) => scanIdOf(i.pk) === scanId && i.sk.startsWith(expertSk(''))).map((i) => i.sk.split('#')[1]!);

  const unaccounted: string[] = [];
  const wrongOutcomes: string[] = [];
  const scanIds = new Set<string>();
  let deduplicated = 0;
  for (const o of outcomes) {
    const label = `upload ${o.upload.index} (${o.upload.kind}${o.upload.repeat ? `, ${o.upload.repeat}` : ''})`;
    const scanId = o.result?.scanId;
    if (!scanId) {
      unaccounted.push(`${label}: no scan id (${o.result?.error?.code ?? o.thrown ?? 'no result'})`);
      continue;
    }
    scanIds.add(scanId);
    if (o.result?.reused || (o.upload.repeat && o.result?.error?.code === 'INCOMPLETE')) deduplicated++;
    const scan = scans.get(scanId);
    if (!scan || (scan.status !== 'COMPLETED' && scan.status !== 'FAILED')) {
      unaccounted.push(`${label}: scan ${scanId} is ${scan?.status ?? 'missing'}`);
      continue;
    }
    if (o.upload.expectFailure) {
      if (scan.status !== 'FAILED' || !o.upload.expectFailure.includes(scan.error?.code ?? ''))
        wrongOutcomes.push(`${label}: ${scan.status} ${scan.error?.code ?? ''}, expected ${o.upload.expectFailure}`);
      else if (o.upload.expectReason && !o.upload.expectReason.test(scan.error?.message ?? ''))
        wrongOutcomes.push(`${label}: reason "${scan.error?.message ?? ''}" does not match ${o.upload.expectReason}`);
    } else if (scan.status !== 'COMPLETED') {
      wrongOutcomes.push(`${label}: FAILED ${scan.error?.code ?? ''}, expected COMPLETED`);
    }
  }
  // Nothing else in the table either: every scan record is terminal.
  for (const [id, s] of scans)
    if (s.status !== 'COMPLETED' && s.status !== 'FAILED') unaccounted.push(`scan ${id} left ${s.status}`);

  const bytesKey = (s: Item) => `${s.siteId}/${s.studyId}/${s.sha256}`;
  const perBytes = new Map<string, number>();
  for (const s of scans.values()) perBytes.set(bytesKey(s), (perBytes.get(bytesKey(s)) ?? 0) + 1);
  const duplicates = [...perBytes.values()].reduce((n, c) => n + (c - 1), 0);

  const badResultSets: string[] = [];
  const failedByReason: Record<string, number> = {};
  let completed = 0;
  let failed = 0;
  let reclaims = 0;
  for (const [id, s] of scans) {
    reclaims += Math.max(0, (s.attempts ?? 1) - 1);
    if (s.status === 'COMPLETED') {
      completed++;
      const got = resultsOf(id).sort();
      if (got.join(',') !== [...experts].sort().join(',')) badResultSets.push(`${id}: [${got.join(', ')}]`);
    } else if (s.status === 'FAILED') {
      failed++;
      const code = s.error?.code ?? 'UNKNOWN';
      failedByReason[code] = (failedByReason[code] ?? 0) + 1;
    }
  }

  const retriesByState: Record<string, number> = {};
  for (const o of outcomes)
    for (const [state, n] of Object.entries(o.result?.retries ?? {}))
      retriesByState[state] = (retriesByState[state] ?? 0) + n;
  const retries = Object.values(retriesByState).reduce((a, b) => a + b, 0);

  // Each fault case ended as it must: the permanent one FAILED with its reason (checked
  // with the outcomes above), the aborted upload aborted and its bytes then analysed.
  const faultCaseErrors: string[] = [];
  for (const c of faults?.cases ?? []) {
    if (c.kind !== 'abort-in-extract') continue;
    const first = outcomes[c.index]?.result;
    const again = outcomes[c.reuploadIndex]?.result;
    if (first?.execution?.status !== 'ABORTED' || first.error?.code !== 'EXECUTION_ABORTED')
      faultCaseErrors.push(
        `upload ${c.index} (aborted in Extract): ${first?.execution?.status ?? 'no execution'} ${first?.error?.code ?? ''}`,
      );
    const scan = first?.scanId ? scans.get(first.scanId) : undefined;
    if (scan?.status !== 'COMPLETED' || again?.scanId !== first?.scanId || again?.status !== 'completed')
      faultCaseErrors.push(
        `upload ${c.reuploadIndex} (re-upload of aborted ${c.index}): ${again?.status ?? 'none'}, scan ${scan?.status ?? 'missing'}`,
      );
  }

  const orphanTempFiles = readdirSync(tmp).filter((e) => !tempBefore.has(e) && !opts.ignoreTemp?.test(e));
  // Child processes get a moment to be reaped after their last output. tsx's esbuild
  // service (when run by `npm run soak`) is the runner's, not the workflow's.
  const newChildren = () => childProcesses().filter((c) => !childrenBefore.has(c) && !/ esbuild$/.test(c));
  let orphanChildren = newChildren();
  for (let i = 0; i < 20 && orphanChildren.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    orphanChildren = newChildren();
  }

  return {
    uploads: plan.length,
    distinctScans: scanIds.size,
    completed,
    failed,
    failedByReason,
    unaccounted,
    duplicates,
    badResultSets,
    retries,
    retriesByState,
    reclaims,
    faultsInjected,
    faultCaseErrors,
    deduplicated,
    wrongOutcomes,
    thrown: outcomes.filter((o) => o.thrown).map((o) => `upload ${o.upload.index}: ${o.thrown}`),
    orphanTempFiles,
    orphanChildren,
    wallSeconds,
    peakRssMiB: Math.round(peakRss / 1024 / 1024),
    outcomes,
  };
}

export function formatReport(r: SoakReport): string {
  const reasons = Object.entries(r.failedByReason)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const lines = [
    `uploads        ${r.uploads} (${r.distinctScans} distinct scans, ${r.deduplicated} answered from an existing scan)`,
    `completed      ${r.completed}`,
    `failed         ${r.failed}${reasons ? ` (${reasons})` : ''}`,
    `duplicates     ${r.duplicates}`,
    `retries        ${r.retries}${
      Object.keys(r.retriesByState).length
        ? ` (${Object.entries(r.retriesByState)
            .sort()
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')})`
        : ''
    }`,
    `re-claims      ${r.reclaims}`,
    `faults         ${Object.values(r.faultsInjected).reduce((a, b) => a + b, 0)}${
      Object.keys(r.faultsInjected).length
        ? ` (${Object.entries(r.faultsInjected)
            .sort()
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')})`
        : ''
    }`,
    `unaccounted    ${r.unaccounted.length}`,
    `wrong outcome  ${r.wrongOutcomes.length}`,
    `orphans        ${r.orphanTempFiles.length} temp entries, ${r.orphanChildren.length} child processes`,
    `wall time      ${r.wallSeconds.toFixed(1)} s`,
    `peak RSS       ${r.peakRssMiB} MiB`,
  ];
  for (const [what, list] of [
    ['unaccounted', r.unaccounted],
    ['wrong outcome', r.wrongOutcomes],
    ['fault case', r.faultCaseErrors],
    ['thrown', r.thrown],
    ['bad result set', r.badResultSets],
    ['orphan temp entry', r.orphanTempFiles],
    ['orphan child', r.orphanChildren],
  ] as const)
    for (const x of list.slice(0, 20)) lines.push(`  ${what}: ${x}`);
  return lines.join('\n');
}

/** Whether the report shows every guarantee held. */
export function soakHeld(r: SoakReport): boolean {
  return (
    r.unaccounted.length === 0 &&
    r.duplicates === 0 &&
    r.badResultSets.length === 0 &&
    r.wrongOutcomes.length === 0 &&
    r.faultCaseErrors.length === 0 &&
    r.thrown.length === 0 &&
    r.orphanTempFiles.length === 0 &&
    r.orphanChildren.length === 0
  );
}
