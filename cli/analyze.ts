/** `sonomark analyze FILE|DIR...`: clips through the local workflow (DESIGN.md "Contracts"). */
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_MODALITY, type Modality } from '../core/modality';
import type { ModalityHint } from '../local/sidecar';
import type { ReportEntry } from '../local/report';
import type { AnalyzeResult, LocalWorkflow } from '../local/workflow';
import { UsageError, type CliContext } from './context';
import { resultJson, resultTable, modelsBanner, summaryTable } from './format';
import { existingDir, describeSkipped, expandInputs, MEDIA_EXTENSIONS, userSidecars } from './inputs';
import { integerAtLeast, modalityHint, modalityOption } from './options';

interface AnalyzeOptions {
  json?: boolean;
  site?: string;
  study?: string;
  dataDir?: string;
  modelsDir?: string;
  report?: string;
  concurrency?: number;
  modality: Modality;
}

/**
 * Clips in flight at once. Two keep this machine's cores busy: the next clip's ffmpeg decode
 * (a child process) runs while the current clip is scored in this process.
 */
export const DEFAULT_ANALYZE_CONCURRENCY = 2;

export function registerAnalyze(program: Command, ctx: CliContext): void {
  program
    .command('analyze')
    .summary('analyse clips with the local workflow')
    .description(
      'Analyse ultrasound clips with the local workflow: s3rver and dynalite on 127.0.0.1 and the state machine ' +
        'the CDK app synthesizes, each Task bound to the handler code the cloud runs. Every input is attempted; ' +
        'one that fails (e.g. bytes that are not a clip) gets a failed record with its reason.',
    )
    .argument('<FILE|DIR...>', `clips, or directories searched for ${[...MEDIA_EXTENSIONS].join(' ')}`)
    .option('--json', 'one JSON object per input on stdout (progress and models go to stderr)')
    .option('--site <ID>', 'site id for the upload key (default: local)')
    .option('--study <ID>', 'study id for the upload key (default: local)')
    .option('--data-dir <DIR>', 'keep local S3/DynamoDB data here; re-analysing the same bytes reuses the stored scan')
    .option('--models-dir <DIR>', "model directory with manifest.json (default: the package's models/)")
    .option('--report <DIR>', 'also write the HTML report of these clips into DIR and print its path at the end')
    .addOption(modalityOption())
    .option(
      '--concurrency <N>',
      `clips analysed at once; output stays in input order (default: ${DEFAULT_ANALYZE_CONCURRENCY})`,
      integerAtLeast(1),
    )
    .addHelpText(
      'after',
      `
With --json, one line per input:
  {file, scanId, status: "completed"|"failed", error (when failed), reused,
   features, experts: {diagnosis: {label, probabilities}, severity: {score, …},
   triage: {abnormal, label}}, models, timings}

Without --json, one clip prints a block of its outputs and biomarkers; several
print a summary table (a line per clip, then counts) at the end.

A file's own sidecar FILE.meta.json (probe, bodyRegion, frameRate, zone, modality)
is uploaded with it, with the modality hint merged in.

Examples:
  $ sonomark analyze clip.mp4
  $ sonomark analyze --modality xray ../shared/data/cxr/images/ieee8023/IMAGE.jpg
  $ sonomark analyze --report report ../shared/data/pocus/videos/convex
  $ sonomark analyze --json --data-dir .sonomark/local ../shared/data/pocus \\
      > results.jsonl

Ctrl-C (SIGINT) or SIGTERM stops the run: the clip in progress is recorded failed
(INTERRUPTED) and analysed again by the next run; ffmpeg children and temp files
are removed. A second Ctrl-C exits at once. One run per --data-dir at a time.

Exit status: 0 when every input completed, 1 when any failed, 2 on a usage error,
130 when interrupted by SIGINT (143 by SIGTERM).`,
    )
    .action(async (inputs: string[], opts: AnalyzeOptions, cmd: Command) =>
      ctx.exit(await analyze(inputs, opts, modalityHint(opts, cmd), ctx)),
    );
}

