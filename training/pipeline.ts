/**
 * The training pipeline behind `sonomark train extractor|experts|evaluate` (npm run train:extractor,
 * train:experts): every step as a function call into the training code, in the order that reproduces
 * the shipped models from ../shared/data/pocus.
 *
 * extractor:
 *   1. the Python recipe's packages are there (PyTorch, onnx);
 *   2. the training set: every item decoded by the extractor's own TypeScript decoder (frames .npy,
 *      dataset.json, labels.csv), so training reads exactly the pixels serving sees;
 *   3. training/python/train_extractor.py: grouped CV with and without self-supervised pretraining,
 *      the end-to-end baseline, the final model, ONNX export, the parity fixture (fixed seeds);
 *   4. the same with --loso: one extractor per held-out source, for the leave-one-source-out evaluation;
 *   5. ship: parity check, then the model, card, metrics and manifest entry into models/;
 *   6. the experts steps below, on the new extractor's features.
 * experts:
 *   1. features of every item with the shipped extractor (cached by content sha256 + extractor version);
 *   2. honest cross-validation features: for each fold f, the fold-f extractor (trained without fold f)
 *      computes features of every item, and the expert's outer fold f trains and tests on those;
 *   3. likewise per held-out source when the per-source extractors exist: the fit holding source s out
 *      reads the features of the extractor trained without s;
 *   4. diagnosis, severity, triage and b-lines experts (shipped), each with its biomarkers-only ablation (report only);
 *   5. models/EVALUATION.md.
 * evaluate: step 5 alone, from the reports already there.
 *
 * Versions are never defaults written here: the extractor ships under --version or, without it, under
 * the manifest's extractor version (reproducing the shipped model in place); the experts under --version
 * or the version of the extractor whose features they read, as every shipped set has been released.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { loadManifest, writeManifest, extractorFor } from '../core/manifest';
import { DEFAULT_MODELS_DIR, PACKAGE_ROOT } from '../core/paths';
import { sha256Hex } from '../core/scan-id';
import type { ExtractorEntry, TaskKind } from '../core/schemas';
import { exportPocusTrainingSet } from './datasets/export';
import { DEFAULT_FOLDS } from './datasets/pocus';
import { isBluesDir } from './datasets/covid-blues';
import type { Preprocessing } from '../core/schemas';
import { TrainingSetupError } from './errors';
import { evaluationFiles, writeEvaluationReport } from './evaluation-report';
import { writeFeaturesJsonl } from './experts/features-cache';
import { DecodedFramesMemo } from './experts/frames-memo';
import { runExpertTraining, type TrainOptions } from './experts/train-command';
import {
  checkRecipeDependencies,
  pythonInterpreter,
  RECIPE_SCRIPT,
  runPython,
  XRAY_RECIPE_SCRIPT,
} from './python-recipe';
import { CXR_FOLDS } from './datasets/cxr';
import { CXR_TRAINING_SUBDIR, exportCxrTrainingSet } from './datasets/export';
import { shipXrayExtractor } from './ship-xray';
import { ExtractorTrainingReport, LosoTimes, readTrainingJson } from './schemas';
import { shipExtractor, shipTarget } from './ship-extractor';

/** What the steps call; tests replace some with fakes. */
export interface PipelineDeps {
  readonly checkRecipeDependencies: typeof checkRecipeDependencies;
  readonly runPython: typeof runPython;
  readonly exportTrainingSet: typeof exportPocusTrainingSet;
  readonly shipExtractor: typeof shipExtractor;
  readonly writeFeaturesJsonl: typeof writeFeaturesJsonl;
  readonly runExpertTraining: typeof runExpertTraining;
  readonly writeEvaluationReport: typeof writeEvaluationReport;
}

const PIPELINE_DEPS: PipelineDeps = {
  checkRecipeDependencies,
  runPython,
  exportTrainingSet: exportPocusTrainingSet,
  shipExtractor,
  writeFeaturesJsonl,
  runExpertTraining,
  writeEvaluationReport,
};

