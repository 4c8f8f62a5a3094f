/**
 * Expert training: two candidate families (regularised linear, small MLP), each
 * with its L2 strength chosen by inner grouped CV, compared by outer grouped CV;
 * optional leave-one-source-out evaluation; a final fit on every row. Pure: data
 * in, model and report out, no files. Deterministic for a given seed.
 *
 * Nesting, so that no reported number saw its own test rows:
 *   outer fold f → hold out fold f; on the rest, pick λ by inner CV over the
 *   remaining folds (log loss), fit, predict fold f → out-of-fold predictions.
 * The family with the better out-of-fold primary metric wins; the MLP has to beat
 * the linear model by `minGain`, because on ~100 clips a small difference is
 * noise and the linear model is the interpretable one.
 */
import type { TaskKind } from '../../core/schemas';
import { TrainingDataError } from './errors';
import { foldIds, groupKFold, splits } from './folds';
import {
  evaluate,
  perSourceEvaluations,
  predictedClasses,
  primaryMetric,
  sourceBootstrap,
  type Evaluation,
  type SourceEvaluation,
} from './metrics';
import { frequencyProbabilities, mixedSources, sourceCheckFlags, type SourceCheck } from './source-check';
import {
  fitModel,
  headFor,
  matrix,
  predictProba,
  takeRows,
  toFloat32,
  type Family,
  type FittedModel,
  type Matrix,
  type ModelShape,
} from './model';

export interface TrainingSet {
  readonly x: Matrix;
  /** Class (or grade) index per row. */
  readonly y: Int32Array;
  /** Patient/series group per row; null when unknown (then every row is its own group). */
  readonly groups: readonly string[] | null;
  /** Outer CV fold per row, from the labels file; null to deal folds from the groups. */
  readonly folds: readonly number[] | null;
  /** Source (site, publisher) per row, for leave-one-source-out; null to skip it. */
  readonly sources: readonly string[] | null;
  /** How errors name each row, e.g. "labels.csv line 17". */
  readonly rowNames: readonly string[];
}

/**
 * Features for the cross-validation only (the final model always fits `x`):
 * - `out-of-fold`: one matrix, each row's features from an extractor that did not
 *   train on that row's fold;
 * - `per-fold`: for each outer fold f, every row's features from the extractor
 *   trained without fold f, so the fold's expert trains and tests on one
 *   extractor's features, as in deployment.
 */
export type CvFeatures =
  | { readonly mode: 'out-of-fold'; readonly x: Matrix }
  | { readonly mode: 'per-fold'; readonly x: ReadonlyMap<number, Matrix> };

/**
 * Features for the leave-one-source-out fits only (`per-source`): for each source
 * s, every row's features from the extractor trained without source s, so the fit
 * that holds s out trains and tests on one extractor that never saw s, as
 * `per-fold` does for the CV. Without them LOSO reads the out-of-fold matrix or
 * the training features, whose extractor saw every source.
 */
export interface LosoFeatures {
  readonly mode: 'per-source';
  readonly x: ReadonlyMap<string, Matrix>;
}

export interface TrainConfig {
  readonly kind: TaskKind;
  readonly labels: readonly string[];
  readonly seed: number;
  /** Folds dealt from the groups when the set has no fold column. @default 5 */
  readonly folds?: number;
  /** @default 16 */
  readonly hidden?: number;
  /** @default [0.001, 0.01, 0.1, 1, 10] */
  readonly linearLambdas?: readonly number[];
  /** @default [0.01, 0.1, 1] */
  readonly mlpLambdas?: readonly number[];
  /** @default 1000 */
  readonly bootstrap?: number;
  /** @default 0.01 */
  readonly minGain?: number;
  /** Which candidates to train. @default ['linear', 'mlp'] */
  readonly families?: readonly Family[];
}

export interface FoldFit {
  readonly fold: number | string;
  readonly trainRows: number;
  readonly testRows: number;
  readonly lambda: number;
  readonly iterations: number;
}

export interface CandidateReport {
  readonly family: Family;
  readonly hidden?: number;
  readonly lambdaGrid: readonly number[];
  readonly folds: readonly FoldFit[];
  readonly evaluation: Evaluation;
  /** The out-of-fold predictions' metrics per source (with a source column): where the pooled number hides a failure. */
  readonly perSource?: readonly SourceEvaluation[];
  readonly seconds: number;
}

