/**
 * Does the expert read the source instead of the finding? When labels are confounded with where the
 * images came from (chest X-rays: almost every normal is pediatric, almost every COVID adult), a model
 * can separate the classes by hospital, age or scanner and still score well under grouped CV. Three
 * numbers, all under the expert's own outer folds, answer it together:
 *
 * - a source classifier on the same features (how well the features identify the source at all);
 * - the label predicted from the source alone (each training fold's class frequencies within each
 *   source): how much of the task the source explains, against the same predictor without the source;
 * - the expert's out-of-fold predictions scored within each source that holds more than one class: a
 *   task that pools sources must hold inside each of them.
 *
 * The verdict (`sourceCheckFlags`) is stated from those numbers with fixed thresholds, like the failure
 * modes. No quotes or apostrophes: the statements go into cards that the HTML report escapes.
 */
import type { TaskKind } from '../../core/schemas';
import { splits } from './folds';
import type { Evaluation, Interval, SourceEvaluation } from './metrics';
import { matrix, type Matrix } from './model';

export const SOURCE_CHECK_THRESHOLDS = {
  /**
   * The source explains the task when the source-only predictor beats the no-source predictor by more than
   * this on the primary metric and comes within this of the expert (or beats it).
   */
  margin: 0.05,
  /** A source is scored on its own when it holds at least this many rows and more than one class. */
  minRows: 10,
  /** ... and at least this many rows of each of two classes (fewer: its interval says nothing). */
  minPerClass: 3,
  /** The expert does not hold within a source when its primary metric there is worse than pooled by more than this. */
  withinGap: 0.1,
} as const;

export interface SourceCheck {
  /** Each source: rows and groups, and rows per label in `labels` order. */
  readonly sources: readonly { source: string; rows: number; groups: number; perClass: readonly number[] }[];
  /** Sources holding at least two classes (minRows, minPerClass): where the task can be scored within a source. */
  readonly mixedSources: readonly string[];
  /** Absent with a single source. */
  readonly classifier?: {
    readonly family: 'linear';
    readonly task: 'binary' | 'classification';
    readonly labels: readonly string[];
    /** Balanced accuracy a classifier that ignores the features reaches: 1 / sources. */
    readonly chance: number;
    readonly evaluation: Evaluation;
  };
  /** The label from the source alone, and from neither (training-fold class frequencies), same folds, same metrics. */
  readonly sourceOnly: Evaluation;
  readonly noSource: Evaluation;
  /** The expert's (chosen family's) out-of-fold predictions scored within each source. */
  readonly withinSource: readonly SourceEvaluation[];
  /** What the numbers say, one sentence each; empty when the check found nothing. */
  readonly flags: readonly string[];
  /** One sentence for the card: the figures the verdict rests on. */
  readonly summary: string;
}

/**
 * Out-of-fold probabilities of the label from the training rows' class frequencies (+1 per class):
 * within each row's source when `sources` is given (a source absent from the training folds falls back
 * to all training rows), else over all training rows. Ordinal and classification read the argmax of
 * these; binary the positive column.
 */
export function frequencyProbabilities(
  y: Int32Array,
  classes: number,
  outer: readonly number[],
  sources: readonly string[] | null,
): Matrix {
  const prob = matrix(y.length, classes);
  for (const s of splits(outer)) {
    const all = new Array<number>(classes).fill(1);
    const by = new Map<string, number[]>();
    for (const r of s.train) {
      all[y[r]!] = all[y[r]!]! + 1;
      if (sources) {
        const key = sources[r]!;
        const c = by.get(key) ?? new Array<number>(classes).fill(1);
        c[y[r]!] = c[y[r]!]! + 1;
        by.set(key, c);
      }
    }
    for (const r of s.test) {
      const c = (sources && by.get(sources[r]!)) || all;
      const total = c.reduce((a, v) => a + v, 0);
      c.forEach((v, k) => (prob.data[r * classes + k] = v / total));
    }
  }
  return prob;
}