const withDeps = (deps: Partial<PipelineDeps> | undefined): PipelineDeps => ({ ...PIPELINE_DEPS, ...deps });

/** The collections features are computed for: POCUS, and COVID-BLUES when there. */
const collectionDirs = (p: Pick<TrainingPaths, 'dataDir' | 'bluesDir'>): string[] =>
  p.bluesDir ? [p.dataDir, p.bluesDir] : [p.dataDir];

export interface TrainingPaths {
  /** Training outputs: pocus/ (the training set), extractor/ (the recipe's), experts/, cache/. */
  readonly trainingDir: string;
  /** The POCUS collection: metadata.csv and the clips. */
  readonly dataDir: string;
  /** The COVID-BLUES collection (severity.csv, clinical_variables.csv, videos/); absent: POCUS only. */
  readonly bluesDir?: string;
  /** The models directory models ship into (and whose extractor the experts read). */
  readonly modelsDir: string;
}

/**
 * The defaults: $SONOMARK_TRAINING_DIR or the package's .sonomark/training, $POCUS_DATA or
 * ../shared/data/pocus beside the package, $BLUES_DATA or ../shared/data/covid-blues when it is there,
 * the package's models/ (not $MODELS_DIR: that points the runtime at a model set, while training ships
 * into the package's), $PYTHON or Debian's python3.
 */
export function trainingDefaults(env: NodeJS.ProcessEnv = process.env): TrainingPaths & { python: string } {
  const blues = path.resolve(env.BLUES_DATA || path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'covid-blues'));
  return {
    trainingDir: path.resolve(env.SONOMARK_TRAINING_DIR || path.join(PACKAGE_ROOT, '.sonomark', 'training')),
    dataDir: path.resolve(env.POCUS_DATA || path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus')),
    ...(env.BLUES_DATA || isBluesDir(blues) ? { bluesDir: blues } : {}),
    modelsDir: DEFAULT_MODELS_DIR,
    python: pythonInterpreter(env),
  };
}

/** Where each step reads and writes under the training folder. */
export function trainingLayout(trainingDir: string) {
  const experts = path.join(trainingDir, 'experts');
  const extractor = path.join(trainingDir, 'extractor');
  return {
    trainingSet: path.join(trainingDir, 'pocus'),
    labels: path.join(trainingDir, 'pocus', 'labels.csv'),
    extractor,
    report: path.join(extractor, 'report.json'),
    foldModels: (recipe: string) => path.join(extractor, 'folds', recipe),
    sourceModels: (recipe: string) => path.join(extractor, 'loso', recipe),
    cache: path.join(trainingDir, 'cache'),
    experts,
    features: path.join(experts, 'features.jsonl'),
    foldFeatures: path.join(experts, 'cv', 'fold{fold}.jsonl'),
    sourceFeatures: path.join(experts, 'loso', 'source{source}.jsonl'),
    ablationReport: (name: string) => path.join(experts, `${name}-biomarkers-only.report.json`),
  };
}

export interface Step {
  readonly title: string;
  /** What the step reads and writes, a line each: what a dry run prints. */
  readonly detail: readonly string[];
  readonly run: () => Promise<void>;
}

export interface RunOptions {
  /** Print the plan, run nothing. */
  readonly dryRun?: boolean;
  /** Progress (stderr). */
  readonly log: (line: string) => void;
  /** The dry run's plan (stdout). */
  readonly print: (line: string) => void;
}

