/**
 * `sonomark cohort run` in local mode: every item of a cohort (a directory, or a CSV/JSONL
 * manifest of files) through the local workflow, with the cohort workflow's semantics per item:
 * a scan that already has features for the current extractor is only scored (rescoreScan: no
 * decode, no extractor job), and is left alone when every current expert version has scored it
 * (so a second run resumes); anything else runs the whole workflow (the synthesized definition,
 * as `sonomark analyze` does). Items run with bounded concurrency. The scored-only items are done
 * before the workflow starts, and a cohort with nothing new never starts it: re-scoring after a
 * new expert version runs no extractor job, by construction.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import {
  COHORT_CSV,
  COHORT_REPORT_HTML,
  COHORT_SUMMARY,
  type CohortItemOutcome,
  type CohortSummary,
} from '../core/cohort';
import { cohortRunPrefix } from '../core/cohort-run';
import { cohortReportEntries, cohortReportTitle } from '../core/report';
import { SidecarMetadata, type Manifest } from '../core/schemas';
import { expertsFor, extractorFor, extractorsLabel, manifestModalities, type LoadedManifest } from '../core/manifest';
import { DEFAULT_MODALITY, MODALITIES, type Modality } from '../core/modality';
import { getScan, listExpertResultVersions, type ScanItem } from '../core/results-store';
import { hashStream, scanIdFromContent } from '../core/scan-id';
import { lockDataDir } from './lock';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE } from './names';
import { renderStoredReport } from './report';
import type { ModalityHint } from './sidecar';
import { forEachLimited, rescoreScan, type RescoreStore } from './rescore';
import { ensureBucket, startLocalServices, type LocalServices } from './services';
import { LocalWorkflow, type LocalWorkflowOptions } from './workflow';

export interface CohortInput {
  /** The file to read. */
  readonly file: string;
  /** Its object name below the study: the path relative to the cohort's folder (stable across runs). */
  readonly name: string;
  /** Its own sidecar's text (`FILE.meta.json` beside it), uploaded with it as `sonomark analyze` does. */
  readonly sidecar?: string;
  /** What the manifest's row says it is (its `modality` column): an explicit hint for this item alone. */
  readonly modality?: Modality;
}

export class CohortManifestError extends Error {
  override readonly name = 'CohortManifestError';
}

/**
 * The files a CSV or JSONL cohort manifest lists. CSV: a header row with a `file` (or `path`)
 * column; JSONL: one object per line with `file` (or `path`). Relative paths are read from the
 * manifest's folder. Throws CohortManifestError naming the line that is wrong.
 */
export function readCohortManifest(manifestFile: string): CohortInput[] {
  const base = path.dirname(path.resolve(manifestFile));
  const text = readFileSync(manifestFile, 'utf8');
  const lines = text.split(/\r?\n/).map((l, i) => ({ l: l.trim(), n: i + 1 }));
  const nonEmpty = lines.filter((x) => x.l.length > 0);
  const files: { file: string; modality: Modality | undefined }[] = [];
  if (/\.jsonl?$/i.test(manifestFile)) {
    for (const { l, n } of nonEmpty) {
      let row: unknown;
      try {
        row = JSON.parse(l);
      } catch {
        throw new CohortManifestError(`${manifestFile} line ${n}: not JSON (expected {"file": "PATH"} per line).`);
      }
      const f = (row as { file?: unknown; path?: unknown } | null)?.file ?? (row as { path?: unknown } | null)?.path;
      if (typeof f !== 'string' || f.length === 0) {
        throw new CohortManifestError(`${manifestFile} line ${n}: no "file" (or "path") string.`);
      }
      files.push({ file: f, modality: rowModality((row as { modality?: unknown }).modality, manifestFile, n) });
    }
  } else {
    const header = (nonEmpty[0]?.l ?? '').split(',').map((h) => h.trim().replace(/^"|"$/g, '').toLowerCase());
    const col = header.findIndex((h) => h === 'file' || h === 'path');
    if (col < 0) {
      throw new CohortManifestError(
        `${manifestFile}: the first line must be a CSV header with a "file" (or "path") column; it is "${nonEmpty[0]?.l ?? ''}".`,
      );
    }
    const modalityCol = header.indexOf('modality');
    for (const { l, n } of nonEmpty.slice(1)) {
      const cells = l.split(',').map((c) => c.trim().replace(/^"|"$/g, ''));
      const cell = cells[col] ?? '';
      if (!cell) throw new CohortManifestError(`${manifestFile} line ${n}: empty "${header[col]}" cell.`);
      const m = modalityCol >= 0 ? cells[modalityCol] : undefined;
      files.push({ file: cell, modality: rowModality(m === '' ? undefined : m, manifestFile, n) });
    }
  }
  if (files.length === 0) throw new CohortManifestError(`${manifestFile} lists no files.`);
  return files.map((f) => {
    const file = path.resolve(base, f.file);
    const rel = path.relative(base, file);
    return {
      file,
      name: rel.startsWith('..') ? path.basename(file) : rel.split(path.sep).join('/'),
      ...(f.modality ? { modality: f.modality } : {}),
    };
  });
}

