/**
 * Metrics of out-of-fold predictions, with percentile bootstrap 95% intervals.
 *
 * Predictions are read the way core/expert-output.ts reports them to users: the
 * argmax label (classification), the argmax grade (ordinal `score`), and
 * probability ≥ 0.5 (binary `label`), so the numbers describe what a user sees.
 *
 * The bootstrap resamples whole groups (clusters) when groups are known: clips of
 * one patient or series are correlated, and resampling them one by one would
 * give intervals that are too narrow.
 */
import { quantileSorted } from '../../core/features';
import type { TaskKind } from '../../core/schemas';
import { mulberry32 } from '../onnx/graph';
import type { Matrix } from './model';

export interface Interval {
  readonly value: number;
  /** Percentile bootstrap interval; absent when the metric is undefined on the full set. */
  readonly ci95?: readonly [number, number];
}

/** Index of the largest value; the first one on ties, like core/expert-output.ts. */
export function argmaxRow(prob: Matrix, i: number): number {
  let best = 0;
  for (let c = 1; c < prob.cols; c++) if (prob.data[i * prob.cols + c]! > prob.data[i * prob.cols + best]!) best = c;
  return best;
}

/** Predicted class per row, as the expert output reports it. */
export function predictedClasses(kind: TaskKind, prob: Matrix): Int32Array {
  return Int32Array.from({ length: prob.rows }, (_, i) =>
    kind === 'binary' ? (prob.data[i * 2 + 1]! >= 0.5 ? 1 : 0) : argmaxRow(prob, i),
  );
}

export function confusionMatrix(y: ArrayLike<number>, pred: ArrayLike<number>, classes: number): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < y.length; i++) m[y[i]!]![pred[i]!]! += 1;
  return m;
}

/** Area under the ROC curve by the Mann–Whitney statistic, ties counted half. NaN without both classes. */
export function auc(y: ArrayLike<number>, score: ArrayLike<number>): number {
  const idx = Array.from({ length: y.length }, (_, i) => i).sort((a, b) => score[a]! - score[b]!);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && score[idx[j + 1]!] === score[idx[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[idx[k]!] === 1) {
        pos++;
        rankSum += avgRank;
      }
    }
    i = j + 1;
  }
  const neg = y.length - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Quadratic weighted kappa between true and predicted grades 0..K−1. */
export function quadraticKappa(y: ArrayLike<number>, pred: ArrayLike<number>, classes: number): number {
  const n = y.length;
  const o = confusionMatrix(y, pred, classes);
  const rowSum = o.map((r) => r.reduce((s, v) => s + v, 0));
  const colSum = o[0]!.map((_, j) => o.reduce((s, r) => s + r[j]!, 0));
  let num = 0;
  let den = 0;
  for (let i = 0; i < classes; i++) {
    for (let j = 0; j < classes; j++) {
      const w = (i - j) ** 2 / Math.max(1, (classes - 1) ** 2);
      num += w * o[i]![j]!;
      den += (w * rowSum[i]! * colSum[j]!) / n;
    }
  }
  return den > 0 ? 1 - num / den : NaN;
}

/** Bins of the expected calibration error: 10 equal-width bins of confidence over [0, 1]. */
export const ECE_BINS = 10;

/** How the cards and EVALUATION.md state the binning, so the number can be recomputed. */
export const ECE_DEFINITION =
  `top-label expected calibration error: ${ECE_BINS} equal-width bins of the reported label's probability ` +
  '(argmax; binary: max(p, 1 − p), the label the 0.5 threshold reports), Σ_b (n_b/n)·|accuracy_b − mean confidence_b|';

/**
 * Top-label expected calibration error (Guo et al. 2017): rows binned by the
 * probability of the label they are reported as (`predictedClasses`), in
 * `bins` equal-width bins of [0, 1] (a confidence of exactly 1 goes in the last
 * bin); the weighted mean gap between each bin's accuracy and its mean
 * confidence. 0 is perfect. On few rows it is biased upwards (each bin's
 * accuracy is noisy), so it is reported with its bootstrap interval.
 */
export function expectedCalibrationError(kind: TaskKind, y: ArrayLike<number>, prob: Matrix, bins = ECE_BINS): number {
  const n = prob.rows;
  if (n === 0) return NaN;
  const pred = predictedClasses(kind, prob);
  const count = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  const correct = new Array<number>(bins).fill(0);
  for (let i = 0; i < n; i++) {
    const c = prob.data[i * prob.cols + pred[i]!]!;
    const b = Math.min(bins - 1, Math.max(0, Math.floor(c * bins)));
    count[b] = count[b]! + 1;
    conf[b] = conf[b]! + c;
    if (pred[i] === y[i]) correct[b] = correct[b]! + 1;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b]! > 0) ece += Math.abs(correct[b]! - conf[b]!) / n;
  return ece;
}

