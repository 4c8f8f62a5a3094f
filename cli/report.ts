/** `sonomark report SCAN_ID|FILE|DIR...`: the research report (one HTML page) from what analyze stored. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { ReportEntry } from '../local/report';
import { COHORT_REPORT_HTML, type CohortSummary } from '../core/cohort';
import type { ScanItem } from '../core/results-store';
import { UsageError, type CliContext } from './context';
import { existingDir, expandInputs } from './inputs';

interface ReportOptions {
  dataDir?: string;
  out?: string;
  site?: string;
  study?: string;
  title?: string;
  modelsDir?: string;
  thumbnails: boolean;
}

const SCAN_ID = /^[0-9a-f]{32}$/;

export function registerReport(program: Command, ctx: CliContext): void {
  program
    .command('report')
    .summary('write a self-contained HTML report of analysed scans')
    .description(
      'Write one self-contained HTML page (no network needed to open it) from the scans that ' +
        '"sonomark analyze --data-dir D" stored: per clip, the per-frame biomarker timeline, the frames at each ' +
        "biomarker's peak, every expert's output with its model version and card caveat; for more than one scan, a " +
        'sortable table, the distribution of each output, the failures and (when a scan has two versions of an ' +
        'expert) their agreement. Research software, not a medical device.',
    )
    .argument(
      '[SCAN_ID|FILE|DIR...]',
      'scan ids, clips analysed into --data-dir, directories of such clips, or a data directory itself ' +
        '(COHORT_DIR: all its scans); none: every scan in --data-dir',
    )
    .option('--data-dir <DIR>', 'the directory "sonomark analyze --data-dir" kept its S3/DynamoDB data in')
    .option(
      '--out <DIR>',
      'write the page into this directory (created if missing); required, except for a cohort run folder (default: that folder)',
    )
    .option('--site <ID>', 'site id the clips were analysed under, to find a FILE (default: local)')
    .option('--study <ID>', 'study id the clips were analysed under, to find a FILE (default: local)')
    .option('--title <TEXT>', 'page title')
    .option('--models-dir <DIR>', "manifest with the model cards (default: the package's models/)")
    .option('--no-thumbnails', 'skip decoding the stored clips for peak-frame thumbnails (faster)')
    .addHelpText(
      'after',
      `
A COHORT_DIR is a data directory that "sonomark analyze --data-dir" filled (the
report covers every scan in it), or the folder "sonomark cohort run" wrote its
summary.json into (the report covers that cohort's scans, read from its data dir,
and is written into that folder unless --out says otherwise).

Examples:
  $ sonomark analyze --data-dir .sonomark/local ../shared/data/pocus/videos/convex
  $ sonomark report --data-dir .sonomark/local --out report clip.mp4
  $ sonomark report --out report .sonomark/local          # every scan in the data dir
  $ sonomark report .sonomark/local/cohort-report         # the scans of a cohort run

Prints the page's path on stdout. Exit status: 0 when the page was written, 1 on an
error, 2 on a usage error (unknown scan id, nothing analysed yet).`,
    )
    .action(async (targets: string[], opts: ReportOptions) => ctx.exit(await report(targets, opts, ctx)));
}

type Target = { kind: 'scanId'; scanId: string } | { kind: 'file'; file: string } | { kind: 'all' };

const isDataDir = (dir: string) =>
  existsSync(path.join(dir, 'dynamodb')) && existsSync(path.join(dir, 's3')) && statSync(dir).isDirectory();

/** The summary.json of a `sonomark cohort run` output folder, when `dir` is one. */
function cohortRunIn(dir: string): CohortRunFolder | undefined {
  const file = path.join(dir, 'summary.json');
  if (!existsSync(file) || !statSync(dir).isDirectory()) return undefined;
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as Partial<CohortSummary> & { kind?: string };
    if (s.kind !== 'sonomark-cohort-summary' || !s.dataDir || !Array.isArray(s.scanIds)) return undefined;
    return {
      dataDir: s.dataDir,
      scanIds: s.scanIds,
      failures: Array.isArray(s.failures) ? s.failures : [],
      source: s.source ?? dir,
      site: s.site,
    };
  } catch {
    return undefined;
  }
}

type CohortRunFolder = Pick<CohortSummary, 'scanIds' | 'failures' | 'source' | 'site'> & { dataDir: string };