/** A row's optional `modality`: one of MODALITIES, or absent (the run's --modality applies). */
function rowModality(value: unknown, manifestFile: string, line: number): Modality | undefined {
  if (value === undefined || value === null) return undefined;
  const m = SidecarMetadata.shape.modality.safeParse(value).data;
  if (m === undefined) {
    // The value is not echoed: a manifest cell is free text.
    throw new CohortManifestError(
      `${manifestFile} line ${line}: "modality" must be ${MODALITIES.join(' or ')} (or empty: the run's --modality applies).`,
    );
  }
  return m;
}

/** Items of a directory cohort: each file named by its path below the directory. */
export function directoryInputs(dir: string, files: readonly string[]): CohortInput[] {
  return files.map((file) => {
    const rel = path.relative(dir, file);
    return { file, name: rel.startsWith('..') ? path.basename(file) : rel.split(path.sep).join('/') };
  });
}

/** Where a cohort runs: the data dir and its manifest, the site and study the clips are uploaded under. */
export interface CohortRunOptions {
  readonly dataDir: string;
  readonly loaded: LoadedManifest;
  readonly siteId?: string;
  readonly studyId?: string;
  readonly concurrency?: number;
  /**
   * The modality hint (`sonomark cohort run --modality`), as `sonomark analyze` gives it: into each
   * new item's sidecar; an explicit one also refuses a stored scan of the other modality.
   * @default the local workflow's (ultrasound, not explicit)
   */
  readonly modality?: ModalityHint;
  readonly onItem?: (outcome: CohortItemOutcome) => void;
  /** Starts the local workflow for the items that need analysing. @default LocalWorkflow.start */
  readonly startWorkflow?: (opts: LocalWorkflowOptions) => Promise<LocalWorkflow>;
}

const storeOf = (services: LocalServices): RescoreStore => ({
  s3: services.s3,
  doc: services.doc,
  table: LOCAL_TABLE,
  artifactsBucket: LOCAL_ARTIFACTS_BUCKET,
});

const failedOutcome = (item: string, scanId: string | null, code: string, message: string): CohortItemOutcome => ({
  item,
  scanId,
  action: 'failed',
  error: { code, message },
  results: [],
  current: {},
});

function thrown(item: string, scanId: string | null, err: unknown): CohortItemOutcome {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT'
    ? failedOutcome(item, scanId, 'UNREADABLE_INPUT', 'No such file.')
    : failedOutcome(item, scanId, 'FAILED', (err as Error).message);
}

/** The outcome with the scan's stored results; `extractor` is the `name@version` whose features they read. */
async function withResults(
  store: RescoreStore,
  extractor: string,
  item: string,
  siteId: string,
  scanId: string,
  action: CohortItemOutcome['action'],
): Promise<CohortItemOutcome> {
  const { results, current } = await listExpertResultVersions(store.doc, store.table, siteId, scanId);
  return { item, scanId, action, results, current, extractor };
}

/** The hint an item goes up with: its manifest row's modality (explicit), else the run's. */
export function itemHint(input: CohortInput, hint: ModalityHint | undefined): ModalityHint | undefined {
  return input.modality ? { modality: input.modality, explicit: true } : hint;
}

/**
 * What the item says it is, explicitly (`--modality` given, else its sidecar's "modality"): a stored
 * scan of another modality is not this item's to re-score. undefined: nothing explicit (the CLI's
 * default hint, like a bare upload, defers to what Validate stored).
 */
function explicitModality(input: CohortInput, hint: ModalityHint | undefined): Modality | undefined {
  if (input.modality) return input.modality;
  if (hint?.explicit) return hint.modality;
  if (input.sidecar === undefined) return undefined;
  try {
    // Its "modality" field alone: whatever else the sidecar holds, that field is what it says the file is.
    const parsed: unknown = JSON.parse(input.sidecar);
    const field =
      typeof parsed === 'object' && parsed !== null ? (parsed as { modality?: unknown }).modality : undefined;
    return SidecarMetadata.shape.modality.safeParse(field).data;
  } catch {
    return undefined; // not JSON: Validate refuses it (INVALID_SIDECAR) when the item is analysed
  }
}

