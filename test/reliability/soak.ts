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
 * Faults: `SoakOptions.faults` are installed on the started workflow before the
 * first upload and removed after the last (SDK middleware on its clients, handler
 * wrappers); the fault-injection work plugs in there, and the audit stays the same.
 */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths';
import { uploadKey } from '../../core/keys';
import type { S3ObjectCreatedEvent } from '../../core/schemas';
import {
  LOCAL_TABLE,
  LOCAL_UPLOADS_BUCKET,
  LocalWorkflow,
  type AnalyzeResult,
  type LocalWorkflowOptions,
} from '../../local/workflow';
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
}

export interface SoakFault {
  readonly name: string;
  /** Called once the workflow has started; returns the function that removes the fault. */
  install(workflow: LocalWorkflow): () => void;
}

export interface SoakOptions {
  readonly uploads: number;
  /** Uploads in flight at once. @default 4 */
  readonly concurrency?: number;
  /** Where the corpus and the local data go (created; the caller removes it). */
  readonly workDir: string;
  readonly faults?: readonly SoakFault[];
  readonly workflow?: Omit<LocalWorkflowOptions, 'dataDir'>;
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
  /** Re-claims of a FAILED scan (scan attempts beyond the first). */
  readonly retries: number;
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
  error?: { code?: string };
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
  const plan = planUploads(opts.uploads, opts.workDir);
  log(`soak: ${plan.length} uploads, concurrency ${concurrency}`);

  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 100);
  const t0 = performance.now();
  const workflow = await LocalWorkflow.start({
    studyId: SOAK_STUDY,
    ...opts.workflow,
    dataDir: path.join(opts.workDir, 'data'),
  });
  const removers = (opts.faults ?? []).map((f) => f.install(workflow));
  let outcomes: UploadOutcome[];
  const items: Item[] = [];
  const experts = workflow.loaded.manifest.experts.map((e) => e.name);
  try {
    // A redelivered event runs as soon as the object it names exists, so both runs overlap.
    outcomes = await pool(plan, concurrency, async (upload) => {
      try {
        const result =
          upload.repeat === 'redelivered'
            ? await workflow.analyze(upload.file, upload.objectName, {
                redeliver: await deliveredEvent(workflow, opts, upload.objectName),
              })
            : await workflow.analyze(upload.file, upload.objectName);
        log(
          `  ${upload.index} ${upload.kind}${upload.repeat ? ` (${upload.repeat})` : ''}: ${result.status}` +
            (result.error ? ` ${result.error.code}: ${result.error.message.slice(0, 300)}` : ''),
        );
        return { upload, result };
      } catch (err) {
        return { upload, thrown: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
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
    for (const remove of removers) remove();
    await workflow.close();
    clearInterval(sampler);
  }

  const wallSeconds = (performance.now() - t0) / 1000;
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);

  const scans = new Map(items.filter((i) => i.sk === 'SCAN').map((i) => [i.pk.replace(/^SCAN#/, ''), i]));
  const resultsOf = (scanId: string) =>
    items.filter((i) => i.pk === `SCAN#${scanId}` && i.sk.startsWith('EXPERT#')).map((i) => i.sk.slice(7));

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
  let retries = 0;
  for (const [id, s] of scans) {
    retries += Math.max(0, (s.attempts ?? 1) - 1);
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
    `retries        ${r.retries}`,
    `unaccounted    ${r.unaccounted.length}`,
    `wrong outcome  ${r.wrongOutcomes.length}`,
    `orphans        ${r.orphanTempFiles.length} temp entries, ${r.orphanChildren.length} child processes`,
    `wall time      ${r.wallSeconds.toFixed(1)} s`,
    `peak RSS       ${r.peakRssMiB} MiB`,
  ];
  for (const [what, list] of [
    ['unaccounted', r.unaccounted],
    ['wrong outcome', r.wrongOutcomes],
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
    r.thrown.length === 0 &&
    r.orphanTempFiles.length === 0 &&
    r.orphanChildren.length === 0
  );
}