/**
 * Every scalar metric of one prediction set, flat (`sensitivity.covid`), so the
 * bootstrap can treat them alike. NaN where a metric is undefined on these rows.
 */
export function scalarMetrics(
  kind: TaskKind,
  labels: readonly string[],
  y: Int32Array,
  prob: Matrix,
): Record<string, number> {
  const K = labels.length;
  const n = y.length;
  const pred = predictedClasses(kind, prob);
  const cm = confusionMatrix(y, pred, K);
  const support = cm.map((r) => r.reduce((s, v) => s + v, 0));
  const predicted = cm[0]!.map((_, j) => cm.reduce((s, r) => s + r[j]!, 0));
  const out: Record<string, number> = {};
  let correct = 0;
  for (let c = 0; c < K; c++) correct += cm[c]![c]!;
  out.accuracy = n > 0 ? correct / n : NaN;
  const recalls: number[] = [];
  const f1s: number[] = [];
  for (let c = 0; c < K; c++) {
    const tp = cm[c]![c]!;
    const fn = support[c]! - tp;
    const fp = predicted[c]! - tp;
    const tn = n - tp - fn - fp;
    const sens = support[c]! > 0 ? tp / support[c]! : NaN;
    const spec = tn + fp > 0 ? tn / (tn + fp) : NaN;
    if (support[c]! > 0) recalls.push(sens);
    // F1 over classes that occur in the truth or the predictions (scikit-learn's macro average).
    if (support[c]! > 0 || predicted[c]! > 0) f1s.push((2 * tp) / (2 * tp + fp + fn));
    // Ordinal grades get their recall too: a grade the model never predicts is a failure mode to state.
    if (kind === 'ordinal') out[`sensitivity.${labels[c]}`] = sens;
    if (kind === 'classification') {
      out[`sensitivity.${labels[c]}`] = sens;
      out[`specificity.${labels[c]}`] = spec;
      out[`f1.${labels[c]}`] = support[c]! > 0 || predicted[c]! > 0 ? (2 * tp) / (2 * tp + fp + fn) : NaN;
    }
  }
  out.balancedAccuracy = recalls.length > 0 ? recalls.reduce((s, v) => s + v, 0) / recalls.length : NaN;
  if (kind === 'classification') out.macroF1 = f1s.length > 0 ? f1s.reduce((s, v) => s + v, 0) / f1s.length : NaN;
  if (kind === 'ordinal') {
    let abs = 0;
    let within = 0;
    let absExpected = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.abs(pred[i]! - y[i]!);
      abs += e;
      if (e <= 1) within++;
      let expected = 0;
      for (let c = 0; c < K; c++) expected += c * prob.data[i * K + c]!;
      absExpected += Math.abs(expected - y[i]!);
    }
    out.mae = n > 0 ? abs / n : NaN;
    out.within1 = n > 0 ? within / n : NaN;
    out.maeExpected = n > 0 ? absExpected / n : NaN;
    out.qwk = quadraticKappa(y, pred, K);
  }
  if (kind === 'binary') {
    const score = Float64Array.from({ length: n }, (_, i) => prob.data[i * 2 + 1]!);
    out.auc = auc(y, score);
    out.sensitivity = support[1]! > 0 ? cm[1]![1]! / support[1]! : NaN;
    out.specificity = support[0]! > 0 ? cm[0]![0]! / support[0]! : NaN;
  }
  let ll = 0;
  for (let i = 0; i < n; i++) ll -= Math.log(Math.max(prob.data[i * K + y[i]!]!, 1e-15));
  out.logLoss = n > 0 ? ll / n : NaN;
  out.ece = expectedCalibrationError(kind, y, prob);
  return out;
}

export interface BootstrapOptions {
  /** Resamples. @default 1000 */
  readonly resamples?: number;
  readonly seed: number;
}

/**
 * Percentile intervals of `fn` over resamples of whole clusters (rows sharing a
 * cluster id are drawn together). A resample where a metric is undefined (e.g.
 * AUC with one class) is left out of that metric's interval only.
 */
export function bootstrapIntervals(
  clusters: readonly string[],
  fn: (rows: number[]) => Record<string, number>,
  opts: BootstrapOptions,
): Record<string, [number, number]> {
  const B = opts.resamples ?? 1000;
  const byCluster = new Map<string, number[]>();
  clusters.forEach((c, i) => byCluster.set(c, [...(byCluster.get(c) ?? []), i]));
  const members = [...byCluster.keys()].sort().map((k) => byCluster.get(k)!);
  const rand = mulberry32(opts.seed);
  const samples = new Map<string, number[]>();
  for (let b = 0; b < B; b++) {
    const rows: number[] = [];
    for (let g = 0; g < members.length; g++) rows.push(...members[Math.floor(rand() * members.length)]!);
    for (const [k, v] of Object.entries(fn(rows))) {
      if (!Number.isFinite(v)) continue;
      let arr = samples.get(k);
      if (!arr) samples.set(k, (arr = []));
      arr.push(v);
    }
  }
  const out: Record<string, [number, number]> = {};
  for (const [k, arr] of samples) {
    arr.sort((a, b) => a - b);
    out[k] = [quantileSorted(arr, 0.025), quantileSorted(arr, 0.975)];
  }
  return out;
}