/**
 * A completed scan scored by its own modality's experts: the modality Validate stored on it
 * (absent: stored before modalities, so ultrasound), whose current extractor must be the one that
 * wrote its features (a completed scan is not extracted again in local mode).
 */
async function scoreStoredScan(
  store: RescoreStore,
  input: CohortInput,
  scan: ScanItem,
  opts: CohortRunOptions,
): Promise<CohortItemOutcome> {
  const { manifest } = opts.loaded;
  const modality = scan.modality ?? DEFAULT_MODALITY;
  const said = explicitModality(input, opts.modality);
  if (said !== undefined && said !== modality) {
    return failedOutcome(
      input.file,
      scan.scanId,
      'MODALITY_CONFLICT',
      `The stored scan of these bytes is ${modality}, but ${input.modality ? "the manifest's row" : opts.modality?.explicit ? '--modality' : 'its sidecar'} says ${said}; ` +
        'a completed scan is not analysed again in local mode (use another --data-dir to analyse it as ' +
        `${said}).`,
    );
  }
  if (!manifestModalities(manifest).includes(modality)) {
    return failedOutcome(
      input.file,
      scan.scanId,
      'NO_EXTRACTOR',
      `The scan is ${modality}, and the manifest has no ${modality} extractor (it has ${extractorsLabel(manifest)}).`,
    );
  }
  const x = extractorFor(manifest, modality);
  if (scan.extractor?.name !== x.name || scan.extractor.version !== x.version) {
    return failedOutcome(
      input.file,
      scan.scanId,
      'OTHER_EXTRACTOR',
      `Stored with ${scan.extractor?.name}@${scan.extractor?.version} features; the manifest's ${modality} extractor is ` +
        `${x.name}@${x.version}, and a completed scan is not extracted again in local mode.`,
    );
  }
  // Only its modality's experts: the others are not this scan's to score.
  const experts = expertsFor(manifest, modality);
  const r = await rescoreScan(store, opts.loaded, experts, scan);
  return r.status === 'failed' || r.status === 'skipped'
    ? failedOutcome(input.file, scan.scanId, 'SCORE_FAILED', r.reason ?? r.status)
    : withResults(
        store,
        `${x.name}@${x.version}`,
        input.file,
        opts.siteId ?? 'local',
        scan.scanId,
        r.status === 'unchanged' ? 'done' : 'scored',
      );
}

/**
 * Phase 1, on the data dir's stores alone (no workflow, no extractor): each item's scan id from
 * its bytes; a completed scan with features for the current extractor is scored by the experts
 * whose current version has not scored it (or is already done). Returns the outcome of those,
 * and undefined for each item that needs the whole workflow.
 */
async function scoreStored(
  store: RescoreStore | undefined,
  inputs: readonly CohortInput[],
  opts: CohortRunOptions,
): Promise<(CohortItemOutcome | undefined)[]> {
  const out: (CohortItemOutcome | undefined)[] = new Array(inputs.length).fill(undefined);
  if (!store) return out;
  await forEachLimited(inputs, opts.concurrency ?? 2, async (input, i) => {
    let scanId: string | null = null;
    try {
      const { sha256 } = await hashStream(createReadStream(input.file));
      scanId = scanIdFromContent(opts.siteId ?? 'local', opts.studyId ?? 'local', sha256);
      const scan = await getScan(store.doc, store.table, opts.siteId ?? 'local', scanId);
      if (scan?.status !== 'COMPLETED') return; // new, or FAILED before (the workflow claims it again)
      out[i] = await scoreStoredScan(store, input, scan, opts);
    } catch (err) {
      out[i] = thrown(input.file, scanId, err);
    }
    if (out[i]) opts.onItem?.(out[i] as CohortItemOutcome);
  });
  return out;
}

/**
 * Every item of the cohort, outcomes in input order; `onItem` hears each as it lands. Items
 * with stored features are scored first without starting the workflow; the workflow (and so
 * the extractor) starts only when some item needs analysing.
 */