export interface LosoReport {
  readonly family: Family;
  /** Which features the LOSO fits read; `per-source`: each source's from an extractor trained without it. */
  readonly features: 'training' | 'out-of-fold' | 'per-source';
  /** Each held-out source: its rows' metrics from the fit that never saw it (bootstrap over its own groups). */
  readonly perSource: readonly {
    source: string;
    rows: number;
    accuracy: number;
    lambda: number;
    perClass: readonly number[];
    evaluation: Evaluation;
  }[];
  /** Metrics of the pooled out-of-source predictions. */
  readonly evaluation: Evaluation;
  readonly seconds: number;
  /** Sources whose held-out rows could not be scored (the rest lacks a class), with why. */
  readonly skipped: readonly { source: string; rows: number; reason: string }[];
}

export interface TrainResult {
  /** The final model (every row, float32 parameters): what gets exported. */
  readonly model: FittedModel;
  readonly chosen: Family;
  readonly selection: {
    readonly metric: string;
    readonly higherIsBetter: boolean;
    readonly values: Partial<Record<Family, number>>;
    readonly rule: string;
  };
  readonly cv: {
    readonly scheme: string;
    readonly folds: number;
    readonly features: 'training' | 'out-of-fold' | 'per-fold';
    readonly innerSelection: string;
  };
  readonly candidates: Partial<Record<Family, CandidateReport>>;
  readonly loso?: LosoReport;
  /** With sources: whether the expert reads the source instead of the finding (source-check.ts). */
  readonly sourceCheck?: SourceCheck;
  readonly final: {
    readonly lambda: number;
    readonly lambdaGrid: readonly number[];
    readonly iterations: number;
    readonly stop: string;
    readonly innerLogLoss: Record<string, number>;
  };
  readonly seconds: { readonly cv: number; readonly loso: number; readonly final: number; readonly total: number };
}

const DEFAULTS = {
  folds: 5,
  hidden: 16,
  // Up to 10: on ~100 noisy clips with ~90 inputs, strong shrinkage often wins (λ=1 was the edge on POCUS).
  linearLambdas: [0.001, 0.01, 0.1, 1, 10],
  mlpLambdas: [0.01, 0.1, 1],
  bootstrap: 1000,
  minGain: 0.01,
};

interface Resolved extends Required<Omit<TrainConfig, 'families'>> {
  readonly families: readonly Family[];
}

function shapeOf(family: Family, cfg: Resolved, inputDim: number): ModelShape {
  return {
    family,
    head: headFor(cfg.kind),
    inputDim,
    classes: cfg.labels.length,
    hidden: family === 'mlp' ? cfg.hidden : 0,
  };
}

/** Mean over the classes present of each class's mean log loss: λ selection that does not ignore rare classes. */
function balancedLogLoss(y: Int32Array, prob: Matrix): number {
  const K = prob.cols;
  const sum = new Array<number>(K).fill(0);
  const count = new Array<number>(K).fill(0);
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!;
    sum[c] = sum[c]! - Math.log(Math.max(prob.data[i * K + c]!, 1e-15));
    count[c] = count[c]! + 1;
  }
  const per = sum.flatMap((s, c) => (count[c]! > 0 ? [s / count[c]!] : []));
  return per.reduce((s, v) => s + v, 0) / per.length;
}

function subsetY(y: Int32Array, rows: readonly number[]): Int32Array {
  return Int32Array.from(rows, (r) => y[r]!);
}

/**
 * Picks λ by CV over `innerFolds` (one fold id per row of x) and fits on all of x.
 * With a one-value grid there is nothing to choose, and with fewer than two inner
 * folds nothing to validate on: the middle of the grid is used.
 */
function fitWithInnerCv(
  shape: ModelShape,
  x: Matrix,
  y: Int32Array,
  innerFolds: readonly number[],
  grid: readonly number[],
  seed: number,
): { model: FittedModel; lambda: number; innerLogLoss: Record<string, number> } {
  const innerLogLoss: Record<string, number> = {};
  let lambda = grid[Math.floor(grid.length / 2)]!;
  if (grid.length > 1 && foldIds(innerFolds).length >= 2) {
    let best = Infinity;
    // Strongest penalty first, and only a strictly better loss replaces it: ties go to the simpler model.
    for (const lam of [...grid].sort((a, b) => b - a)) {
      const prob = new Float64Array(x.rows * shape.classes);
      for (const s of splits(innerFolds)) {
        const m = fitModel(shape, takeRows(x, s.train), subsetY(y, s.train), { lambda: lam, seed });
        const p = predictProba(m, takeRows(x, s.test));
        s.test.forEach((r, i) =>
          prob.set(p.data.subarray(i * shape.classes, (i + 1) * shape.classes), r * shape.classes),
        );
      }
      const loss = balancedLogLoss(y, matrix(x.rows, shape.classes, prob));
      innerLogLoss[String(lam)] = Math.round(loss * 1e4) / 1e4;
      if (loss < best) {
        best = loss;
        lambda = lam;
      }
    }
  }
  return { model: fitModel(shape, x, y, { lambda, seed }), lambda, innerLogLoss };
}

