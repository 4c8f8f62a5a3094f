/** `sonomark cohort run`: a cohort (directory or CSV/JSONL manifest) through the local workflow, resumable. */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { CohortItemOutcome } from '../core/cohort';
import type { Modality } from '../core/modality';
import type { ModalityHint } from '../local/sidecar';
import { UsageError, type CliContext } from './context';
import { describeSkipped, existingDir, existingPath, expandInputs, userSidecars } from './inputs';
import { integerAtLeast, modalityHint, modalityOption } from './options';
import { DEFAULT_DATA_DIR } from './rescore';

interface CohortRunOptions {
  dataDir: string;
  modelsDir?: string;
  concurrency?: number;
  out?: string;
  progress?: boolean;
  thumbnails: boolean;
  modality: Modality;
}

export function registerCohort(program: Command, ctx: CliContext): void {
  const cohort = program
    .command('cohort')
    .summary('run a cohort of clips: analyse what is new, re-score what has features')
    .description('Cohorts: a directory or a manifest of clips, analysed or re-scored as a whole.');
  cohort
    .command('run')
    .summary('analyse or re-score every clip of a cohort; resumable')
    .description(
      'Every clip of a directory, or of a CSV (a "file" column) or JSONL ({"file": …} per line) manifest: a clip ' +
        "whose scan already has features for its modality's current extractor is only scored by that modality's " +
        'experts (no decode, no extractor), and left alone when every current expert version has scored it; any other clip runs the whole ' +
        'local workflow. A second run skips what the first finished. Writes cohort.csv (one row per clip) and ' +
        'summary.json (counts, failures with reasons, output distributions, agreement between expert versions) and ' +
        'report.html (the page "sonomark report" renders), and puts the three under cohorts/local/RUN_ID/ of the ' +
        'data dir\'s artifacts bucket, where "sonomark serve" links to the page (GET /cohorts/RUN_ID/report).',
    )
    .argument(
      '<MANIFEST|DIR>',
      'a directory of clips, or a .csv / .jsonl manifest of files (an optional "modality" column or field, ' +
        'ultrasound or xray, says what that row is: a mixed cohort in one run)',
    )
    .option('--data-dir <DIR>', 'local S3/DynamoDB data and models (kept between runs)', DEFAULT_DATA_DIR)
    .option('--models-dir <DIR>', "manifest to run (default: DIR/models when it exists, else the package's models/)")
    .addOption(modalityOption())
    .option('--concurrency <N>', 'clips in flight at once (default: 2)', integerAtLeast(1))
    .option('--out <DIR>', 'where cohort.csv, summary.json and report.html go (default: DATA-DIR/cohort-report)')
    .option('--no-progress', 'no progress bar (a line per clip instead)')
    .option('--no-thumbnails', 'report.html without the peak frames (the clips are not decoded again)')
    .addHelpText(
      'after',
      `
Examples:
  $ sonomark cohort run ../shared/data/pocus/videos/convex --data-dir .sonomark/local
  $ sonomark cohort run cohort.csv --concurrency 4 --out cohort-report
  $ sonomark cohort run --modality xray ../shared/data/cxr/images/kermany-pediatric
  $ sonomark report .sonomark/local/cohort-report      # the HTML page of the cohort, again

Exit status: 0 when every clip completed, 1 when any failed, 2 on a usage error.`,
    )
    .action(async (input: string, opts: CohortRunOptions, cmd: Command) =>
      ctx.exit(await run(input, opts, modalityHint(opts, cmd), ctx)),
    );
}

