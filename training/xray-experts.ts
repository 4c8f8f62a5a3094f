/**
 * `sonomark train xray-experts`: the chest X-ray experts, reproduced from ../shared/data/cxr.
 *
 *   1. labels: the CXR loader's items → <training>/xray/labels.csv (datasets/cxr-tasks.ts: one column
 *      per task, patient group, the loader's fold, source);
 *   2. features: every image of the collection through the X-ray extractor by the serving code path
 *      (features-cache.ts: the extractor's decoder with its xray-1 preprocessing, its ONNX, the
 *      aggregation), cached per image and extractor under <training>/xray/cache;
 *   3. one `sonomark experts train` per task (XRAY_EXPERT_TASKS): the `embedding-mean` block only
 *      (one frame: the embedding itself), which comes from the label-free self-supervised encoder, so
 *      the grouped CV is honest without per-fold extractors; the extractor's biomarker heads were fitted
 *      on these labels and are left out. Grouped 5-fold CV on the loader's patient folds, the source
 *      check, a report and a Markdown card per expert.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { markdownTable } from '../core/generated-block';
import { PACKAGE_ROOT } from '../core/paths';
import type { FeatureBlock } from '../core/schemas';
import { CXR_SOURCES, loadCxr } from './datasets/cxr';
import { XRAY_EXPERT_TASKS, xrayLabelRows, xrayLabelsCsv, xrayTaskCounts } from './datasets/cxr-tasks';
import { writeFeaturesJsonl } from './experts/features-cache';
import { runExpertTraining, trainCommandLine, TrainOptions } from './experts/train-command';
import type { SourceEvaluation } from './experts/metrics';
import type { SourceCheck } from './experts/source-check';
import { runSteps, type RunOptions, type Step } from './pipeline';
import { ExpertReport, readTrainingJson } from './schemas';
import { withXrayExpertsSection, XRAY_EVALUATION_BEGIN, XRAY_EVALUATION_END } from './ship-xray';

/** The blocks the X-ray experts read: the self-supervised embedding (see the file comment). */
export const XRAY_EXPERT_BLOCKS: readonly FeatureBlock[] = ['embedding-mean'];

export interface XrayExpertsOptions {
  /** The chest X-ray collection (labels.csv and images/). */
  readonly cxrDir: string;
  readonly trainingDir: string;
  readonly modelsDir: string;
  /** @default 1.0.0 */
  readonly version?: string;
  /** Train and report, write no model (the reports still go to the training folder). */
  readonly reportOnly?: boolean;
  readonly log: (line: string) => void;
}

export function defaultCxrDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.CXR_DATA || path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'cxr'));
}

export function xrayLayout(trainingDir: string) {
  const dir = path.join(trainingDir, 'xray');
  return {
    dir,
    labels: path.join(dir, 'labels.csv'),
    features: path.join(dir, 'features.jsonl'),
    cache: path.join(dir, 'cache'),
  };
}

/** How a plan and a card name a path: relative to the working directory. */
const shown = (p: string) => path.relative(process.cwd(), p) || '.';

/**
 * Experts trained with the linear model only. On the thousands of Kermany images the MLP candidate's nested CV
 * (75 L-BFGS fits of 3,700 × 128 inputs) did not fit the CPU budget of the 2-core machine these were trained on;
 * on 4,639 and 3,384 images a linear model on a 128-d embedding is not the limit anyway. The covid task
 * (252 images) runs the trainer's full rule.
 */
export const XRAY_LINEAR_ONLY: ReadonlySet<string> = new Set(['xray-pneumonia', 'xray-bacterial-viral']);

/** The `sonomark experts train` options of one X-ray expert. */
export function xrayExpertOptions(
  task: (typeof XRAY_EXPERT_TASKS)[number],
  opts: Pick<XrayExpertsOptions, 'trainingDir' | 'modelsDir' | 'version' | 'reportOnly'>,
): TrainOptions {
  const t = xrayLayout(opts.trainingDir);
  const version = opts.version ?? '1.0.0';
  return {
    features: shown(t.features),
    labels: shown(t.labels),
    target: task.column,
    kind: 'binary',
    name: task.name,
    classes: task.classes,
    positive: task.positive,
    groupColumn: 'group',
    foldColumn: 'fold',
    sourceColumn: 'source',
    blocks: [...XRAY_EXPERT_BLOCKS],
    ...(XRAY_LINEAR_ONLY.has(task.name) ? { candidates: ['linear' as const] } : {}),
    modelsDir: shown(opts.modelsDir),
    version,
    report: shown(
      opts.reportOnly
        ? path.join(t.dir, `${task.name}-${version}.report.json`)
        : path.join(opts.modelsDir, 'experts', `${task.name}-${version}.report.json`),
    ),
    intendedUse: `Research: ${task.question}, from the X-ray extractor's self-supervised embedding, for cohort analysis and method development. Not for patient care.`,
    markdownCard: !opts.reportOnly,
    labelFreeFeatures: true,
    dryRun: opts.reportOnly ?? false,
  };
}