export interface Evaluation {
  readonly rows: number;
  readonly metrics: Record<string, Interval>;
  /** confusion.matrix[true][predicted], in `labels` order. */
  readonly confusion: { readonly labels: readonly string[]; readonly matrix: number[][] };
  readonly bootstrap: { readonly unit: 'group' | 'clip'; readonly resamples: number; readonly seed: number };
}

const round = (v: number) => Math.round(v * 1e4) / 1e4;

/** Metrics of one prediction set with their bootstrap intervals. */
export function evaluate(
  kind: TaskKind,
  labels: readonly string[],
  y: Int32Array,
  prob: Matrix,
  clusters: readonly string[] | null,
  opts: BootstrapOptions,
): Evaluation {
  const point = scalarMetrics(kind, labels, y, prob);
  const unit = clusters ? 'group' : 'clip';
  const ids = clusters ?? Array.from({ length: y.length }, (_, i) => String(i));
  const K = labels.length;
  const cis = bootstrapIntervals(
    ids,
    (rows) => {
      const yb = Int32Array.from(rows, (r) => y[r]!);
      const pb = new Float64Array(rows.length * K);
      rows.forEach((r, i) => pb.set(prob.data.subarray(r * K, (r + 1) * K), i * K));
      return scalarMetrics(kind, labels, yb, { data: pb, rows: rows.length, cols: K });
    },
    opts,
  );
  const metrics: Record<string, Interval> = {};
  for (const [k, v] of Object.entries(point)) {
    if (!Number.isFinite(v)) continue;
    const ci = cis[k];
    metrics[k] = ci ? { value: round(v), ci95: [round(ci[0]), round(ci[1])] } : { value: round(v) };
  }
  return {
    rows: y.length,
    metrics,
    confusion: { labels, matrix: confusionMatrix(y, predictedClasses(kind, prob), K) },
    bootstrap: { unit, resamples: opts.resamples ?? 1000, seed: opts.seed },
  };
}

/** The metric that picks the model family (and how to compare it). */
export function primaryMetric(kind: TaskKind): { name: string; higherIsBetter: boolean } {
  switch (kind) {
    case 'classification':
      return { name: 'balancedAccuracy', higherIsBetter: true };
    case 'ordinal':
      return { name: 'mae', higherIsBetter: false };
    case 'binary':
      return { name: 'auc', higherIsBetter: true };
  }
}

export interface SourceEvaluation {
  readonly source: string;
  readonly rows: number;
  /** Rows per label in this source, in `labels` order: a source with one class has no AUC or balanced accuracy across classes. */
  readonly perClass: readonly number[];
  readonly evaluation: Evaluation;
}

/**
 * The metrics of each source's rows of one prediction set, each with its own
 * bootstrap (over that source's groups, as `evaluate` does): where a pooled
 * number hides a source the model fails on. Sources in name order.
 */
export function perSourceEvaluations(
  kind: TaskKind,
  labels: readonly string[],
  y: Int32Array,
  prob: Matrix,
  sources: readonly string[],
  clusters: readonly string[] | null,
  opts: BootstrapOptions,
): SourceEvaluation[] {
  const K = labels.length;
  return [...new Set(sources)].sort().map((source) => {
    const rows = sources.flatMap((s, i) => (s === source ? [i] : []));
    const ys = Int32Array.from(rows, (r) => y[r]!);
    const p = new Float64Array(rows.length * K);
    rows.forEach((r, i) => p.set(prob.data.subarray(r * K, (r + 1) * K), i * K));
    const perClass = labels.map((_, c) => rows.filter((r) => y[r] === c).length);
    return {
      source,
      rows: rows.length,
      perClass,
      evaluation: evaluate(
        kind,
        labels,
        ys,
        { data: p, rows: rows.length, cols: K },
        clusters ? rows.map((r) => clusters[r]!) : null,
        sourceBootstrap(rows, clusters, opts),
      ),
    };
  });
}

/**
 * The bootstrap options for one source's rows: none (no interval) when they form a single group,
 * where resampling that group would only give the degenerate interval [v, v].
 */
export function sourceBootstrap(
  rows: readonly number[],
  clusters: readonly string[] | null,
  opts: BootstrapOptions,
): BootstrapOptions {
  const groups = new Set(rows.map((r) => (clusters ? clusters[r]! : String(r)))).size;
  return groups < 2 ? { ...opts, resamples: 0 } : opts;
}
