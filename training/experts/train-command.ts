/**
 * `sonomark experts train` end to end: read and join the inputs, train and
 * cross-validate (train.ts), export and verify the ONNX graph, add the expert to
 * the models directory, and build the report. The CLI only parses arguments and
 * prints; tests call this directly.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { featureNames } from '../../core/features';
import { loadManifest } from '../../core/manifest';
import { MODALITY_LABELS } from '../../core/modality';
import { modelsDirFromEnv } from '../../core/paths';
import { sha256Hex } from '../../core/scan-id';
import { ExpertEntry, FeatureBlock, TaskKind, type ModelRef } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';
import {
  describeRow,
  indexFeatures,
  joinFeatures,
  parseLabels,
  readFeatures,
  singleExtractor,
  singleModality,
  type Joined,
  type LoadedFeatures,
  type ParsedLabels,
} from './data';
import { TrainingDataError } from './errors';
import { foldIds } from './folds';
import { failureModes } from './failure-modes';
import { ECE_DEFINITION, type Evaluation, type Interval } from './metrics';
import { linearWeights, type Matrix } from './model';
import { exportExpertOnnx, verifyOnnx, type Verification } from './onnx-export';
import { checkExtractor, expertVersion, planPublish, publishExpert } from './publish';
import type { SourceCheck } from './source-check';
import { cardMarkdown } from './card-markdown';
import { cardFileFor } from './register';
import { trainExpert, type CvFeatures, type LosoFeatures, type TrainResult } from './train';
import { checkTrainingJson, ExpertReport } from '../schemas';

export const ALL_BLOCKS: readonly FeatureBlock[] = ['biomarker-stats', 'embedding-mean', 'embedding-max'];

export const TrainOptions = z.object({
  features: z.string().min(1),
  labels: z.string().min(1),
  target: z.string().min(1),
  kind: TaskKind,
  name: ExpertEntry.shape.name,
  key: z.enum(['sha256', 'file', 'name']).default('sha256'),
  classes: z.string().min(1).optional(),
  positive: z.string().min(1).optional(),
  groupColumn: z.string().min(1).optional(),
  foldColumn: z.string().min(1).optional(),
  sourceColumn: z.string().min(1).optional(),
  blocks: z
    .array(FeatureBlock)
    .min(1)
    .default([...ALL_BLOCKS]),
  cvFeatures: z.string().min(1).optional(),
  /** Path with {source}: the leave-one-source-out fit for source s trains and tests on the set without s. */
  losoFeatures: z.string().min(1).optional(),
  modelsDir: z.string().min(1).optional(),
  version: ExpertEntry.shape.version.optional(),
  report: z.string().min(1).optional(),
  seed: z.number().int().nonnegative().default(1),
  folds: z.number().int().min(2).max(50).default(5),
  hidden: z.number().int().min(2).max(256).default(16),
  /** Model families to compare; one skips the selection. */
  candidates: z
    .array(z.enum(['linear', 'mlp']))
    .min(1)
    .default(['linear', 'mlp']),
  bootstrap: z.number().int().min(0).max(100_000).default(1000),
  skipMissingFeatures: z.boolean().default(false),
  /** Train, evaluate and report, but write no model and leave the manifest alone. */
  dryRun: z.boolean().default(false),
  /** Free text for the card's trainingData; a description is generated when absent. */
  description: z.string().min(1).optional(),
  /** Free text for the card's intended use; generated from the target when absent. */
  intendedUse: z.string().min(1).optional(),
  /** Also write the card as Markdown beside the model (experts/NAME-VERSION.md) and name it in the entry. */
  markdownCard: z.boolean().default(false),
  /**
   * The blocks come from a part of the extractor that never saw a label (a self-supervised encoder), so CV on
   * the training features is not optimistic through the extractor; the card says so instead of warning.
   */
  labelFreeFeatures: z.boolean().default(false),
});
export type TrainOptions = z.input<typeof TrainOptions>;

export interface TrainOutcome {
  readonly entry: ExpertEntry;
  /** False on --dry-run. */
  readonly written: boolean;
  readonly modelsDir: string;
  readonly report: Record<string, unknown>;
  readonly result: TrainResult;
  readonly verification: Verification;
}

function extractorDim(docs: readonly LoadedFeatures[]): number {
  return docs[0]!.features.embedding.dim;
}