async function report(argsIn: string[], opts: ReportOptions, ctx: CliContext): Promise<number> {
  const cohortRun = argsIn.length === 1 ? cohortRunIn(argsIn[0] as string) : undefined;
  if (cohortRun) return reportCohortRun(argsIn[0] as string, cohortRun, opts, ctx);
  return reportStored(argsIn, opts, ctx);
}

/**
 * A `sonomark cohort run` folder: the page that run wrote (local/cohort.ts renderCohortPage, the
 * one the cloud's report.html is), rendered again into the folder's report.html (or --out).
 */
async function reportCohortRun(
  dir: string,
  run: CohortRunFolder,
  opts: ReportOptions,
  { out, err }: CliContext,
): Promise<number> {
  if (run.scanIds.length === 0 && run.failures.length === 0)
    throw new UsageError(`The cohort run in ${dir} stored no scan.`);
  const dataDir = opts.dataDir ?? run.dataDir;
  existingDir(dataDir, '--data-dir');
  existingDir(opts.modelsDir, '--models-dir');
  const [{ startLocalServices }, names, { renderCohortPage }, { loadManifest }, { lockDataDir }, { resolveModelsDir }] =
    await Promise.all([
      import('../local/services'),
      import('../local/names'),
      import('../local/cohort'),
      import('../core/manifest'),
      import('../local/lock'),
      import('../local/models'),
    ]);
  const manifest = loadManifest(resolveModelsDir({ modelsDir: opts.modelsDir, dataDir })).manifest;
  const lock = lockDataDir(dataDir);
  try {
    const services = await startLocalServices(dataDir);
    try {
      const t0 = performance.now();
      const html = await renderCohortPage(
        { s3: services.s3, doc: services.doc, table: names.LOCAL_TABLE, artifactsBucket: names.LOCAL_ARTIFACTS_BUCKET },
        { ...run, dataDir },
        manifest,
        opts.thumbnails,
      );
      const { writeReportFile } = await import('../local/report');
      const file = writeReportFile(opts.out ?? dir, COHORT_REPORT_HTML, html);
      err.write(
        `${run.scanIds.length} scans, ${(Buffer.byteLength(html) / 1024).toFixed(0)} KiB, ${Math.round(performance.now() - t0)} ms ` +
          '(research software, not a medical device)\n',
      );
      out.write(`${file}\n`);
      return 0;
    } finally {
      await services.close();
    }
  } finally {
    lock.release();
  }
}