/** The source classifier over every image: the trainer with the source as its target, a dry run (no model). */
export function xraySourceClassifierOptions(
  opts: Pick<XrayExpertsOptions, 'trainingDir' | 'modelsDir' | 'version'>,
): TrainOptions {
  const t = xrayLayout(opts.trainingDir);
  return {
    features: shown(t.features),
    labels: shown(t.labels),
    target: 'source',
    kind: 'classification',
    name: 'xray-source',
    classes: CXR_SOURCES.join(','),
    groupColumn: 'group',
    foldColumn: 'fold',
    blocks: [...XRAY_EXPERT_BLOCKS],
    candidates: ['linear'],
    modelsDir: shown(opts.modelsDir),
    version: opts.version ?? '1.0.0',
    report: shown(path.join(t.dir, 'source-classifier.report.json')),
    labelFreeFeatures: true,
    dryRun: true,
  };
}

export function xrayExpertsSteps(opts: XrayExpertsOptions): Step[] {
  const t = xrayLayout(opts.trainingDir);
  const steps: Step[] = [
    {
      title: 'X-ray labels (the CXR loader, one column per expert task)',
      detail: [`${path.join(opts.cxrDir, 'labels.csv')} → ${t.labels}`],
      run: async () => {
        const rows = xrayLabelRows(loadCxr(opts.cxrDir), opts.cxrDir);
        mkdirSync(t.dir, { recursive: true });
        writeFileSync(t.labels, xrayLabelsCsv(rows));
        opts.log(`${rows.length} images → ${t.labels}: ${JSON.stringify(xrayTaskCounts(rows))}`);
      },
    },
    {
      title: 'features with the X-ray extractor (the serving decoder and ONNX)',
      detail: [`every image of ${opts.cxrDir} → ${t.features}`, `cache ${t.cache}`],
      run: async () => {
        await writeFeaturesJsonl({
          inputs: loadCxr(opts.cxrDir).map((i) => path.join(opts.cxrDir, i.file)),
          modelsDir: opts.modelsDir,
          modality: 'xray',
          cacheDir: t.cache,
          out: t.features,
          log: opts.log,
        });
      },
    },
  ];
  const all = XRAY_EXPERT_TASKS.map((task) => xrayExpertOptions(task, opts));
  for (const options of all) {
    steps.push({
      title: `expert ${options.name}`,
      detail: [trainCommandLine(TrainOptions.parse(options))],
      run: async () => {
        await runExpertTraining(options, opts.log);
      },
    });
  }
  // How well these features tell the collections apart at all, over every image (the pediatric tasks have one source each).
  const source = xraySourceClassifierOptions(opts);
  steps.push({
    title: 'source classifier over every image (report only)',
    detail: [trainCommandLine(TrainOptions.parse(source))],
    run: async () => {
      await runExpertTraining(source, opts.log);
    },
  });
  if (!opts.reportOnly) {
    steps.push({
      title: 'the chest X-ray experts part of models/EVALUATION.md',
      detail: [`the reports ${all.map((o) => o.report).join(', ')} → ${path.join(opts.modelsDir, 'EVALUATION.md')}`],
      run: async () => {
        const reports = all.map((o) => readTrainingJson(o.report!, ExpertReport, 'expert training report'));
        const sourceReport = readTrainingJson(source.report!, ExpertReport, 'source classifier report');
        const commands = [
          `sonomark train xray-experts${opts.version ? ` --version ${opts.version}` : ''}   # all of the below`,
          ...all.map((o) => trainCommandLine(TrainOptions.parse(o))),
          trainCommandLine(TrainOptions.parse(source)),
        ];
        opts.log(
          `wrote ${writeXrayEvaluation(opts.modelsDir, xrayEvaluationSection(reports, commands, sourceReport))}`,
        );
      },
    });
  }
  return steps;
}

export function trainXrayExperts(opts: XrayExpertsOptions, run: RunOptions): Promise<void> {
  return runSteps(xrayExpertsSteps(opts), run);
}

// ---------------------------------------------------------------------------
// The "Chest X-ray experts" part of models/EVALUATION.md
// ---------------------------------------------------------------------------

export { XRAY_EVALUATION_BEGIN, XRAY_EVALUATION_END };

type Metrics = Record<string, { value: number; ci95?: [number, number] } | undefined>;

const ci = (m: { value: number; ci95?: readonly [number, number] } | undefined) =>
  m ? `${m.value.toFixed(2)}${m.ci95 ? ` [${m.ci95[0].toFixed(2)}, ${m.ci95[1].toFixed(2)}]` : ''}` : 'n/a';