function rowsAsLabels(labels: ParsedLabels, rows: Joined['rows']): ParsedLabels {
  return { ...labels, rows };
}

/**
 * One feature set per fold (--cv-features with {fold}) or per source (--loso-features
 * with {source}): `template` with the placeholder replaced by each id, each set from
 * one extractor and holding every training row (the rows --skip-missing-features
 * left in), joined in the training rows' order.
 */
function loadPerSetFeatures<K extends number | string>(
  flag: '--cv-features' | '--loso-features',
  unit: 'fold' | 'source',
  template: string,
  ids: readonly K[],
  labels: ParsedLabels,
  joined: Joined,
  opts: z.output<typeof TrainOptions>,
): { x: Map<K, Matrix>; extractors: Record<string, ModelRef> } {
  const x = new Map<K, Matrix>();
  const extractors: Record<string, ModelRef> = {};
  for (const id of ids) {
    const location = template.replaceAll(`{${unit}}`, String(id));
    const what = `${flag} for ${unit} ${id} (${location})`;
    let docs: LoadedFeatures[];
    try {
      docs = readFeatures(location);
    } catch (e) {
      if (!(e instanceof TrainingDataError)) throw e;
      throw new TrainingDataError(`${flag} for ${unit} ${id}: ${e.message}`);
    }
    extractors[String(id)] = singleExtractor(docs, what);
    const j = joinFeatures(
      rowsAsLabels(labels, joined.rows),
      indexFeatures(docs, opts.key),
      { blocks: opts.blocks, skipMissing: true },
      what,
    );
    if (j.missing.length > 0) {
      const first = joined.rows.find((r) => r.line === j.missing[0])!;
      throw new TrainingDataError(
        `${labels.csv} line ${first.line}: no features for ${describeRow(first, opts.key)} in ${what}; ` +
          `${j.missing.length} of the ${joined.rows.length} training rows lack them (lines ${j.missing.slice(0, 10).join(', ')}${j.missing.length > 10 ? ', …' : ''}). ` +
          `Every ${unit} set needs features for every training row: run \`sonomark features\` with that ${unit}'s extractor on those clips` +
          (opts.skipMissingFeatures ? ' (--skip-missing-features only leaves out rows that --features lacks).' : '.'),
      );
    }
    x.set(id, j.x);
  }
  return { x, extractors };
}

function loadCvFeatures(
  template: string,
  labels: ParsedLabels,
  joined: Joined,
  opts: z.output<typeof TrainOptions>,
): { cv: CvFeatures; extractors: Record<string, ModelRef> | ModelRef[] } {
  if (template.includes('{fold}')) {
    if (!opts.foldColumn) {
      throw new TrainingDataError(
        '--cv-features with {fold} needs --fold-column: each fold set must come from an extractor trained without that fold.',
      );
    }
    const ids = foldIds(joined.rows.map((r) => r.fold!));
    const { x, extractors } = loadPerSetFeatures('--cv-features', 'fold', template, ids, labels, joined, opts);
    return { cv: { mode: 'per-fold', x }, extractors };
  }
  const docs = readFeatures(template);
  const seen = new Map<string, ModelRef>();
  for (const d of docs) seen.set(`${d.features.extractor.name}@${d.features.extractor.version}`, d.features.extractor);
  const j = joinFeatures(
    rowsAsLabels(labels, joined.rows),
    indexFeatures(docs, opts.key),
    { blocks: opts.blocks },
    `--cv-features (${template})`,
  );
  return { cv: { mode: 'out-of-fold', x: j.x }, extractors: [...seen.values()] };
}

function loadLosoFeatures(
  template: string,
  labels: ParsedLabels,
  joined: Joined,
  opts: z.output<typeof TrainOptions>,
): { loso: LosoFeatures; extractors: Record<string, ModelRef> } {
  if (!opts.sourceColumn) {
    throw new TrainingDataError(
      '--loso-features needs --source-column: each source set must come from an extractor trained without that source.',
    );
  }
  if (!template.includes('{source}')) {
    throw new TrainingDataError(
      `--loso-features ${template} has no {source}: it names one file per held-out source, e.g. 'DIR/source{source}.jsonl'.`,
    );
  }
  const ids = [...new Set(joined.rows.map((r) => r.source!))].sort();
  const { x, extractors } = loadPerSetFeatures('--loso-features', 'source', template, ids, labels, joined, opts);
  return { loso: { mode: 'per-source', x }, extractors };
}