async function analyze(
  inputs: string[],
  opts: AnalyzeOptions,
  hint: ModalityHint,
  { out, err }: CliContext,
): Promise<number> {
  // Arguments first: a bad path is a usage error before any service starts.
  const files = expandInputs(inputs, (skipped) => err.write(`${describeSkipped(skipped)}\n`));
  const sidecars = userSidecars(files, hint);
  existingDir(opts.modelsDir, '--models-dir');
  if (opts.report && existsSync(opts.report) && !statSync(opts.report).isDirectory()) {
    throw new UsageError(`--report ${opts.report}: not a directory`);
  }

  // The local services' worker starts first: it loads s3rver and dynalite while this thread loads the workflow.
  (await import('../local/service-host')).prestartServiceHost();
  const [{ LocalWorkflow }, { resolveModelsDir }] = await Promise.all([
    import('../local/workflow'),
    import('../local/models'),
  ]);
  const signals = new InterruptHandler(err);
  let workflow: Awaited<ReturnType<typeof LocalWorkflow.start>>;
  try {
    workflow = await LocalWorkflow.start({
      dataDir: opts.dataDir,
      // The data dir's own models (experts published into it) when it has them.
      modelsDir: resolveModelsDir(opts),
      siteId: opts.site,
      studyId: opts.study,
      // The modality the inputs default to; a sidecar or DICOM header naming another loads its models then.
      preloadModalities: [hint?.modality ?? DEFAULT_MODALITY],
    });
  } catch (e) {
    signals.dispose();
    throw e;
  }
  signals.attach(workflow);
  err.write(modelsBanner(workflow.loaded.manifest) + '\n\n');
  const names = objectNames(files);
  const batch = files.length > 1;
  const results: AnalyzeResult[] = [];
  let failed = 0;
  let reportFile: string | undefined;
  try {
    // Several clips in flight, printed in input order as each one's turn comes.
    const pending = runInOrder(
      files,
      opts.concurrency ?? DEFAULT_ANALYZE_CONCURRENCY,
      () => !signals.signal,
      async (file, i) => {
        try {
          statSync(file);
          const sidecar = sidecars[i];
          return await workflow.analyze(file, names[i], {
            modality: hint,
            ...(sidecar !== undefined ? { sidecar } : {}),
          });
        } catch (e) {
          // Inputs are checked up front; this is one that went away or could not be read during the run.
          return unreadable(file, e);
        }
      },
    );
    for (let i = 0; i < files.length; i++) {
      const result = await pending[i];
      if (!result) continue; // not started: interrupted first
      const file = files[i] as string;
      if (result.status === 'failed') failed++;
      results.push(result);
      if (batch) {
        err.write(`[${i + 1}/${files.length}] ${result.status.padEnd(9)} ${result.timings.totalMs} ms  ${file}\n`);
      }
      if (opts.json) out.write(JSON.stringify(resultJson(result)) + '\n');
      else if (!batch) out.write(resultTable(result) + '\n\n');
    }
    if (!opts.json && batch && !signals.signal) out.write(summaryTable(results) + '\n\n');
    // Written while the services still run: without --data-dir they and their data go on close.
    if (opts.report && !signals.signal) {
      reportFile = await writeAnalyzeReport(workflow, results, opts.report, opts.dataDir);
    }
  } finally {
    await workflow.close();
    signals.dispose();
  }
  if (signals.signal) {
    const left = files.length - results.length;
    err.write(
      `Interrupted by ${signals.signal}: ${results.length} of ${files.length} input(s) attempted` +
        `${left > 0 ? `, ${left} not started` : ''}; a clip in progress was recorded failed (INTERRUPTED) and will be analysed again by the next run.\n`,
    );
    return signals.exitCode;
  }
  // Without --json the summary table on stdout already ends with the counts; with it, stdout is JSON lines only.
  if (batch && opts.json) err.write(`${files.length - failed} completed, ${failed} failed\n`);
  // --json keeps stdout to the JSON lines; otherwise the path is the last thing on stdout.
  if (reportFile) (opts.json ? err : out).write(`Report: ${reportFile}\n`);
  return failed > 0 ? 1 : 0;
}

async function writeAnalyzeReport(
  workflow: LocalWorkflow,
  results: readonly AnalyzeResult[],
  outDir: string,
  dataDir: string | undefined,
): Promise<string> {
  const [local, names] = await Promise.all([import('../local/report'), import('../local/names')]);
  const store = {
    s3: workflow.services.s3,
    doc: workflow.services.doc,
    table: names.LOCAL_TABLE,
    artifactsBucket: names.LOCAL_ARTIFACTS_BUCKET,
  };
  const entries: ReportEntry[] = [];
  const seen = new Set<string>();
  for (const r of results) {
    // The same bytes twice in one run are one scan: reported once.
    if (r.scanId && seen.has(r.scanId)) continue;
    const scan = r.scanId ? await local.getScan(store.doc, store.table, workflow.siteId, r.scanId) : undefined;
    if (r.scanId) seen.add(r.scanId);
    entries.push(
      scan
        ? { scan }
        : {
            missing: {
              label: r.file,
              scanId: r.scanId,
              error: r.error ?? { code: 'NOT_ANALYZED', message: 'No stored scan.' },
            },
          },
    );
  }
  const cohort = entries.length > 1;
  const { html } = await local.renderStoredReport(store, entries, {
    title: cohort
      ? `sonomark analyze: ${entries.length} clips`
      : `sonomark analyze: ${path.basename(results[0]?.file ?? '')}`,
    source: `The ${cohort ? `${entries.length} inputs` : 'input'} of one "sonomark analyze" run${
      dataDir ? `, stored in ${dataDir} ("sonomark report --data-dir ${dataDir}" renders it again)` : ''
    }.`,
    manifest: workflow.loaded.manifest,
  });
  return local.writeReportFile(outDir, local.reportFileName(entries), html);
}

