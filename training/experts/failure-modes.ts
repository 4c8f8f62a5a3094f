/**
 * An expert's known failure modes, stated from its own numbers (nothing typed by hand): classes with
 * few examples, classes it mostly misses, probabilities that are not calibrated, sources it fails on,
 * and a drop from grouped CV to unseen sources. The thresholds are fixed here so every card applies
 * the same ones; each statement carries the number and interval that triggered it. No quotes or
 * apostrophes: the statements go into cards that the HTML report escapes.
 */
import type { TaskKind } from '../../core/schemas';
import { ECE_BINS, type Evaluation, type Interval } from './metrics';

export const FAILURE_THRESHOLDS = {
  /** Fewer labelled clips than this in a class: its per-class numbers rest on a handful of clips. */
  fewExamples: 15,
  /** Per-class sensitivity (binary: sensitivity or specificity at 0.5) below this: it misses most of the class. */
  recall: 0.5,
  /** Expected calibration error above this: the probabilities are not frequencies. */
  ece: 0.1,
  /** A held-out source with at least this many clips and accuracy below `sourceAccuracy` (ordinal: MAE above `sourceMae`). */
  sourceRows: 3,
  sourceAccuracy: 0.5,
  sourceMae: 1,
  /** Leave-one-source-out worse than CV by more than this on the primary metric. */
  transferGap: 0.05,
} as const;

export interface FailureInputs {
  readonly kind: TaskKind;
  readonly labels: readonly string[];
  /** Labelled rows per class, in `labels` order. */
  readonly perClass: readonly number[];
  readonly primary: { readonly name: string; readonly higherIsBetter: boolean };
  /** The chosen family's out-of-fold evaluation. */
  readonly cv: Evaluation;
  readonly loso?: {
    readonly evaluation: Evaluation;
    readonly perSource: readonly {
      readonly source: string;
      readonly rows: number;
      readonly perClass?: readonly number[];
      readonly evaluation?: Evaluation;
    }[];
  };
}

const f2 = (m: Interval | undefined) =>
  m ? `${m.value.toFixed(2)}${m.ci95 ? ` [${m.ci95[0].toFixed(2)}, ${m.ci95[1].toFixed(2)}]` : ''}` : 'n/a';

export function failureModes(inputs: FailureInputs): string[] {
  const T = FAILURE_THRESHOLDS;
  const { kind, labels, cv, loso, primary } = inputs;
  const out: string[] = [];

  const few = labels.flatMap((l, c) => (inputs.perClass[c]! < T.fewExamples ? [`${l} (${inputs.perClass[c]})`] : []));
  if (few.length > 0) {
    out.push(
      `Few examples: ${few.join(', ')} labelled clips, under ${T.fewExamples}; numbers for ${few.length === 1 ? 'that class' : 'those classes'} rest on a handful of clips and may not hold.`,
    );
  }

  const recalls: [string, Interval | undefined][] =
    kind === 'binary'
      ? [
          [`sensitivity (${labels[1]})`, cv.metrics['sensitivity']],
          [`specificity (${labels[0]})`, cv.metrics['specificity']],
        ]
      : labels.map((l) => [`sensitivity for ${l}`, cv.metrics[`sensitivity.${l}`]]);
  for (const [what, m] of recalls) {
    if (m && m.value < T.recall) {
      out.push(`Misses most of a class: CV ${what} ${f2(m)}, under ${T.recall}.`);
    }
  }

  const calibration = (where: string, m: Interval | undefined) => {
    if (m && m.value > T.ece) {
      out.push(
        `Probabilities are not calibrated (${where}): expected calibration error ${f2(m)} over ${ECE_BINS} equal-width confidence bins, above ${T.ece}; do not read the probabilities as frequencies.`,
      );
    }
  };
  calibration('grouped CV', cv.metrics['ece']);
  if (loso) calibration('unseen sources', loso.evaluation.metrics['ece']);

  if (loso) {
    const cvP = cv.metrics[primary.name];
    const lP = loso.evaluation.metrics[primary.name];
    if (cvP && lP) {
      const gap = primary.higherIsBetter ? cvP.value - lP.value : lP.value - cvP.value;
      if (gap > T.transferGap) {
        out.push(
          `Transfers worse to unseen sources: leave-one-source-out ${primary.name} ${f2(lP)} against ${f2(cvP)} in grouped CV.`,
        );
      }
    }
    for (const s of loso.perSource) {
      if (!s.evaluation || s.rows < T.sourceRows) continue;
      const classes = s.perClass
        ? labels.flatMap((l, c) => (s.perClass![c]! > 0 ? [`${l}: ${s.perClass![c]}`] : [])).join(', ')
        : '';
      const acc = s.evaluation.metrics['accuracy'];
      const mae = s.evaluation.metrics['mae'];
      const bad =
        kind === 'ordinal'
          ? mae !== undefined && mae.value > T.sourceMae
          : acc !== undefined && acc.value < T.sourceAccuracy;
      if (bad) {
        out.push(
          `Fails on held-out source ${s.source} (${s.rows} clips${classes ? `; ${classes}` : ''}): ` +
            (kind === 'ordinal' ? `MAE ${f2(mae)}` : `accuracy ${f2(acc)}`) +
            ' when no clip of that source was in training.',
        );
      }
    }
    const single = loso.perSource.filter((s) => s.perClass && s.perClass.filter((v) => v > 0).length === 1).length;
    if (single > 0) {
      out.push(
        `${single} of ${loso.perSource.length} held-out sources hold a single class: there the accuracy of the source is the recall of its one class, and source and class are confounded (a model can learn the look of a source).`,
      );
    }
  }
  return out;
}