async function run(
  input: string,
  opts: CohortRunOptions,
  hint: ModalityHint,
  { out, err }: CliContext,
): Promise<number> {
  existingPath(input, 'MANIFEST|DIR');
  existingDir(opts.modelsDir, '--models-dir');
  const outDir = opts.out ?? path.join(opts.dataDir, 'cohort-report');
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new UsageError(`--out ${outDir}: not a directory`);
  const local = await import('../local/cohort');
  let inputs;
  if (statSync(input).isDirectory()) {
    const files = expandInputs([input], (skipped) => {
      const line = describeSkipped(skipped);
      if (line) err.write(`${line}\n`);
    });
    inputs = local.directoryInputs(input, files);
  } else {
    try {
      inputs = local.readCohortManifest(input);
    } catch (e) {
      if (e instanceof local.CohortManifestError) throw new UsageError(e.message);
      throw e;
    }
  }
  // Each file's own sidecar goes up with it, as with analyze; one that contradicts an explicit --modality stops the run here.
  // A manifest row's modality against an explicit --modality: the modality is given twice.
  const contrary = inputs.filter((i) => hint?.explicit && i.modality !== undefined && i.modality !== hint.modality);
  if (contrary.length > 0 && hint) {
    throw new UsageError(
      `The modality is given twice:\n  ${contrary.map((i) => `${i.file}: its manifest row's "modality" is not ${hint.modality}, but --modality ${hint.modality} was given`).join('\n  ')}`,
    );
  }
  const sidecars = userSidecars(
    inputs.map((i) => i.file),
    inputs.map((i) => local.itemHint(i, hint)),
  );
  inputs = inputs.map((i, n) => (sidecars[n] === undefined ? i : { ...i, sidecar: sidecars[n] }));

  const [{ loadManifest, extractorsLabel }, { resolveModelsDir }, cohortCore, { SingleBar }] = await Promise.all([
    import('../core/manifest'),
    import('../local/models'),
    import('../core/cohort'),
    import('cli-progress'),
  ]);
  const started = performance.now();
  mkdirSync(opts.dataDir, { recursive: true });
  const loaded = loadManifest(resolveModelsDir(opts));
  const m = loaded.manifest;
  const experts = m.experts.map((e) => e.name);
  err.write(
    `Cohort of ${inputs.length} clips; extractor ${extractorsLabel(m)}, experts ` +
      `${m.experts.map((e) => `${e.name}@${e.version}`).join(', ')}; data ${opts.dataDir}\n`,
  );
  const tally = { done: 0, scored: 0, analysed: 0, failed: 0 };
  // A bar on a terminal; a line per clip when stderr is a file or pipe (a log reads better than redraws).
  const bar =
    opts.progress === false || !(err as NodeJS.WriteStream).isTTY
      ? undefined
      : new SingleBar({
          stream: err as NodeJS.WriteStream,
          format:
            'cohort [{bar}] {value}/{total} | ETA {eta_formatted} | {analysed} analysed, {scored} scored, {done} already done, {failed} failed',
          etaBuffer: 20,
          hideCursor: true,
        });
  bar?.start(inputs.length, 0, tally);
  let outcomes: CohortItemOutcome[];
  try {
    outcomes = await local.runCohort(inputs, {
      dataDir: opts.dataDir,
      loaded,
      concurrency: opts.concurrency,
      modality: hint,
      onItem: (o) => {
        tally[o.action]++;
        if (bar) bar.increment(1, tally);
        else err.write(`${o.action.padEnd(8)} ${o.item}${o.error ? `: ${o.error.message}` : ''}\n`);
      },
    });
  } finally {
    bar?.stop();
  }

  const site = 'local';
  const runId = local.localCohortRunId();
  const summary = cohortCore.summarizeCohort(outcomes, {
    source: path.resolve(input),
    dataDir: path.resolve(opts.dataDir),
    site,
    runId,
    models: {
      extractor: extractorsLabel(m),
      experts: m.experts.map((e) => `${e.name}@${e.version}`),
    },
    experts,
    seconds: (performance.now() - started) / 1000,
  });
  mkdirSync(outDir, { recursive: true });
  const csv = cohortCore.cohortCsv(outcomes, experts);
  writeFileSync(path.join(outDir, cohortCore.COHORT_CSV), csv);
  writeFileSync(path.join(outDir, cohortCore.COHORT_SUMMARY), JSON.stringify(summary, null, 2) + '\n');
  // The page and the cloud layout (cohorts/{site}/{runId}/ in the artifacts bucket) for `sonomark serve`.
  let page: string | undefined;
  if (summary.counts.items > 0) {
    const html = await local.publishCohortRun({
      dataDir: opts.dataDir,
      summary: { ...summary, site, runId },
      csv,
      manifest: m,
      thumbnails: opts.thumbnails,
    });
    page = path.join(outDir, cohortCore.COHORT_REPORT_HTML);
    writeFileSync(page, html);
  }

  const c = summary.counts;
  if (c.done > 0) err.write(`${c.done} of ${c.items} already done in an earlier run: skipped.\n`);
  for (const f of summary.failures) err.write(`failed ${f.item}: ${f.code}: ${f.message}\n`);
  for (const [expert, pairs] of Object.entries(summary.agreement)) {
    for (const p of pairs) {
      err.write(
        `${expert} ${p.previous} → ${p.current}: same output on ${p.sameHeadline} of ${p.scans} scans (mean |Δ| ${p.meanAbsDiff})\n`,
      );
    }
  }
  out.write(
    `${c.items} clips: ${c.analysed} analysed, ${c.scored} scored only, ${c.done} already done, ${c.failed} failed ` +
      `(${summary.seconds.toFixed(1)} s)\n${path.join(outDir, cohortCore.COHORT_CSV)}\n${path.join(outDir, cohortCore.COHORT_SUMMARY)}\n` +
      (page ? `${page}\n` : ''),
  );
  err.write(
    `Run ${runId}: its files are also under cohorts/${site}/${runId}/ of ${opts.dataDir}'s artifacts bucket; ` +
      `"sonomark serve --data-dir ${opts.dataDir}" links to the page at GET /cohorts/${runId}/report ` +
      '(research software, not a medical device).\n',
  );
  return c.failed > 0 ? 1 : 0;
}