/**
 * Runs `work` on each file with at most `limit` in flight; the promise of item i resolves to its
 * result, or to undefined when `proceed()` was false before it started (an interrupted run).
 * Two files of the same size never run at the same time: identical bytes are the same scan, and
 * the second must find the first one's stored result (reused), not its claim in progress.
 */
export function runInOrder<T>(
  files: readonly string[],
  limit: number,
  proceed: () => boolean,
  work: (file: string, index: number) => Promise<T>,
): Promise<T | undefined>[] {
  const sizeOf = (f: string): number => {
    try {
      return statSync(f).size;
    } catch {
      return -1; // unreadable: work() reports it; -1 files may run together
    }
  };
  const sizes = files.map(sizeOf);
  const settled: { resolve: (v: T | undefined) => void }[] = [];
  const promises = files.map(
    (_, i) =>
      new Promise<T | undefined>((resolve) => {
        settled[i] = { resolve };
      }),
  );
  const waiting = files.map((_, i) => i);
  const running = new Set<number>();
  const busySizes = new Map<number, number>();
  const startNext = (): void => {
    while (running.size < limit && waiting.length > 0) {
      const at = waiting.findIndex((i) => (sizes[i] as number) < 0 || !busySizes.has(sizes[i] as number));
      if (at < 0) return; // every waiting file shares its size with one in flight
      const [i] = waiting.splice(at, 1) as [number];
      if (!proceed()) {
        for (const j of [i, ...waiting.splice(0)]) settled[j]!.resolve(undefined);
        return;
      }
      const size = sizes[i] as number;
      running.add(i);
      if (size >= 0) busySizes.set(size, (busySizes.get(size) ?? 0) + 1);
      void work(files[i] as string, i).then(
        (r) => finish(i, size, () => settled[i]!.resolve(r)),
        () => finish(i, size, () => settled[i]!.resolve(undefined)),
      );
    }
  };
  const finish = (i: number, size: number, done: () => void): void => {
    running.delete(i);
    if (size >= 0) {
      const n = (busySizes.get(size) ?? 1) - 1;
      if (n > 0) busySizes.set(size, n);
      else busySizes.delete(size);
    }
    done();
    startNext();
  };
  startNext();
  return promises;
}

/** Object names within one run must not collide, or a later clip would overwrite an earlier one. */
function objectNames(files: string[]): string[] {
  const seen = new Map<string, number>();
  return files.map((f) => {
    const base = path.basename(f);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${n}-${base}`;
  });
}

function unreadable(file: string, err: unknown): AnalyzeResult {
  const code = (err as NodeJS.ErrnoException).code;
  return {
    file,
    scanId: null,
    status: 'failed',
    modality: null,
    error: {
      code: 'UNREADABLE_INPUT',
      message: code === 'ENOENT' ? 'No such file.' : `Cannot read the file (${code ?? 'error'}).`,
    },
    reused: false,
    features: null,
    experts: {},
    models: null,
    timings: { totalMs: 0, states: {} },
  };
}

/**
 * SIGINT/SIGTERM during `analyze`: the first stops the workflow cleanly (its executions
 * aborted and their scans recorded INTERRUPTED, ffmpeg killed, temp files removed by the
 * tasks as they fail, the services closed and the data dir unlocked by the caller), the
 * second exits at once. Node's default (exit without cleanup) left the clip RUNNING in the
 * data dir, and its copy in the temp directory, for good.
 */
class InterruptHandler {
  signal: NodeJS.Signals | undefined;
  private workflow: LocalWorkflow | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.signal) {
      this.err.write(`${signal} again: exiting now without cleaning up.\n`);
      process.exit(this.exitCode);
    }
    this.signal = signal;
    this.err.write(`\n${signal}: stopping; the clip in progress is recorded failed and cleaned up (again to force).\n`);
    this.workflow?.interrupt(signal);
  };

  constructor(private readonly err: NodeJS.WritableStream) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  /** The workflow to interrupt; a signal that came during its start-up interrupts it now. */
  attach(workflow: LocalWorkflow): void {
    this.workflow = workflow;
    if (this.signal) workflow.interrupt(this.signal);
  }

  /** 128 + the signal number, as a shell reports a process the signal ended. */
  get exitCode(): number {
    return this.signal === 'SIGTERM' ? 143 : 130;
  }

  dispose(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}