/** The section from the three experts' reports (`sonomark experts train --report`), nothing typed by hand. */
export function xrayEvaluationSection(
  reports: readonly ExpertReport[],
  commands: readonly string[],
  sourceReport?: ExpertReport,
): string {
  const sourceText = (() => {
    if (!sourceReport) return [];
    const m = (sourceReport.candidates.linear as { evaluation: { metrics: Metrics } }).evaluation.metrics;
    const classes = sourceReport.data.classes;
    return [
      `Source classifier over all ${sourceReport.data.rows} images (the same features, a linear softmax model, the ` +
        `same patient folds): balanced accuracy ${ci(m.balancedAccuracy)} against chance ${(1 / classes.length).toFixed(2)}; ` +
        `recall per source ${classes.map((c) => `${c} ${ci(m[`sensitivity.${c}`])}`).join(', ')}. ` +
        // Stated from the number: a classifier well above chance means a pooled task could key on the collection.
        ((m.balancedAccuracy?.ci95?.[0] ?? 0) > 1 / classes.length + 0.1
          ? 'The features tell the collections apart, so a task that pooled them could read the source; '
          : 'The features tell the collections apart little better than chance; ') +
        'the tasks above stay within their sources, and the covid task, which pools the two adult sources, is ' +
        'scored within each.',
    ];
  })();
  const rows = reports.map((r) => {
    const chosen = r.final.family;
    const cand = r.candidates[chosen] as { evaluation: { metrics: Metrics }; perSource?: SourceEvaluation[] };
    const m = cand.evaluation.metrics;
    const sc = r.sourceCheck as SourceCheck | undefined;
    const perSource = (cand.perSource ?? [])
      .map((s) => `${s.source} (${s.rows}): ${ci(s.evaluation.metrics.auc)}`)
      .join('; ');
    const classifier = sc?.classifier
      ? ci(sc.classifier.evaluation.metrics[sc.classifier.task === 'binary' ? 'auc' : 'balancedAccuracy']) +
        (sc.classifier.task === 'binary' ? ' (AUC)' : ` (bal. acc., chance ${sc.classifier.chance.toFixed(2)})`)
      : 'one source';
    return [
      `${r.expert.name}@${r.expert.version}`,
      Object.entries(r.data.perClass)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
      `${r.data.groups ?? r.data.rows}`,
      ci(m.auc),
      `${ci(m.sensitivity)} / ${ci(m.specificity)}`,
      perSource,
      classifier,
      sc ? ci(sc.sourceOnly.metrics.auc) : 'n/a',
      sc && sc.flags.length > 0 ? sc.flags.join(' ') : 'none',
    ];
  });
  const x = reports[0]?.data.extractor;
  return [
    `Experts on the X-ray extractor ${x ? `${x.name}@${x.version} (sha256 ${x.sha256.slice(0, 12)}…)` : ''}: the ` +
      '`embedding-mean` block only (one frame: the embedding of the label-free self-supervised encoder, so grouped CV ' +
      'needs no per-fold extractors; the biomarker heads were fitted on these labels and are not read). Grouped 5-fold ' +
      "CV on the CXR loader's patient folds; 95% intervals by bootstrap over patients (1,000 resamples); linear vs MLP " +
      "by the trainer's rule (the MLP only when it beats the linear model's AUC by 0.01), except " +
      `${[...XRAY_LINEAR_ONLY].join(' and ')}, linear only (the MLP's nested CV on thousands of images did not fit ` +
      'the CPU budget). Source check: a linear ' +
      'source classifier on the same features under the same folds, the label predicted from the source alone, and ' +
      'the AUC within each source. Each task stays within the sources where the question is honest ' +
      '(training/datasets/cxr-tasks.ts).',
    '',
    ...sourceText,
    '',
    markdownTable(
      [
        'expert',
        'images',
        'patients',
        'CV AUC',
        'sensitivity / specificity at 0.5',
        'AUC per source',
        'source classifier',
        'AUC from the source alone',
        'source-check flags',
      ],
      rows,
    ),
    '',
    'Cards: `models/experts/<name>-<version>.md`; reports: `models/experts/<name>-<version>.report.json`. Commands:',
    '',
    '```',
    ...commands,
    '```',
  ].join('\n');
}

/** Writes the section into models/EVALUATION.md between its markers, appending it (with its heading) the first time. */
export function writeXrayEvaluation(modelsDir: string, section: string): string {
  const file = path.join(modelsDir, 'EVALUATION.md');
  writeFileSync(file, withXrayExpertsSection(existsSync(file) ? readFileSync(file, 'utf8') : '', section));
  return file;
}