const fmt = (v: Interval | undefined) =>
  v ? `${v.value.toFixed(3)}${v.ci95 ? ` [${v.ci95[0].toFixed(3)}, ${v.ci95[1].toFixed(3)}]` : ''}` : 'n/a';

/** The metrics a card shows per task kind (the report keeps all of them). */
const CARD_METRICS: Record<z.infer<typeof TaskKind>, readonly string[]> = {
  classification: ['balancedAccuracy', 'macroF1', 'accuracy'],
  ordinal: ['mae', 'within1', 'qwk', 'balancedAccuracy'],
  binary: ['auc', 'sensitivity', 'specificity', 'balancedAccuracy'],
};

function cardEvaluation(kind: z.infer<typeof TaskKind>, labels: readonly string[], e: Evaluation) {
  const pick = (k: string) => e.metrics[k];
  return {
    rows: e.rows,
    ...Object.fromEntries(CARD_METRICS[kind].flatMap((k) => (pick(k) ? [[k, pick(k)]] : []))),
    ...(kind === 'classification'
      ? {
          perClass: Object.fromEntries(
            labels.map((l) => [l, { sensitivity: pick(`sensitivity.${l}`), specificity: pick(`specificity.${l}`) }]),
          ),
        }
      : {}),
    confusion: e.confusion.matrix,
    ...(pick('ece') ? { calibration: { ece: pick('ece'), definition: ECE_DEFINITION } } : {}),
    bootstrap: `${e.bootstrap.resamples} ${e.bootstrap.unit}-level resamples (seed ${e.bootstrap.seed}), percentile 95% CI`,
  };
}

/**
 * Per held-out source, for a card: clips per label, accuracy, the primary metric and the ECE, each
 * with its interval (bootstrap over the source's own groups; none for a single-group source). The
 * report keeps every metric, and the CV's per-source numbers too.
 */
function cardPerSource(
  labels: readonly string[],
  primary: string,
  sources: readonly { source: string; rows: number; perClass?: readonly number[]; evaluation?: Evaluation }[],
) {
  return Object.fromEntries(
    sources.map((s) => [
      s.source,
      {
        ...(s.perClass ? Object.fromEntries(labels.map((l, c) => [l, s.perClass![c]])) : { rows: s.rows }),
        ...Object.fromEntries(
          [...new Set(['accuracy', primary, 'ece'])].flatMap((k) =>
            s.evaluation?.metrics[k] ? [[k, s.evaluation.metrics[k]]] : [],
          ),
        ),
      },
    ]),
  );
}

/** The source check for a card: the figures the verdict rests on, each with its interval, and the verdict. */
function cardSourceCheck(primary: string, c: SourceCheck) {
  const pick = (e: Evaluation, keys: readonly string[]) =>
    Object.fromEntries(keys.flatMap((k) => (e.metrics[k] ? [[k, e.metrics[k]]] : [])));
  return {
    summary: c.summary,
    flags: c.flags,
    sources: Object.fromEntries(
      c.sources.map((s) => [s.source, { rows: s.rows, groups: s.groups, perClass: s.perClass }]),
    ),
    ...(c.classifier
      ? {
          sourceClassifier: {
            model: `linear ${c.classifier.task === 'binary' ? 'logistic' : 'softmax'} regression predicting the source from the same features, same outer folds, λ by the same inner CV`,
            chance: c.classifier.chance,
            ...pick(c.classifier.evaluation, ['balancedAccuracy', 'auc']),
          },
        }
      : {}),
    labelFromSourceAlone: pick(c.sourceOnly, [primary, 'balancedAccuracy']),
    labelWithoutSource: pick(c.noSource, [primary, 'balancedAccuracy']),
    scoredWithin: c.mixedSources,
  };
}