/** Sources that hold enough rows of at least two classes to score the task within them. */
export function mixedSources(
  sources: readonly { source: string; rows: number; perClass: readonly number[] }[],
): string[] {
  const T = SOURCE_CHECK_THRESHOLDS;
  return sources
    .filter((s) => s.rows >= T.minRows && s.perClass.filter((v) => v >= T.minPerClass).length >= 2)
    .map((s) => s.source);
}

const f2 = (m: Interval | undefined) =>
  m ? `${m.value.toFixed(2)}${m.ci95 ? ` [${m.ci95[0].toFixed(2)}, ${m.ci95[1].toFixed(2)}]` : ''}` : 'n/a';

export interface FlagInputs {
  readonly kind: TaskKind;
  readonly labels: readonly string[];
  readonly primary: { readonly name: string; readonly higherIsBetter: boolean };
  /** The expert's (chosen family's) pooled out-of-fold evaluation. */
  readonly cv: Evaluation;
  readonly check: Omit<SourceCheck, 'flags' | 'summary'>;
}

/** The verdict: sentences naming what the numbers show, with the numbers. */
export function sourceCheckFlags({ primary, cv, check }: FlagInputs): { flags: string[]; summary: string } {
  const T = SOURCE_CHECK_THRESHOLDS;
  const better = (a: number, b: number) => (primary.higherIsBetter ? a - b : b - a);
  const p = (e: Evaluation) => e.metrics[primary.name];
  const flags: string[] = [];
  const expert = p(cv);
  const sourceOnly = p(check.sourceOnly);
  const noSource = p(check.noSource);
  const n = check.sources.length;

  if (n >= 2 && check.mixedSources.length === 0) {
    flags.push(
      `No source holds two classes (at least ${T.minPerClass} rows of each): the task cannot be told apart from the source with these data, so no number here shows that the model reads the finding rather than the source.`,
    );
  }
  if (
    n >= 2 &&
    expert &&
    sourceOnly &&
    noSource &&
    better(sourceOnly.value, noSource.value) > T.margin &&
    better(sourceOnly.value, expert.value) > -T.margin
  ) {
    flags.push(
      `The source alone explains the task: the label predicted from the source alone reaches ${primary.name} ${f2(sourceOnly)} ` +
        `against ${f2(expert)} for the expert (and ${f2(noSource)} without the source).`,
    );
  }
  for (const s of check.withinSource) {
    if (!check.mixedSources.includes(s.source) || n < 2) continue;
    const within = p(s.evaluation);
    if (expert && within && better(expert.value, within.value) > T.withinGap) {
      flags.push(
        `Does not hold within source ${s.source}: ${primary.name} ${f2(within)} on its ${s.rows} rows against ${f2(expert)} pooled.`,
      );
    }
  }

  const parts: string[] = [];
  if (n < 2) {
    parts.push(`One source (${check.sources[0]?.source ?? 'none'}): the label cannot be read from the source.`);
  } else {
    const c = check.classifier;
    if (c) {
      const key = c.task === 'binary' ? 'auc' : 'balancedAccuracy';
      parts.push(
        `A linear source classifier on the same features reaches ${key === 'auc' ? 'AUC' : 'balanced accuracy'} ${f2(c.evaluation.metrics[key])}` +
          (key === 'auc' ? '' : ` (chance ${c.chance.toFixed(2)})`) +
          ` over ${n} sources.`,
      );
    }
    parts.push(
      `From the source alone the label reaches ${primary.name} ${f2(sourceOnly)} (without it ${f2(noSource)}; the expert ${f2(expert)}).`,
    );
    const within = check.withinSource.filter((s) => check.mixedSources.includes(s.source));
    parts.push(
      within.length > 0
        ? `Within each source holding two classes: ${within.map((s) => `${s.source} ${f2(p(s.evaluation))}`).join('; ')}.`
        : 'No source holds two classes, so the expert cannot be scored within a source.',
    );
  }
  return { flags, summary: parts.join(' ') };
}