/** Inner folds for a training subset: the labels file's folds when there are some, else dealt from its groups. */
function innerFoldsFor(set: TrainingSet, rows: readonly number[], cfg: Resolved): number[] {
  if (set.folds) return rows.map((r) => set.folds![r]!);
  const groups = rows.map((r) => (set.groups ? set.groups[r]! : `row-${r}`));
  const k = Math.min(Math.max(2, cfg.folds - 1), new Set(groups).size);
  return k >= 2 ? groupKFold(groups, subsetY(set.y, rows), cfg.labels.length, k) : rows.map(() => 0);
}

/** Every class must be in at least two outer folds, or some fold's training data would lack it. */
function checkClasses(set: TrainingSet, outer: readonly number[], cfg: Resolved): void {
  const K = cfg.labels.length;
  const present = new Set(set.y);
  if (present.size < 2) {
    throw new TrainingDataError(
      `Only ${present.size === 0 ? 'no' : `one`} class among the ${set.y.length} labelled rows` +
        (present.size === 1 ? ` (all "${cfg.labels[[...present][0]!]}")` : '') +
        '; training needs at least 2.',
    );
  }
  for (let c = 0; c < K; c++) {
    const rows = [...set.y.keys()].filter((i) => set.y[i] === c);
    const folds = new Set(rows.map((i) => outer[i]!));
    if (folds.size < 2) {
      const where =
        rows.length === 0
          ? ''
          : ` (${rows
              .slice(0, 5)
              .map((i) => set.rowNames[i])
              .join(', ')})`;
      throw new TrainingDataError(
        `Class "${cfg.labels[c]}" has ${rows.length} row${rows.length === 1 ? '' : 's'}${where}` +
          (rows.length > 0 ? ` in only ${folds.size} fold` : '') +
          '; cross-validation needs every class in at least 2 folds (2 groups). ' +
          (rows.length === 0
            ? 'Drop the class from --classes, or label rows with it.'
            : 'Label more clips of it, or merge it into a neighbouring class.'),
      );
    }
  }
}

/** One feature set per fold (or source) must cover every row, with the training features' columns. */
function checkPerSet<K extends number | string>(
  sets: ReadonlyMap<K, Matrix>,
  ids: readonly K[],
  what: string,
  unit: 'fold' | 'source',
  shape: { readonly rows: number; readonly cols: number },
): void {
  for (const id of ids) {
    const x = sets.get(id);
    if (!x) throw new TrainingDataError(`${what} has no feature set for ${unit} ${id}.`);
    if (x.rows !== shape.rows || x.cols !== shape.cols) {
      throw new TrainingDataError(
        `${what} for ${unit} ${id} is ${x.rows}×${x.cols}, but the training features are ${shape.rows}×${shape.cols}.`,
      );
    }
  }
}