/** The `sonomark experts train` command line that these options are (for a card's "Reproduce"). */
export function trainCommandLine(opts: z.output<typeof TrainOptions>): string {
  const q = (v: string) => (/^[\w@%+=:,./{}-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  const flags: [string, string | number | boolean | readonly string[] | undefined][] = [
    ['features', opts.features],
    ['labels', opts.labels],
    ['target', opts.target],
    ['kind', opts.kind],
    ['name', opts.name],
    ['key', opts.key === 'sha256' ? undefined : opts.key],
    ['classes', opts.classes],
    ['positive', opts.positive],
    ['group-column', opts.groupColumn],
    ['fold-column', opts.foldColumn],
    ['source-column', opts.sourceColumn],
    ['blocks', opts.blocks.join(',') === ALL_BLOCKS.join(',') ? undefined : opts.blocks],
    ['cv-features', opts.cvFeatures],
    ['loso-features', opts.losoFeatures],
    ['version', opts.version],
    ['seed', opts.seed === 1 ? undefined : opts.seed],
    ['folds', opts.folds === 5 ? undefined : opts.folds],
    ['hidden', opts.hidden === 16 ? undefined : opts.hidden],
    ['candidates', opts.candidates.join(',') === 'linear,mlp' ? undefined : opts.candidates],
    ['bootstrap', opts.bootstrap === 1000 ? undefined : opts.bootstrap],
    ['markdown-card', opts.markdownCard || undefined],
    ['label-free-features', opts.labelFreeFeatures || undefined],
  ];
  const parts = ['sonomark experts train'];
  for (const [flag, v] of flags) {
    if (v === undefined) continue;
    parts.push(v === true ? `--${flag}` : `--${flag} ${q(Array.isArray(v) ? v.join(',') : String(v))}`);
  }
  return parts.join(' ');
}

export async function runExpertTraining(
  input: TrainOptions,
  log: (line: string) => void = () => {},
): Promise<TrainOutcome> {
  const opts = parsePayload(TrainOptions, input, 'experts train options');
  const started = performance.now();

  let csvText: string;
  try {
    csvText = readFileSync(opts.labels, 'utf8');
  } catch (e) {
    throw new TrainingDataError(`Cannot read labels ${opts.labels}: ${(e as Error).message}`);
  }
  const csvName = path.basename(opts.labels);
  const labels = parseLabels(
    csvText,
    {
      key: opts.key,
      target: opts.target,
      kind: opts.kind,
      classes: opts.classes,
      positive: opts.positive,
      groupColumn: opts.groupColumn,
      foldColumn: opts.foldColumn,
      sourceColumn: opts.sourceColumn,
    },
    csvName,
  );
  if (labels.skipped.length > 0) log(`${labels.skipped.length} rows without ${opts.target} skipped`);

  const docs = readFeatures(opts.features);
  const extractor = singleExtractor(docs, `The features in ${opts.features}`);
  const modality = singleModality(docs, `The features in ${opts.features}`);
  // Before any training: a models dir that cannot take this expert should fail in milliseconds.
  const modelsDir = path.resolve(opts.modelsDir ?? modelsDirFromEnv());
  const loaded = loadManifest(modelsDir);
  checkExtractor(loaded, extractor, modality);
  const version = expertVersion(loaded, opts.name, opts.version, modality);
  const cardFile = opts.markdownCard ? cardFileFor(opts.name, version) : undefined;
  const joined = joinFeatures(labels, indexFeatures(docs, opts.key), {
    blocks: opts.blocks,
    skipMissing: opts.skipMissingFeatures,
  });
  if (joined.missing.length > 0) {
    log(`${joined.missing.length} rows without features skipped (lines ${joined.missing.slice(0, 10).join(', ')}…)`);
  }
  const cvLoaded = opts.cvFeatures ? loadCvFeatures(opts.cvFeatures, labels, joined, opts) : undefined;
  const losoLoaded = opts.losoFeatures ? loadLosoFeatures(opts.losoFeatures, labels, joined, opts) : undefined;

  const rows = joined.rows;
  const y = Int32Array.from(rows, (r) => r.y);
  const counts = labels.labels.map((_, c) => rows.filter((r) => r.y === c).length);
  log(
    `${rows.length} rows × ${joined.x.cols} features (${opts.blocks.join(', ')}) from ${extractor.name}@${extractor.version}; ` +
      labels.labels.map((l, c) => `${l}: ${counts[c]}`).join(', '),
  );
  const result = trainExpert(
    {
      x: joined.x,
      y,
      groups: opts.groupColumn ? rows.map((r) => r.group!) : null,
      folds: opts.foldColumn ? rows.map((r) => r.fold!) : null,
      sources: opts.sourceColumn ? rows.map((r) => r.source!) : null,
      rowNames: rows.map((r) => `${csvName} line ${r.line}`),
    },
    {
      kind: opts.kind,
      labels: labels.labels,
      seed: opts.seed,
      folds: opts.folds,
      hidden: opts.hidden,
      bootstrap: opts.bootstrap,
      families: [...new Set(opts.candidates)],
    },
    cvLoaded?.cv,
    losoLoaded?.loso,
  );
  const primary = result.selection.metric;
  for (const [family, c] of Object.entries(result.candidates)) {
    log(`  ${family.padEnd(6)} CV ${primary} ${fmt(c.evaluation.metrics[primary])}  (${c.seconds.toFixed(2)} s)`);
  }
  log(`  chosen: ${result.chosen} (λ = ${result.final.lambda})`);
  const grid = result.final.lambdaGrid;
  if (grid.length > 1 && (result.final.lambda === Math.max(...grid) || result.final.lambda === Math.min(...grid))) {
    // The optimum may lie beyond the grid; the numbers are still honest (nested), just perhaps not the best.
    log(`  note: λ = ${result.final.lambda} is at the edge of the grid [${grid.join(', ')}]`);
  }
  if (result.loso) {
    log(
      `  leave-one-source-out ${primary} ${fmt(result.loso.evaluation.metrics[primary])}` +
        (result.loso.features === 'per-source' ? ' (per-source extractor features)' : ''),
    );
  }

  const graphName = `sonomark_expert_${opts.name.replace(/-/g, '_')}`;
  const familyText =
    result.chosen === 'linear'
      ? {
          softmax: 'softmax regression',
          sigmoid: 'logistic regression',
          cumulative: 'proportional-odds (cumulative logit) regression',
        }[result.model.shape.head]
      : `MLP (${result.model.shape.hidden} ReLU units) with a ${result.model.shape.head} head`;
  const bytes = exportExpertOnnx(result.model, {
    graphName,
    docString: `sonomark expert "${opts.name}": ${familyText}, L2 λ=${result.final.lambda}, on [${opts.blocks.join(', ')}] of ${extractor.name}@${extractor.version}; trained by sonomark experts train (seed ${opts.seed}).`,
  });
  // Every training row through onnxruntime: the graph must compute what was evaluated.
  const verification = await verifyOnnx(bytes, result.model, joined.x);
  log(
    `  ONNX verified against onnxruntime: max |Δp| ${verification.maxAbsDiff.toExponential(1)} over ${verification.rows} rows`,
  );

  const cvFeaturesText =
    result.cv.features === 'training'
      ? 'the training features themselves'
      : result.cv.features === 'per-fold'
        ? `per-fold extractor features (${opts.cvFeatures})`
        : `out-of-fold extractor features (${opts.cvFeatures})`;
  // Only per-source sets are described here; the other LOSO modes keep their limitation below.
  const losoFeaturesText = `per-source extractor features (${opts.losoFeatures}): each held-out source's fit trained and tested on features from an extractor trained without that source`;
  const unit = modality === 'xray' ? 'images' : 'clips';
  const groupsCount = opts.groupColumn ? new Set(rows.map((r) => r.group)).size : rows.length;
  const limitations = [
    `Cross-validated on ${rows.length} ${unit} in ${groupsCount} groups: the intervals are wide and the point estimates move with a few ${unit}.`,
    'The linear model and the MLP were compared on the same outer folds that report their metrics; with two candidates the optimism from that choice is small but not zero.',
    ...(result.cv.features === 'training' && opts.labelFreeFeatures
      ? [
          `CV read the final extractor's [${opts.blocks.join(', ')}], which comes from a self-supervised encoder trained without labels on every ${unit.replace(/s$/, '')}, the held-out ones included: it saw their pixels, never their labels, so the CV is not optimistic through the extractor.`,
        ]
      : []),
    ...(result.cv.features === 'training' && !opts.labelFreeFeatures
      ? [
          'CV read features from the final extractor, which may have trained on the held-out clips: if so these numbers are optimistic. Pass --cv-features with out-of-fold extractor features for an honest estimate.',
        ]
      : []),
    ...(result.cv.features === 'out-of-fold' &&
    opts.blocks.some((b) => b !== 'biomarker-stats') &&
    Array.isArray(cvLoaded?.extractors) &&
    cvLoaded.extractors.length > 1
      ? [
          'The out-of-fold CV features come from several extractors whose embedding coordinates are not aligned, so each CV model mixed them; per-fold sets (--cv-features with {fold}) avoid that.',
        ]
      : []),
    ...(result.loso && result.loso.features !== 'per-source'
      ? [
          `Leave-one-source-out read ${result.loso.features === 'out-of-fold' ? 'out-of-fold' : 'the training'} features; no extractor was trained without a whole source, so it measures the expert's transfer across sources, not the extractor's.`,
        ]
      : []),
    ...(result.loso?.features === 'per-source'
      ? [
          "Leave-one-source-out trained and tested each held-out source's fit on features from an extractor trained without that source (--loso-features), so it measures how extractor and expert together transfer to an unseen source.",
        ]
      : []),
    'Research software, not a medical device.',
  ];
  const trainingData =
    opts.description ??
    `${rows.length} labelled ${unit} of ${csvName} (target column "${opts.target}"${labels.skipped.length > 0 ? `; ${labels.skipped.length} rows without it skipped` : ''}${joined.missing.length > 0 ? `; ${joined.missing.length} rows without features skipped` : ''}), ` +
      `features [${opts.blocks.join(', ')}] from ${extractor.name}@${extractor.version}` +
      `${opts.groupColumn ? `, grouped by "${opts.groupColumn}"` : ''}${opts.foldColumn ? `, folds from "${opts.foldColumn}"` : ''}.`;
  const chosenEval = result.candidates[result.chosen]!.evaluation;
  const failures = failureModes({
    kind: opts.kind,
    labels: labels.labels,
    perClass: counts,
    primary: { name: primary, higherIsBetter: result.selection.higherIsBetter },
    cv: chosenEval,
    ...(result.loso ? { loso: result.loso } : {}),
  });
  // The source check's verdicts are failure modes too: a card must say when the model may read the source.
  if (result.sourceCheck) failures.push(...result.sourceCheck.flags.map((f) => `Source check: ${f}`));
  if (result.sourceCheck) log(`  source check: ${result.sourceCheck.summary}`);
  if (failures.length > 0) log(`  known failure modes:\n    - ${failures.join('\n    - ')}`);
  const cardMetrics = {
    cv: {
      scheme: result.cv.scheme,
      features: cvFeaturesText,
      ...cardEvaluation(opts.kind, labels.labels, chosenEval),
      // The pooled number per source: where it hides a source the model fails on.
      ...(result.candidates[result.chosen]!.perSource
        ? { perSource: cardPerSource(labels.labels, primary, result.candidates[result.chosen]!.perSource!) }
        : {}),
    },
    ...(result.sourceCheck ? { sourceCheck: cardSourceCheck(primary, result.sourceCheck) } : {}),
    ...(result.loso
      ? {
          leaveOneSourceOut: {
            ...(result.loso.features === 'per-source' ? { features: losoFeaturesText } : {}),
            ...cardEvaluation(opts.kind, labels.labels, result.loso.evaluation),
            perSource: cardPerSource(labels.labels, primary, result.loso.perSource),
          },
        }
      : {}),
    candidates: Object.fromEntries(
      Object.entries(result.candidates).map(([f, c]) => [f, { [primary]: c.evaluation.metrics[primary] }]),
    ),
    chosenModel: `${familyText}, λ=${result.final.lambda}`,
    failureModes: failures,
    trainingRows: rows.length,
    trainingSeconds: result.seconds.total,
  };
  const plan = planPublish(
    loaded,
    {
      name: opts.name,
      version: opts.version,
      kind: opts.kind,
      labels: labels.labels,
      positive: labels.positive,
      blocks: opts.blocks,
      inputDim: joined.x.cols,
      extractor,
      modality,
      card: {
        summary: `${familyText[0]!.toUpperCase()}${familyText.slice(1)} over [${labels.labels.join(', ')}] on [${opts.blocks.join(', ')}] of ${extractor.name}@${extractor.version}; trained by \`sonomark experts train\` (seed ${opts.seed}).`,
        intendedUse:
          opts.intendedUse ??
          `Research: ${opts.target} from lung-ultrasound clip features, for cohort analysis and method development. Not for patient care.`,
        trainingData,
        metrics: cardMetrics,
        // Sample size first, then what fails, then the method caveats.
        limitations: [limitations[0]!, ...failures.map((f) => `Known failure mode: ${f}`), ...limitations.slice(1)],
        ...(cardFile ? { cardFile } : {}),
      },
    },
    bytes,
  );
  const linear = result.candidates.linear && result.chosen === 'linear' ? linearWeights(result.model) : undefined;
  const report = {
    tool: 'sonomark experts train',
    createdAt: new Date().toISOString(),
    options: { ...opts },
    data: {
      labels: path.resolve(opts.labels),
      target: opts.target,
      kind: opts.kind,
      classes: labels.labels,
      ...(labels.positive ? { positive: labels.positive } : {}),
      rows: rows.length,
      perClass: Object.fromEntries(labels.labels.map((l, c) => [l, counts[c]])),
      skippedWithoutTarget: labels.skipped,
      skippedWithoutFeatures: joined.missing,
      groups: opts.groupColumn ? groupsCount : null,
      folds: opts.foldColumn ? foldIds(rows.map((r) => r.fold!)).length : null,
      sources: opts.sourceColumn ? new Set(rows.map((r) => r.source)).size : null,
      features: path.resolve(opts.features),
      extractor,
      cvFeatures: opts.cvFeatures ? { location: opts.cvFeatures, extractors: cvLoaded!.extractors } : null,
      ...(opts.losoFeatures
        ? { losoFeatures: { location: opts.losoFeatures, extractors: losoLoaded!.extractors } }
        : {}),
      blocks: opts.blocks,
      dim: joined.x.cols,
    },
    selection: result.selection,
    cv: result.cv,
    candidates: result.candidates,
    ...(result.loso ? { leaveOneSourceOut: result.loso } : {}),
    ...(result.sourceCheck ? { sourceCheck: result.sourceCheck } : {}),
    failureModes: failures,
    final: {
      ...result.final,
      family: result.chosen,
      description: familyText,
      // Per input feature (standardised), one weight per output column: what a reader checks first.
      ...(linear
        ? {
            standardizedWeights: Object.fromEntries(
              featureNames(opts.blocks, { labels: MODALITY_LABELS[modality], embeddingDim: extractorDim(docs) }).map(
                (name, j) => [
                  name,
                  Array.from(
                    linear.weights.subarray(j * linear.out, (j + 1) * linear.out),
                    (v) => Math.round(v * 1e4) / 1e4,
                  ),
                ],
              ),
            ),
          }
        : {}),
    },
    onnx: {
      file: plan.entry.file,
      sha256: sha256Hex(bytes),
      bytes: bytes.length,
      verification,
      written: !opts.dryRun,
    },
    expert: plan.entry,
    seconds: { ...result.seconds, wall: Math.round(performance.now() - started) / 1000 },
  };
  // Checked before anything is written: a report the evaluation could not read is a bug, found here.
  checkTrainingJson(ExpertReport, report, `report of ${opts.name}@${plan.entry.version}`);
  if (!opts.dryRun && cardFile) {
    const { cardFile: _, ...card } = plan.entry.card;
    const markdown = cardMarkdown({
      name: opts.name,
      version: plan.entry.version,
      card,
      labels: labels.labels,
      primary,
      cv: chosenEval,
      cvScheme: `${result.cv.scheme}, features: ${cvFeaturesText}`,
      ...(result.candidates[result.chosen]!.perSource
        ? { perSource: result.candidates[result.chosen]!.perSource }
        : {}),
      ...(result.loso ? { loso: result.loso } : {}),
      ...(result.sourceCheck ? { sourceCheck: result.sourceCheck } : {}),
      command: trainCommandLine(opts),
    });
    // Before the manifest names it (publishExpert writes the manifest last).
    mkdirSync(path.dirname(path.join(modelsDir, cardFile)), { recursive: true });
    writeFileSync(path.join(modelsDir, cardFile), markdown);
  }
  if (!opts.dryRun) publishExpert(modelsDir, plan, bytes);
  log(
    opts.dryRun
      ? `dry run: would write ${path.join(modelsDir, plan.entry.file)} (${opts.name}@${plan.entry.version})`
      : `wrote ${path.join(modelsDir, plan.entry.file)} and the manifest entry ${opts.name}@${plan.entry.version}` +
          (plan.replaced ? ` (replacing ${plan.replaced.version}, ${plan.replaced.status})` : ''),
  );
  if (opts.report) {
    mkdirSync(path.dirname(path.resolve(opts.report)), { recursive: true });
    writeFileSync(opts.report, JSON.stringify(report, null, 2) + '\n');
  }
  return { entry: plan.entry, written: !opts.dryRun, modelsDir, report, result, verification };
}