export async function runSteps(steps: readonly Step[], opts: RunOptions): Promise<void> {
  if (opts.dryRun) {
    steps.forEach((step, i) => {
      opts.print(`${i + 1}. ${step.title}`);
      for (const line of step.detail) opts.print(`     ${line}`);
    });
    return;
  }
  for (const [i, step] of steps.entries()) {
    opts.log(`== ${i + 1}/${steps.length} ${step.title}`);
    const started = performance.now();
    await step.run();
    opts.log(`   ${step.title}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** How the reports and cards name a path: relative to the working directory, as the shipped ones do. */
const shown = (p: string) => path.relative(process.cwd(), p) || '.';

// ---------------------------------------------------------------------------
// experts
// ---------------------------------------------------------------------------

interface ExpertSpec {
  readonly name: string;
  readonly target: string;
  readonly kind: TaskKind;
  readonly classes: string;
}

/** The shipped experts: labels.csv column, task kind and output labels. */
export const SHIPPED_EXPERTS: readonly ExpertSpec[] = [
  { name: 'diagnosis', target: 'diagnosis', kind: 'classification', classes: 'covid,pneumonia,healthy' },
  { name: 'severity', target: 'severity', kind: 'ordinal', classes: '0,1,2,3' },
  { name: 'triage', target: 'triage', kind: 'binary', classes: '0=healthy,1=abnormal' },
  // labels.csv's b_lines: each item's clip-level B-lines flag (empty where not annotated, so skipped).
  { name: 'b-lines', target: 'b_lines', kind: 'binary', classes: '0=absent,1=present' },
];

export interface ExpertsPipelineOptions extends TrainingPaths {
  /** @default the version of the extractor the experts read */
  readonly version?: string;
  readonly log: (line: string) => void;
  readonly deps?: Partial<PipelineDeps>;
  /** Decoded frames shared by every features pass of the run (expertsSteps makes one when absent). */
  readonly frames?: DecodedFramesMemo;
}

/** The recipe's report.json: `kept` (ssl or nossl) names the recipe whose fold and source models the experts read. */
function readReport(file: string): ExtractorTrainingReport {
  return readTrainingJson(
    file,
    ExtractorTrainingReport,
    'extractor training report',
    'training/python/train_extractor.py writes it (sonomark train extractor).',
  );
}

/** The recipe a plan names: the report's when it is already there, else a placeholder. */
function plannedRecipe(reportFile: string): string {
  if (!existsSync(reportFile)) return '<kept recipe>';
  try {
    return readReport(reportFile).kept;
  } catch {
    return '<kept recipe>';
  }
}

/** The manifest's extractor, which must still be the one the plan was made for. */
function currentExtractor(modelsDir: string, planned: { name: string; version: string }): ExtractorEntry {
  const x = extractorFor(loadManifest(modelsDir).manifest, 'ultrasound');
  if (x.name !== planned.name || x.version !== planned.version) {
    throw new TrainingSetupError(
      `The manifest in ${modelsDir} now runs ${x.name}@${x.version}, but this run was planned for ${planned.name}@${planned.version}.`,
    );
  }
  return x;
}

/** `fold-<f>.onnx` files in a folder, by fold number. */
function foldModels(dir: string): { fold: number; file: string }[] {
  const models = existsSync(dir)
    ? readdirSync(dir)
        .map((f) => /^fold-(\d+)\.onnx$/.exec(f))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ fold: Number(m[1]), file: path.join(dir, m[0]) }))
        .sort((a, b) => a.fold - b.fold)
    : [];
  if (models.length === 0) {
    throw new TrainingSetupError(
      `No fold-<f>.onnx in ${dir}: train_extractor.py writes one per cross-validation fold (sonomark train extractor).`,
    );
  }
  return models;
}

/**
 * The per-source extractors of `recipe`, checked as finished and made by the report's recipe and seed;
 * undefined when the recipe never ran --loso (the caller notes that LOSO will be leaky).
 */
export function sourceModels(
  dir: string,
  report: ExtractorTrainingReport,
): { source: string; file: string }[] | undefined {
  if (!existsSync(dir)) return undefined;
  const timesFile = path.join(dir, 'times.json');
  // times.json is written last: without it the set is unfinished, and using it would silently drop sources.
  if (!existsSync(timesFile)) {
    throw new TrainingSetupError(
      `${dir} has no times.json: train_extractor.py --loso has not finished; wait for it, or move the folder away.`,
    );
  }
  const times = readTrainingJson(timesFile, LosoTimes, 'per-source extractor times');
  if (!isDeepStrictEqual(times.config, report.config) || times.seed !== report.seed) {
    throw new TrainingSetupError(
      `${dir} was trained with another recipe or seed than the extractor training report: rerun train_extractor.py --loso.`,
    );
  }
  return times.sources.map((source) => {
    const file = path.join(dir, `source-${source}.onnx`);
    if (!existsSync(file)) {
      throw new TrainingSetupError(`${timesFile} lists source ${source}, but ${file} is missing.`);
    }
    return { source, file };
  });
}

/**
 * Features of every item with one held-out extractor model: the model is copied beside a manifest that
 * names it `<extractor>-<suffix>`, so the feature cache (keyed by extractor name and version) never mixes
 * it with the shipped extractor or another held-out model. The models go beside `out`.
 */
async function heldOutFeatures(
  opts: ExpertsPipelineOptions,
  extractor: ExtractorEntry,
  model: string,
  suffix: string,
  summary: string,
  out: string,
): Promise<void> {
  const dir = path.join(path.dirname(out), `models-${path.basename(out, '.jsonl')}`);
  const file = `extractor/${suffix}.onnx`;
  mkdirSync(path.join(dir, 'extractor'), { recursive: true });
  copyFileSync(model, path.join(dir, file));
  const { manifest } = loadManifest(opts.modelsDir);
  const { cardFile: _card, ...card } = extractor.card;
  writeManifest(dir, {
    ...manifest,
    // Only the held-out model: this folder holds no other extractor's file.
    extractors: {
      ultrasound: {
        ...extractor,
        name: `${extractor.name}-${suffix}`,
        file,
        sha256: sha256Hex(readFileSync(path.join(dir, file))),
        card: { ...card, summary },
      },
    },
    experts: [],
  });
  await withDeps(opts.deps).writeFeaturesJsonl({
    inputs: collectionDirs(opts),
    modelsDir: dir,
    cacheDir: trainingLayout(opts.trainingDir).cache,
    out,
    log: opts.log,
    ...(opts.frames ? { frames: opts.frames } : {}),
  });
}

/**
 * The experts steps. `extractor` is the extractor they will read: the manifest's now, or, after a
 * ship in the same run, the one shipped (each step checks the manifest still names it).
 */
export function expertsSteps(
  given: ExpertsPipelineOptions,
  extractor: { name: string; version: string } = extractorFor(loadManifest(given.modelsDir).manifest, 'ultrasound'),
): Step[] {
  // One memo for every features pass below: each clip is decoded once, however many extractors read it.
  const opts: ExpertsPipelineOptions = given.frames ? given : { ...given, frames: new DecodedFramesMemo() };
  const t = trainingLayout(opts.trainingDir);
  const deps = withDeps(opts.deps);
  const version = opts.version ?? extractor.version;
  const versionFrom = opts.version ? '--version' : `the version of ${extractor.name}, whose features they read`;
  const recipe = plannedRecipe(t.report);
  const state: { losoFeatures?: string } = {};

  const steps: Step[] = [
    {
      title: 'features with the shipped extractor',
      detail: [
        `${collectionDirs(opts).join(', ')} → ${t.features}`,
        `extractor ${extractor.name}@${extractor.version}, cache ${t.cache}`,
      ],
      run: async () => {
        currentExtractor(opts.modelsDir, extractor);
        await deps.writeFeaturesJsonl({
          inputs: collectionDirs(opts),
          modelsDir: opts.modelsDir,
          cacheDir: t.cache,
          out: t.features,
          log: opts.log,
          ...(opts.frames ? { frames: opts.frames } : {}),
        });
      },
    },
    {
      title: 'per-fold extractor features',
      detail: [`${path.join(t.foldModels(recipe), 'fold-<f>.onnx')} → ${t.foldFeatures}`],
      run: async () => {
        const x = currentExtractor(opts.modelsDir, extractor);
        const kept = readReport(t.report).kept;
        opts.log(`recipe: ${kept}`);
        for (const { fold, file } of foldModels(t.foldModels(kept))) {
          await heldOutFeatures(
            opts,
            x,
            file,
            `cv${fold}`,
            `Cross-validation fold model ${fold}: trained without fold ${fold}.`,
            t.foldFeatures.replace('{fold}', String(fold)),
          );
        }
      },
    },
    {
      title: 'per-source extractor features',
      detail: [
        `${path.join(t.sourceModels(recipe), 'source-<s>.onnx')} → ${t.sourceFeatures}`,
        'without them (no train_extractor.py --loso), leave-one-source-out reads features of an extractor that saw every source',
      ],
      run: async () => {
        const x = currentExtractor(opts.modelsDir, extractor);
        const report = readReport(t.report);
        const dir = t.sourceModels(report.kept);
        const models = sourceModels(dir, report);
        if (!models) {
          opts.log(
            `note: no ${dir} (train_extractor.py --loso), so no per-source features: leave-one-source-out will read features of an extractor that saw every source`,
          );
          return;
        }
        for (const { source, file } of models) {
          await heldOutFeatures(
            opts,
            x,
            file,
            `loso${source}`,
            `Leave-one-source-out model ${source}: trained without source ${source}.`,
            t.sourceFeatures.replace('{source}', source),
          );
        }
        state.losoFeatures = t.sourceFeatures;
      },
    },
  ];

  const train = async (options: TrainOptions) => {
    currentExtractor(opts.modelsDir, extractor);
    const outcome = await deps.runExpertTraining(
      {
        ...options,
        ...(state.losoFeatures ? { losoFeatures: shown(state.losoFeatures) } : {}),
      },
      opts.log,
    );
    const primary = outcome.result.selection.metric;
    const cv = outcome.result.candidates[outcome.result.chosen]?.evaluation.metrics[primary];
    opts.log(
      `${outcome.entry.name}@${outcome.entry.version}: ${outcome.result.chosen}, CV ${primary} ${cv?.value ?? 'n/a'}` +
        (outcome.written ? `, written to ${outcome.modelsDir}` : ' (report only)'),
    );
  };
  for (const spec of SHIPPED_EXPERTS) {
    const common: TrainOptions = {
      features: shown(t.features),
      labels: shown(t.labels),
      target: spec.target,
      kind: spec.kind,
      name: spec.name,
      classes: spec.classes,
      groupColumn: 'group',
      foldColumn: 'fold',
      sourceColumn: 'source',
      cvFeatures: shown(t.foldFeatures),
      modelsDir: shown(opts.modelsDir),
      version,
    };
    const report = path.join(opts.modelsDir, 'experts', `${spec.name}-${version}.report.json`);
    steps.push(
      {
        title: `expert ${spec.name}@${version}`,
        detail: [
          `${spec.target} (${spec.kind}: ${spec.classes}) on ${t.features}, CV on ${t.foldFeatures}, LOSO on ${t.sourceFeatures}`,
          `→ ${path.join(opts.modelsDir, 'experts', `${spec.name}-${version}.onnx`)}, ${report}, the manifest entry`,
          `version ${version} (${versionFrom})`,
        ],
        run: () => train({ ...common, report: shown(report) }),
      },
      {
        title: `ablation ${spec.name}: biomarker statistics only`,
        detail: [`same folds and trainer, blocks biomarker-stats; report only → ${t.ablationReport(spec.name)}`],
        run: () =>
          train({ ...common, blocks: ['biomarker-stats'], dryRun: true, report: shown(t.ablationReport(spec.name)) }),
      },
    );
  }
  steps.push(evaluateStep(opts));
  return steps;
}

// ---------------------------------------------------------------------------
// evaluate
// ---------------------------------------------------------------------------

type EvaluateOptions = TrainingPaths & { readonly log: (line: string) => void; readonly deps?: Partial<PipelineDeps> };

function evaluateStep(opts: EvaluateOptions): Step {
  const t = trainingLayout(opts.trainingDir);
  return {
    title: 'models/EVALUATION.md',
    detail: [
      `the manifest's experts' reports in ${path.join(opts.modelsDir, 'experts')}, the ablation reports in ${t.experts}`,
      `${t.report}, ${path.join(t.extractor, 'oof.json')}, ${path.join(t.trainingSet, 'dataset.json')}`,
      `→ ${path.join(opts.modelsDir, 'EVALUATION.md')}`,
    ],
    run: async () => {
      // The package's README carries the models table only for the package's own models.
      const readme =
        path.resolve(opts.modelsDir) === path.resolve(DEFAULT_MODELS_DIR)
          ? path.join(PACKAGE_ROOT, 'README.md')
          : undefined;
      opts.log(`wrote ${withDeps(opts.deps).writeEvaluationReport(opts.trainingDir, opts.modelsDir, readme)}`);
    },
  };
}

export function evaluateSteps(opts: EvaluateOptions): Step[] {
  // Fail before the (instant) step when the manifest lacks an expert, naming it.
  evaluationFiles(opts.trainingDir, opts.modelsDir, loadManifest(opts.modelsDir).manifest);
  return [evaluateStep(opts)];
}

// ---------------------------------------------------------------------------
// extractor
// ---------------------------------------------------------------------------

export interface ExtractorPipelineOptions extends TrainingPaths {
  readonly python: string;
  /** @default the manifest's extractor name */
  readonly name?: string;
  /** @default the manifest's extractor version (reproduces the shipped extractor in place) */
  readonly version?: string;
  /** What changed since the previous version, for the card and the metrics JSON. */
  readonly changes?: string;
  /** Ship the recipe output already in the training folder: no training set export, no Python. */
  readonly shipOnly?: boolean;
  /** The decoder preprocessing of the training set (and so of the shipped model). @default the manifest's */
  readonly preprocessing?: Preprocessing;
  /** Leave out the end-to-end baseline (train_extractor.py --no-e2e): the CPU budget. */
  readonly skipE2e?: boolean;
  /** Ship without training the experts (they then still name the previous extractor's features). */
  readonly skipExperts?: boolean;
  readonly log: (line: string) => void;
  readonly deps?: Partial<PipelineDeps>;
}

export function extractorSteps(opts: ExtractorPipelineOptions): Step[] {
  const t = trainingLayout(opts.trainingDir);
  const deps = withDeps(opts.deps);
  const { manifest } = loadManifest(opts.modelsDir);
  const target = shipTarget(manifest, opts);
  const recipe = (extra: string[]) => [
    RECIPE_SCRIPT,
    '--data',
    t.trainingSet,
    '--out',
    t.extractor,
    ...(opts.skipE2e ? ['--no-e2e'] : []),
    ...extra,
  ];
  const x = extractorFor(manifest, 'ultrasound');
  const preprocessing = opts.preprocessing ?? x.input.preprocessing;
  const steps: Step[] = [];
  if (!opts.shipOnly) {
    steps.push(
      {
        title: 'the recipe has PyTorch and onnx',
        detail: [`${opts.python} -c 'import torch, onnx'`],
        run: async () => deps.checkRecipeDependencies(opts.python),
      },
      {
        title: 'training set (the extractor decoder)',
        detail: [
          `${collectionDirs(opts).join(' + ')} → ${t.trainingSet} (frames .npy, dataset.json, labels.csv)`,
          `${x.input.size}×${x.input.size} gray, preprocessing ${preprocessing ?? 'letterbox'}, ≤ ${x.input.maxFrames} frames per clip, ${DEFAULT_FOLDS} folds`,
        ],
        run: async () => {
          const { input } = extractorFor(loadManifest(opts.modelsDir).manifest, 'ultrasound');
          const started = performance.now();
          const set = await deps.exportTrainingSet(opts.dataDir, t.trainingSet, {
            size: input.size,
            maxFrames: input.maxFrames,
            folds: DEFAULT_FOLDS,
            ...(preprocessing ? { preprocessing } : {}),
            ...(opts.bluesDir ? { blues: opts.bluesDir } : {}),
            log: opts.log,
          });
          const frames = set.items.reduce((s, i) => s + i.frames, 0);
          opts.log(
            `${set.items.length} items, ${frames} frames → ${t.trainingSet} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
          );
        },
      },
      {
        title: 'extractor recipe: grouped CV, end-to-end baseline, final model, parity',
        detail: [[opts.python, ...recipe([])].join(' ')],
        run: () => deps.runPython(opts.python, recipe([]), opts.log),
      },
      {
        title: 'one extractor per held-out source',
        detail: [[opts.python, ...recipe(['--loso'])].join(' ')],
        run: () => deps.runPython(opts.python, recipe(['--loso']), opts.log),
      },
    );
  }
  steps.push({
    title: `ship ${target.name}@${target.version}`,
    detail: [
      `${t.extractor} (parity on the fixture and every training frame) → ${opts.modelsDir}: model, card, metrics, parity, manifest entry`,
      `version ${target.version} (${target.fromManifest ? "the manifest's extractor version: re-ships the shipped model; --version for a new one" : '--version'})`,
    ],
    run: async () => {
      await deps.shipExtractor({
        from: t.extractor,
        data: t.trainingSet,
        modelsDir: opts.modelsDir,
        name: target.name,
        version: target.version,
        changes: opts.changes,
        log: opts.log,
      });
    },
  });
  // The experts read the extractor just shipped, and carry its version.
  const { trainingDir, dataDir, bluesDir, modelsDir, log } = opts;
  if (!opts.skipExperts) {
    steps.push(
      ...expertsSteps(
        { trainingDir, dataDir, ...(bluesDir ? { bluesDir } : {}), modelsDir, log, deps: opts.deps },
        target,
      ),
    );
  }
  return steps;
}