export function trainExpert(
  set: TrainingSet,
  config: TrainConfig,
  cvFeatures?: CvFeatures,
  losoFeatures?: LosoFeatures,
): TrainResult {
  const t0 = performance.now();
  const cfg: Resolved = {
    kind: config.kind,
    labels: config.labels,
    seed: config.seed,
    folds: config.folds ?? DEFAULTS.folds,
    hidden: config.hidden ?? DEFAULTS.hidden,
    linearLambdas: config.linearLambdas ?? DEFAULTS.linearLambdas,
    mlpLambdas: config.mlpLambdas ?? DEFAULTS.mlpLambdas,
    bootstrap: config.bootstrap ?? DEFAULTS.bootstrap,
    minGain: config.minGain ?? DEFAULTS.minGain,
    families: config.families ?? ['linear', 'mlp'],
  };
  const n = set.y.length;
  const K = cfg.labels.length;
  if (set.x.rows !== n) throw new RangeError(`${set.x.rows} feature rows for ${n} labels`);
  const groups = set.groups ?? Array.from({ length: n }, (_, i) => `row-${i}`);
  const distinctGroups = new Set(groups).size;
  const outer = set.folds ? [...set.folds] : groupKFold(groups, set.y, K, Math.min(cfg.folds, distinctGroups));
  if (foldIds(outer).length < 2) {
    throw new TrainingDataError(
      set.folds
        ? 'The fold column has a single fold; cross-validation needs at least 2.'
        : `Only ${distinctGroups} group${distinctGroups === 1 ? '' : 's'}: cross-validation needs at least 2.`,
    );
  }
  checkClasses(set, outer, cfg);
  if (cvFeatures?.mode === 'per-fold') {
    checkPerSet(cvFeatures.x, foldIds(outer), '--cv-features', 'fold', set.x);
  } else if (cvFeatures && (cvFeatures.x.rows !== n || cvFeatures.x.cols !== set.x.cols)) {
    throw new TrainingDataError(
      `--cv-features is ${cvFeatures.x.rows}×${cvFeatures.x.cols}, but the training features are ${n}×${set.x.cols}.`,
    );
  }
  if (losoFeatures) {
    if (!set.sources) {
      throw new TrainingDataError(
        '--loso-features needs --source-column: each source set must come from an extractor trained without that source.',
      );
    }
    checkPerSet(losoFeatures.x, [...new Set(set.sources)].sort(), '--loso-features', 'source', set.x);
  }
  const cvX = (fold: number): Matrix =>
    !cvFeatures ? set.x : cvFeatures.mode === 'out-of-fold' ? cvFeatures.x : cvFeatures.x.get(fold)!;
  const clusters = set.groups ? [...set.groups] : null;
  const boot = { resamples: cfg.bootstrap, seed: cfg.seed };

  // Outer CV of each candidate family.
  const candidates: Partial<Record<Family, CandidateReport>> = {};
  for (const family of cfg.families) {
    const started = performance.now();
    const shape = shapeOf(family, cfg, set.x.cols);
    const grid = family === 'linear' ? cfg.linearLambdas : cfg.mlpLambdas;
    const prob = new Float64Array(n * K);
    const fits: FoldFit[] = [];
    for (const s of splits(outer)) {
      const x = cvX(s.fold);
      const fit = fitWithInnerCv(
        shape,
        takeRows(x, s.train),
        subsetY(set.y, s.train),
        innerFoldsFor(set, s.train, cfg),
        grid,
        cfg.seed,
      );
      const p = predictProba(fit.model, takeRows(x, s.test));
      s.test.forEach((r, i) => prob.set(p.data.subarray(i * K, (i + 1) * K), r * K));
      fits.push({
        fold: s.fold,
        trainRows: s.train.length,
        testRows: s.test.length,
        lambda: fit.lambda,
        iterations: fit.model.iterations,
      });
    }
    candidates[family] = {
      family,
      ...(family === 'mlp' ? { hidden: cfg.hidden } : {}),
      lambdaGrid: grid,
      folds: fits,
      evaluation: evaluate(cfg.kind, cfg.labels, set.y, matrix(n, K, prob), clusters, boot),
      ...(set.sources
        ? {
            perSource: perSourceEvaluations(
              cfg.kind,
              cfg.labels,
              set.y,
              matrix(n, K, prob),
              set.sources,
              clusters,
              boot,
            ),
          }
        : {}),
      seconds: round3((performance.now() - started) / 1000),
    };
  }
  const tCv = performance.now();

  // Selection.
  const primary = primaryMetric(cfg.kind);
  const values: Partial<Record<Family, number>> = {};
  for (const f of cfg.families) values[f] = candidates[f]!.evaluation.metrics[primary.name]?.value ?? NaN;
  const chosen: Family =
    cfg.families.length > 1 ? chooseFamily(values, primary.higherIsBetter, cfg.minGain) : cfg.families[0]!;

  // Leave one source out, for the chosen family (a single source has nothing to leave out).
  let loso: LosoReport | undefined;
  if (set.sources && new Set(set.sources).size >= 2) {
    // Per-source sets: the fit holding source s out trains and tests on the extractor trained without s.
    // Without them no extractor left a whole source out, so LOSO reads the least leaky features there
    // are: the out-of-fold matrix when given; else the training features (the per-fold sets are
    // each in-sample for four of five folds).
    const fallback = cvFeatures?.mode === 'out-of-fold' ? cvFeatures.x : set.x;
    loso = leaveOneSourceOut(
      set,
      cfg,
      chosen,
      clusters,
      losoFeatures ? (source) => losoFeatures.x.get(source)! : () => fallback,
      losoFeatures ? 'per-source' : cvFeatures?.mode === 'out-of-fold' ? 'out-of-fold' : 'training',
    );
  }
  const sourceCheck = set.sources
    ? runSourceCheck(set, cfg, outer, cvX, candidates[chosen]!, clusters, primary)
    : undefined;
  const tLoso = performance.now();

  // Final model: every row of the training features, λ by CV over the outer folds.
  const shape = shapeOf(chosen, cfg, set.x.cols);
  const finalGrid = chosen === 'linear' ? cfg.linearLambdas : cfg.mlpLambdas;
  const final = fitWithInnerCv(shape, set.x, set.y, outer, finalGrid, cfg.seed);
  const tEnd = performance.now();

  const featuresMode = !cvFeatures ? 'training' : cvFeatures.mode;
  return {
    model: toFloat32(final.model),
    chosen,
    selection: {
      metric: primary.name,
      higherIsBetter: primary.higherIsBetter,
      values,
      rule:
        cfg.families.length > 1
          ? `the MLP is chosen only if its out-of-fold ${primary.name} beats the linear model's by at least ${cfg.minGain}`
          : `only ${chosen} was trained`,
    },
    cv: {
      scheme: set.folds
        ? `grouped ${foldIds(outer).length}-fold cross-validation on the labels file's fold column`
        : `grouped ${foldIds(outer).length}-fold cross-validation, folds dealt from ${set.groups ? 'the group column' : 'single rows (no group column: clips of one patient may straddle folds)'} (stratified by class, deterministic)`,
      folds: foldIds(outer).length,
      features: featuresMode,
      innerSelection:
        'λ (L2) chosen per outer fold by inner CV over the remaining folds, minimising class-balanced log loss; ties go to the larger λ',
    },
    candidates,
    ...(loso ? { loso } : {}),
    ...(sourceCheck ? { sourceCheck } : {}),
    final: {
      lambda: final.lambda,
      lambdaGrid: finalGrid,
      iterations: final.model.iterations,
      stop: final.model.stop,
      innerLogLoss: final.innerLogLoss,
    },
    seconds: {
      cv: round3((tCv - t0) / 1000),
      loso: round3((tLoso - tCv) / 1000),
      final: round3((tEnd - tLoso) / 1000),
      total: round3((tEnd - t0) / 1000),
    },
  };
}