export async function runCohort(inputs: readonly CohortInput[], opts: CohortRunOptions): Promise<CohortItemOutcome[]> {
  let phase1: (CohortItemOutcome | undefined)[];
  const services = await startLocalServices(opts.dataDir);
  try {
    const hasTable = await services.dynamo.send(new DescribeTableCommand({ TableName: LOCAL_TABLE })).then(
      () => true,
      () => false,
    );
    phase1 = await scoreStored(hasTable ? storeOf(services) : undefined, inputs, opts);
  } finally {
    await services.close();
  }
  const outcomes = [...phase1];
  const pending = inputs.flatMap((input, i) => (phase1[i] ? [] : [{ input, i }]));
  if (pending.length === 0) return outcomes as CohortItemOutcome[];

  const start = opts.startWorkflow ?? ((o: LocalWorkflowOptions) => LocalWorkflow.start(o));
  const workflow = await start({
    dataDir: opts.dataDir,
    modelsDir: opts.loaded.dir,
    siteId: opts.siteId,
    studyId: opts.studyId,
    // The modalities the pending items name (their rows, else the run's hint): their models load with the services.
    preloadModalities: [
      ...new Set(pending.map(({ input }) => itemHint(input, opts.modality)?.modality ?? DEFAULT_MODALITY)),
    ],
  });
  try {
    const store = storeOf(workflow.services);
    await forEachLimited(pending, opts.concurrency ?? 2, async ({ input, i }) => {
      let outcome: CohortItemOutcome;
      try {
        const hint = itemHint(input, opts.modality);
        const r = await workflow.analyze(input.file, input.name, {
          ...(hint !== undefined ? { modality: hint } : {}),
          ...(input.sidecar !== undefined ? { sidecar: input.sidecar } : {}),
        });
        outcome =
          r.status === 'failed' || !r.scanId
            ? failedOutcome(input.file, r.scanId, r.error?.code ?? 'FAILED', r.error?.message ?? 'The workflow failed.')
            : await withResults(store, r.models?.extractor ?? '', input.file, workflow.siteId, r.scanId, 'analysed');
      } catch (err) {
        outcome = thrown(input.file, null, err);
      }
      outcomes[i] = outcome;
      opts.onItem?.(outcome);
    });
  } finally {
    await workflow.close();
  }
  return outcomes as CohortItemOutcome[];
}

/** A local cohort run's id: its start time and a random suffix (CohortRunId's grammar, as an execution name). */
export function localCohortRunId(now: Date = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}-${randomBytes(3).toString('hex')}`;
}

export interface PublishCohortOptions {
  readonly dataDir: string;
  readonly summary: CohortSummary & { readonly site: string; readonly runId: string };
  readonly csv: string;
  readonly manifest: Manifest;
  /** Decode the stored clips for peak-frame thumbnails. @default true */
  readonly thumbnails?: boolean;
}

/**
 * The cohort run's page (the one `sonomark report COHORT_DIR` renders: core/report, with local
 * mode's thumbnails), and its three files put where the cloud's cohort workflow puts them,
 * `cohorts/{site}/{runId}/` of the (local) artifacts bucket, so `sonomark serve` answers
 * `GET /cohorts/{runId}/report` with the same route and key as the cloud API. Returns the page.
 */
export async function publishCohortRun(opts: PublishCohortOptions): Promise<string> {
  const lock = lockDataDir(opts.dataDir);
  try {
    const services = await startLocalServices(opts.dataDir);
    try {
      const store = storeOf(services);
      const html = await renderCohortPage(store, opts.summary, opts.manifest, opts.thumbnails);
      await ensureBucket(services.s3, LOCAL_ARTIFACTS_BUCKET);
      const prefix = cohortRunPrefix(opts.summary.site, opts.summary.runId);
      const put = (name: string, body: string, contentType: string) =>
        services.s3.send(
          new PutObjectCommand({
            Bucket: LOCAL_ARTIFACTS_BUCKET,
            Key: `${prefix}${name}`,
            Body: body,
            ContentType: contentType,
          }),
        );
      await put(COHORT_CSV, opts.csv, 'text/csv');
      await put(COHORT_SUMMARY, JSON.stringify(opts.summary, null, 2) + '\n', 'application/json');
      await put(COHORT_REPORT_HTML, html, 'text/html; charset=utf-8');
      return html;
    } finally {
      await services.close();
    }
  } finally {
    lock.release();
  }
}

/** The cohort page from a run's summary and the data dir's stores: the one definition both commands use. */
export async function renderCohortPage(
  store: RescoreStore,
  summary: Pick<CohortSummary, 'scanIds' | 'failures' | 'site' | 'source' | 'dataDir'>,
  manifest: Manifest,
  thumbnails = true,
): Promise<string> {
  const entries = await cohortReportEntries(store, summary, summary.site ?? 'local');
  if (entries.length === 0)
    throw new CohortManifestError('The cohort run stored no scan and no failure: no page to render.');
  const { html } = await renderStoredReport(store, entries, {
    title: cohortReportTitle(entries.length),
    source: `The scans of the cohort ${summary.source}, as "sonomark cohort run" left them in ${summary.dataDir ?? 'its data directory'}.`,
    manifest,
    thumbnails,
  });
  return html;
}