async function reportStored(args: string[], opts: ReportOptions, { out, err }: CliContext): Promise<number> {
  if (!opts.out) throw new UsageError("required option '--out <DIR>' not specified");
  const outDir = opts.out;
  // Arguments first, before any service starts: what to report, and from where.
  const dataDirs = args.filter((a) => existsSync(a) && statSync(a).isDirectory() && isDataDir(a));
  if (dataDirs.length > 1 || (dataDirs.length === 1 && args.length > 1)) {
    throw new UsageError('Give one data directory (COHORT_DIR) on its own, or scan ids and clips with --data-dir.');
  }
  const dataDir = dataDirs[0] ?? opts.dataDir;
  if (!dataDir) {
    throw new UsageError(
      'sonomark report reads what "sonomark analyze --data-dir DIR" stored: give that --data-dir DIR ' +
        '(analyze without --data-dir keeps nothing).',
    );
  }
  existingDir(dataDir, '--data-dir');
  existingDir(opts.modelsDir, '--models-dir');
  const nothingYet = `Nothing has been analysed into ${dataDir} yet: run "sonomark analyze --data-dir ${dataDir} FILE..." first.`;
  if (!isDataDir(dataDir)) throw new UsageError(nothingYet);
  const targets: Target[] =
    dataDirs.length === 1 || args.length === 0
      ? [{ kind: 'all' }]
      : args.flatMap<Target>((a) =>
          SCAN_ID.test(a) && !existsSync(a)
            ? [{ kind: 'scanId', scanId: a }]
            : expandInputs([a]).map((file) => ({ kind: 'file', file })),
        );

  const [{ startLocalServices }, names, local, { loadManifest }, { scanIdFromContent, sha256Hex }, { lockDataDir }] =
    await Promise.all([
      import('../local/services'),
      import('../local/names'),
      import('../local/report'),
      import('../core/manifest'),
      import('../core/scan-id'),
      import('../local/lock'),
    ]);
  const { resolveModelsDir } = await import('../local/models');
  // The data dir's own models when it has them: their versions are the ones the page shows as current.
  const manifest = loadManifest(resolveModelsDir({ modelsDir: opts.modelsDir, dataDir })).manifest;
  // The same data dir lock as analyze (local/lock.ts): the stores' files serve one process at a time.
  const lock = lockDataDir(dataDir);
  let services;
  try {
    services = await startLocalServices(dataDir);
  } catch (e) {
    lock.release();
    throw e;
  }
  try {
    const store = {
      s3: services.s3,
      doc: services.doc,
      table: names.LOCAL_TABLE,
      artifactsBucket: names.LOCAL_ARTIFACTS_BUCKET,
    };
    let stored: ScanItem[];
    try {
      stored = targets.some((t) => t.kind === 'all') ? await local.listScans(store.doc, store.table) : [];
    } catch (e) {
      if ((e as { name?: string }).name === 'ResourceNotFoundException') throw new UsageError(nothingYet);
      throw e;
    }
    const entries: ReportEntry[] = [];
    const unknown: string[] = [];
    for (const t of targets) {
      if (t.kind === 'all') {
        if (stored.length === 0) throw new UsageError(nothingYet);
        const label = (s: ScanItem) => s.key ?? s.scanId;
        entries.push(...stored.sort((a, b) => label(a).localeCompare(label(b))).map((scan) => ({ scan })));
        continue;
      }
      const site = opts.site ?? 'local';
      const scanId =
        t.kind === 'scanId'
          ? t.scanId
          : scanIdFromContent(site, opts.study ?? 'local', sha256Hex(readFileSync(t.file)));
      const scan = await getOrNothing(
        () =>
          t.kind === 'scanId'
            ? local.getScanById(store.doc, store.table, scanId)
            : local.getScan(store.doc, store.table, site, scanId),
        nothingYet,
      );
      if (scan) entries.push({ scan });
      else if (t.kind === 'scanId') unknown.push(`unknown scan id ${scanId}`);
      else
        entries.push({
          missing: {
            label: t.file,
            scanId,
            error: {
              code: 'NOT_ANALYZED',
              message: `Not analysed into ${dataDir} (under site "${opts.site ?? 'local'}", study "${opts.study ?? 'local'}").`,
            },
          },
        });
    }
    if (unknown.length > 0) {
      throw new UsageError(
        `${unknown.join(', ')} in ${dataDir} ("sonomark analyze --json --data-dir ${dataDir}" prints each clip's scanId).`,
      );
    }
    if (entries.every((e) => 'missing' in e)) {
      const what =
        entries.length === 1
          ? `${(entries[0] as { missing: { label: string } }).missing.label} has`
          : 'None of these clips has';
      throw new UsageError(
        `${what} not been analysed into ${dataDir} yet: run "sonomark analyze --data-dir ${dataDir} ${args.join(' ')}" first` +
          (opts.site || opts.study ? '.' : ' (or give the --site/--study it was analysed under).'),
      );
    }
    const cohort = entries.length > 1;
    const source = targets.some((t) => t.kind === 'all')
      ? `Every scan stored in the data directory ${dataDir}. A COHORT_DIR is, for now, a data directory that ` +
        '"sonomark analyze --data-dir" filled; the report covers all of its scans.'
      : `${cohort ? `${entries.length} inputs` : 'One scan'} (${args.join(', ')}), as stored in ${dataDir} by "sonomark analyze --data-dir".`;
    const t0 = performance.now();
    const { html } = await local.renderStoredReport(store, entries, {
      title:
        opts.title ??
        (cohort
          ? `sonomark cohort report (${entries.length} scans)`
          : `sonomark report: ${labelOf(entries[0] as ReportEntry)}`),
      source,
      manifest,
      thumbnails: opts.thumbnails,
    });
    const file = local.writeReportFile(outDir, local.reportFileName(entries), html);
    err.write(
      `${entries.length} scan${cohort ? 's' : ''}, ${(Buffer.byteLength(html) / 1024).toFixed(0)} KiB, ${Math.round(performance.now() - t0)} ms ` +
        '(research software, not a medical device)\n',
    );
    out.write(`${file}\n`);
    return 0;
  } finally {
    try {
      await services.close();
    } finally {
      lock.release();
    }
  }
}

function labelOf(e: ReportEntry): string {
  return 'scan' in e ? path.basename(e.scan.key ?? e.scan.scanId) : e.missing.label;
}

/** A missing table means the data directory never held an analysis. */
async function getOrNothing<T>(get: () => Promise<T>, nothingYet: string): Promise<T> {
  try {
    return await get();
  } catch (e) {
    if ((e as { name?: string }).name === 'ResourceNotFoundException') throw new UsageError(nothingYet);
    throw e;
  }
}