/**
 * The source check (source-check.ts) under the expert's own outer folds and features: a linear source
 * classifier (λ by the same inner CV), the label from the source alone and from neither, and the chosen
 * family's out-of-fold predictions within each source.
 */
function runSourceCheck(
  set: TrainingSet,
  cfg: Resolved,
  outer: readonly number[],
  cvX: (fold: number) => Matrix,
  chosen: CandidateReport,
  clusters: string[] | null,
  primary: { name: string; higherIsBetter: boolean },
): SourceCheck {
  const sources = set.sources!;
  const names = [...new Set(sources)].sort();
  const K = cfg.labels.length;
  const boot = { resamples: cfg.bootstrap, seed: cfg.seed };
  const groups = set.groups ?? sources.map((_, i) => `row-${i}`);
  const perSource = names.map((source) => {
    const rows = sources.flatMap((s, i) => (s === source ? [i] : []));
    return {
      source,
      rows: rows.length,
      groups: new Set(rows.map((r) => groups[r]!)).size,
      perClass: cfg.labels.map((_, c) => rows.filter((r) => set.y[r] === c).length),
    };
  });
  let classifier: SourceCheck['classifier'];
  if (names.length >= 2) {
    const S = names.length;
    const task = S === 2 ? 'binary' : 'classification';
    const ys = Int32Array.from(sources, (s) => names.indexOf(s));
    const shape: ModelShape = { family: 'linear', head: headFor(task), inputDim: set.x.cols, classes: S, hidden: 0 };
    const prob = new Float64Array(ys.length * S);
    for (const s of splits(outer)) {
      const x = cvX(s.fold);
      const fit = fitWithInnerCv(
        shape,
        takeRows(x, s.train),
        subsetY(ys, s.train),
        innerFoldsFor(set, s.train, cfg),
        cfg.linearLambdas,
        cfg.seed,
      );
      const p = predictProba(fit.model, takeRows(x, s.test));
      s.test.forEach((r, i) => prob.set(p.data.subarray(i * S, (i + 1) * S), r * S));
    }
    classifier = {
      family: 'linear',
      task,
      labels: names,
      chance: round3(1 / S),
      evaluation: evaluate(task, names, ys, matrix(ys.length, S, prob), clusters, boot),
    };
  }
  const check = {
    sources: perSource,
    mixedSources: mixedSources(perSource),
    ...(classifier ? { classifier } : {}),
    sourceOnly: evaluate(cfg.kind, cfg.labels, set.y, frequencyProbabilities(set.y, K, outer, sources), clusters, boot),
    noSource: evaluate(cfg.kind, cfg.labels, set.y, frequencyProbabilities(set.y, K, outer, null), clusters, boot),
    withinSource: chosen.perSource ?? [],
  };
  const verdict = sourceCheckFlags({ kind: cfg.kind, labels: cfg.labels, primary, cv: chosen.evaluation, check });
  return { ...check, ...verdict };
}