// ---------------------------------------------------------------------------
// the chest X-ray extractor
// ---------------------------------------------------------------------------

/** The X-ray extractor's input side: 128 px (CPU time: the recipe trains on 2 shared cores). */
export const XRAY_SIZE = 128;
export const XRAY_EXTRACTOR_NAME = 'sonomark-cxr-ssl';

export interface XrayPipelineOptions {
  readonly trainingDir: string;
  /** The chest X-ray collection (labels.csv and images/). */
  readonly cxrDir: string;
  readonly modelsDir: string;
  readonly python: string;
  /** @default sonomark-cxr-ssl */
  readonly name?: string;
  /** Required unless the manifest already has an X-ray extractor (then its version: a re-ship in place). */
  readonly version?: string;
  readonly changes?: string;
  /** A short recipe (fewer pretraining steps, one seed per anchor fraction): the early model. */
  readonly quick?: boolean;
  /** Leave out the 1%/10%/100% anchor comparison. */
  readonly skipAnchor?: boolean;
  /** Ship the recipe output already in the training folder: no export, no Python. */
  readonly shipOnly?: boolean;
  readonly log: (line: string) => void;
}

/** Where `sonomark train xray` reads and writes under the training folder. */
export function xrayLayout(trainingDir: string) {
  return {
    trainingSet: path.join(trainingDir, CXR_TRAINING_SUBDIR),
    extractor: path.join(trainingDir, 'xray-extractor'),
  };
}