function leaveOneSourceOut(
  set: TrainingSet,
  cfg: Resolved,
  family: Family,
  clusters: string[] | null,
  /** The features the fit holding `source` out trains and tests on. */
  xFor: (source: string) => Matrix,
  features: LosoReport['features'],
): LosoReport {
  const started = performance.now();
  const n = set.y.length;
  const K = cfg.labels.length;
  const sources = set.sources!;
  const shape = shapeOf(family, cfg, set.x.cols);
  const grid = family === 'linear' ? cfg.linearLambdas : cfg.mlpLambdas;
  const prob = new Float64Array(n * K);
  const scored: number[] = [];
  const perSource: LosoReport['perSource'][number][] = [];
  const skipped: { source: string; rows: number; reason: string }[] = [];
  for (const source of [...new Set(sources)].sort()) {
    const test = sources.flatMap((s, i) => (s === source ? [i] : []));
    const train = sources.flatMap((s, i) => (s !== source ? [i] : []));
    const trainClasses = new Set(train.map((r) => set.y[r]!));
    if (trainClasses.size < 2) {
      skipped.push({ source, rows: test.length, reason: 'the other sources hold fewer than 2 classes' });
      continue;
    }
    const x = xFor(source);
    const fit = fitWithInnerCv(
      shape,
      takeRows(x, train),
      subsetY(set.y, train),
      innerFoldsFor(set, train, cfg),
      grid,
      cfg.seed,
    );
    const p = predictProba(fit.model, takeRows(x, test));
    const pred = predictedClasses(cfg.kind, p);
    let correct = 0;
    test.forEach((r, i) => {
      prob.set(p.data.subarray(i * K, (i + 1) * K), r * K);
      scored.push(r);
      if (pred[i] === set.y[r]) correct++;
    });
    const ys = subsetY(set.y, test);
    perSource.push({
      source,
      rows: test.length,
      accuracy: round3(correct / test.length),
      lambda: fit.lambda,
      perClass: cfg.labels.map((_, c) => ys.filter((v) => v === c).length),
      evaluation: evaluate(
        cfg.kind,
        cfg.labels,
        ys,
        p,
        clusters ? test.map((r) => clusters[r]!) : null,
        sourceBootstrap(test, clusters, { resamples: cfg.bootstrap, seed: cfg.seed }),
      ),
    });
  }
  scored.sort((a, b) => a - b);
  const probScored = new Float64Array(scored.length * K);
  scored.forEach((r, i) => probScored.set(prob.subarray(r * K, (r + 1) * K), i * K));
  return {
    family,
    features,
    perSource,
    evaluation: evaluate(
      cfg.kind,
      cfg.labels,
      subsetY(set.y, scored),
      matrix(scored.length, K, probScored),
      clusters ? scored.map((r) => clusters[r]!) : null,
      { resamples: cfg.bootstrap, seed: cfg.seed },
    ),
    seconds: round3((performance.now() - started) / 1000),
    skipped,
  };
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/**
 * The selection rule: the MLP wins only when its primary metric beats the linear model's by at least
 * `minGain` (higher or lower, as the metric is read); a non-finite linear value loses to a finite MLP.
 * The metrics are rounded to 4 decimals before they get here, so a gain of exactly `minGain` (0.71
 * against 0.70) must count as reached: the comparison allows 1e-9 of floating-point slack.
 */
export function chooseFamily(
  values: Partial<Record<Family, number>>,
  higherIsBetter: boolean,
  minGain: number,
): Family {
  const lin = values.linear ?? NaN;
  const mlp = values.mlp ?? NaN;
  if (!Number.isFinite(mlp)) return 'linear';
  if (!Number.isFinite(lin)) return 'mlp';
  const gain = higherIsBetter ? mlp - lin : lin - mlp;
  return gain >= minGain - 1e-9 ? 'mlp' : 'linear';
}