/**
 * `sonomark train xray`: the X-ray training set through the serving decoder (xray-1), train_xray.py
 * (group-masked SSL, frozen-encoder heads, ONNX, parity outputs, the anchor comparison), then the
 * ship (parity on every picture; model, card, metrics, manifest `extractors.xray`, EVALUATION.md block).
 */
export function xraySteps(opts: XrayPipelineOptions): Step[] {
  const t = xrayLayout(opts.trainingDir);
  const { manifest } = loadManifest(opts.modelsDir);
  const name = opts.name ?? manifest.extractors.xray?.name ?? XRAY_EXTRACTOR_NAME;
  const version = opts.version ?? manifest.extractors.xray?.version;
  if (!version) throw new TrainingSetupError('The manifest has no X-ray extractor yet: give --version (e.g. 1.0.0).');
  const recipe = [
    XRAY_RECIPE_SCRIPT,
    '--data',
    t.trainingSet,
    '--out',
    t.extractor,
    ...(opts.quick ? ['--quick'] : []),
    ...(opts.skipAnchor ? [] : ['--anchor']),
  ];
  const steps: Step[] = [];
  if (!opts.shipOnly) {
    steps.push(
      {
        title: 'the recipe has PyTorch and onnx',
        detail: [`${opts.python} -c 'import torch, onnx'`],
        run: async () => checkRecipeDependencies(opts.python),
      },
      {
        title: 'chest X-ray training set (the extractor decoder, xray-1)',
        detail: [
          `${opts.cxrDir} → ${t.trainingSet} (one .npy per picture, dataset.json)`,
          `${XRAY_SIZE}×${XRAY_SIZE} gray, preprocessing xray-1, ${CXR_FOLDS} folds by patient`,
        ],
        run: async () => {
          const started = performance.now();
          const set = await exportCxrTrainingSet(opts.cxrDir, t.trainingSet, {
            size: XRAY_SIZE,
            folds: CXR_FOLDS,
            log: opts.log,
          });
          opts.log(
            `${set.items.length} pictures → ${t.trainingSet} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
          );
        },
      },
      {
        title: `X-ray recipe: group-masked SSL, frozen-encoder heads${opts.skipAnchor ? '' : ', anchor comparison'}, ONNX`,
        detail: [[opts.python, ...recipe].join(' ')],
        run: () => runPython(opts.python, recipe, opts.log),
      },
    );
  }
  steps.push({
    title: `ship ${name}@${version} as extractors.xray`,
    detail: [
      `${t.extractor} (parity on the fixture and every training picture) → ${opts.modelsDir}: model, card, metrics, parity, manifest entry, EVALUATION.md block`,
    ],
    run: async () => {
      await shipXrayExtractor({
        from: t.extractor,
        data: t.trainingSet,
        modelsDir: opts.modelsDir,
        name,
        version,
        ...(opts.changes ? { changes: opts.changes } : {}),
        log: opts.log,
      });
    },
  });
  return steps;
}

/** `sonomark train xray`. */
export function trainXray(opts: XrayPipelineOptions, run: RunOptions): Promise<void> {
  return runSteps(xraySteps(opts), run);
}

// ---------------------------------------------------------------------------
// entry points
// ---------------------------------------------------------------------------

/** `sonomark train extractor`: the whole recipe, the ship, then the experts on the new features. */
export function trainExtractor(opts: ExtractorPipelineOptions, run: RunOptions): Promise<void> {
  return runSteps(extractorSteps(opts), run);
}

/** `sonomark train experts`: the experts on the manifest's extractor, then models/EVALUATION.md. */
export function trainExperts(opts: ExpertsPipelineOptions, run: RunOptions): Promise<void> {
  return runSteps(expertsSteps(opts), run);
}

/** `sonomark train evaluate`: models/EVALUATION.md from the reports already there. */
export function evaluateTraining(opts: EvaluateOptions, run: RunOptions): Promise<void> {
  return runSteps(evaluateSteps(opts), run);
}
