/**
 * Calibration (expected calibration error), per-source evaluation and the failure modes stated from
 * them, on predictions small enough to work out by hand.
 */
import { failureModes, FAILURE_THRESHOLDS } from '../../../training/experts/failure-modes';
import { ECE_BINS, evaluate, expectedCalibrationError, perSourceEvaluations } from '../../../training/experts/metrics';
import { matrix } from '../../../training/experts/model';

const binary = (p1: number[]) => matrix(p1.length, 2, Float64Array.from(p1.flatMap((p) => [1 - p, p])));

describe('expectedCalibrationError', () => {
  it('is 0 when each bin’s accuracy equals its confidence', () => {
    // 10 rows at p = 0.8 (one bin, confidence 0.8), 8 of them positive: accuracy 0.8.
    const y = Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    expect(expectedCalibrationError('binary', y, binary(new Array(10).fill(0.8)))).toBeCloseTo(0, 12);
  });

  it('is the weighted gap per bin, worked out by hand', () => {
    // Bin [0.9, 1]: 4 rows at p = 0.95, all right → gap 0.05. Bin [0.6, 0.7): 4 rows at p = 0.65 for the
    // negative label (p1 = 0.35), 1 right → accuracy 0.25, gap 0.4. ECE = (4·0.05 + 4·0.4) / 8 = 0.225.
    const y = Int32Array.from([1, 1, 1, 1, 0, 1, 1, 1]);
    const ece = expectedCalibrationError('binary', y, binary([0.95, 0.95, 0.95, 0.95, 0.35, 0.35, 0.35, 0.35]));
    expect(ece).toBeCloseTo(0.225, 12);
  });

  it('reads multi-class rows by their argmax, and puts a confidence of 1 in the last bin', () => {
    const prob = matrix(3, 3, Float64Array.from([1, 0, 0, 0.2, 0.5, 0.3, 0.1, 0.1, 0.8]));
    const y = Int32Array.from([0, 2, 2]);
    // Bins: 1.0 → last bin, right (gap 0); 0.5 → bin 5, wrong (gap 0.5); 0.8 → bin 8, right (gap 0.2).
    expect(expectedCalibrationError('classification', y, prob)).toBeCloseTo((0 + 0.5 + 0.2) / 3, 12);
    expect(ECE_BINS).toBe(10);
  });

  it('is in every evaluation, with a bootstrap interval', () => {
    const y = Int32Array.from([1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 0]);
    const p = binary([0.95, 0.95, 0.9, 0.7, 0.35, 0.35, 0.6, 0.8, 0.1, 0.2, 0.55, 0.45]);
    const e = evaluate('binary', ['no', 'yes'], y, p, null, { seed: 1, resamples: 200 });
    expect(e.metrics['ece']!.value).toBeCloseTo(expectedCalibrationError('binary', y, p), 4);
    const [lo, hi] = e.metrics['ece']!.ci95!;
    expect(lo).toBeLessThanOrEqual(hi);
    expect(lo).toBeGreaterThanOrEqual(0);
  });
});

describe('perSourceEvaluations', () => {
  it('evaluates each source on its own rows, bootstrapping its own groups', () => {
    // Source a: all right; source b: all wrong.
    const y = Int32Array.from([1, 0, 1, 0, 1, 0]);
    const p = binary([0.9, 0.1, 0.8, 0.2, 0.1, 0.9]);
    const sources = ['a', 'a', 'a', 'a', 'b', 'b'];
    const groups = ['g1', 'g1', 'g2', 'g2', 'g3', 'g4'];

    const per = perSourceEvaluations('binary', ['no', 'yes'], y, p, sources, groups, { seed: 1, resamples: 100 });

    expect(per.map((s) => [s.source, s.rows, s.perClass])).toEqual([
      ['a', 4, [2, 2]],
      ['b', 2, [1, 1]],
    ]);
    expect(per[0]!.evaluation.metrics['accuracy']!.value).toBe(1);
    expect(per[1]!.evaluation.metrics['accuracy']!.value).toBe(0);
    expect(per[0]!.evaluation.bootstrap.unit).toBe('group');
  });
});

describe('failureModes', () => {
  const ok = (value: number, ci: [number, number] = [value - 0.05, value + 0.05]) => ({ value, ci95: ci });
  const evaluation = (metrics: Record<string, { value: number; ci95: [number, number] }>) => ({
    rows: 100,
    metrics,
    confusion: { labels: ['a', 'b', 'c'], matrix: [] },
    bootstrap: { unit: 'group' as const, resamples: 100, seed: 1 },
  });

  it('says nothing when no threshold is crossed', () => {
    const cv = evaluation({
      balancedAccuracy: ok(0.8),
      'sensitivity.a': ok(0.8),
      'sensitivity.b': ok(0.7),
      'sensitivity.c': ok(0.9),
      ece: ok(0.05),
    });
    expect(
      failureModes({
        kind: 'classification',
        labels: ['a', 'b', 'c'],
        perClass: [30, 30, 30],
        primary: { name: 'balancedAccuracy', higherIsBetter: true },
        cv,
      }),
    ).toEqual([]);
  });

  it('states each crossed threshold with its number: few examples, a missed class, calibration, a failed source, the transfer gap', () => {
    const cv = evaluation({
      balancedAccuracy: ok(0.75),
      'sensitivity.a': ok(0.8),
      'sensitivity.b': ok(0.3, [0.1, 0.5]),
      'sensitivity.c': ok(0.9),
      ece: ok(0.18, [0.1, 0.25]),
    });
    const modes = failureModes({
      kind: 'classification',
      labels: ['a', 'b', 'c'],
      perClass: [40, 30, FAILURE_THRESHOLDS.fewExamples - 1],
      primary: { name: 'balancedAccuracy', higherIsBetter: true },
      cv,
      loso: {
        evaluation: evaluation({ balancedAccuracy: ok(0.6), ece: ok(0.05) }),
        perSource: [
          { source: 's1', rows: 10, perClass: [10, 0, 0], evaluation: evaluation({ accuracy: ok(0.2, [0, 0.4]) }) },
          { source: 's2', rows: 10, perClass: [4, 6, 0], evaluation: evaluation({ accuracy: ok(0.9) }) },
          { source: 's3', rows: 2, perClass: [0, 2, 0], evaluation: evaluation({ accuracy: ok(0) }) },
        ],
      },
    });
    expect(modes).toEqual([
      expect.stringMatching(/^Few examples: c \(14\) labelled clips, under 15/),
      'Misses most of a class: CV sensitivity for b 0.30 [0.10, 0.50], under 0.5.',
      expect.stringMatching(
        /^Probabilities are not calibrated \(grouped CV\): expected calibration error 0\.18 \[0\.10, 0\.25\] over 10 equal-width/,
      ),
      'Transfers worse to unseen sources: leave-one-source-out balancedAccuracy 0.60 [0.55, 0.65] against 0.75 [0.70, 0.80] in grouped CV.',
      'Fails on held-out source s1 (10 clips; a: 10): accuracy 0.20 [0.00, 0.40] when no clip of that source was in training.',
      expect.stringMatching(/^2 of 3 held-out sources hold a single class/),
    ]);
  });

  it('reads an ordinal expert’s sources by MAE and a binary expert’s classes by sensitivity and specificity', () => {
    const modes = failureModes({
      kind: 'binary',
      labels: ['absent', 'present'],
      perClass: [100, 20],
      primary: { name: 'auc', higherIsBetter: true },
      cv: evaluation({ auc: ok(0.9), sensitivity: ok(0.4), specificity: ok(0.95), ece: ok(0.05) }),
    });
    expect(modes).toEqual(['Misses most of a class: CV sensitivity (present) 0.40 [0.35, 0.45], under 0.5.']);
    const ordinal = failureModes({
      kind: 'ordinal',
      labels: ['0', '1'],
      perClass: [50, 50],
      primary: { name: 'mae', higherIsBetter: false },
      cv: evaluation({ mae: ok(0.5), ece: ok(0.05) }),
      loso: {
        evaluation: evaluation({ mae: ok(0.52) }),
        perSource: [{ source: 'x', rows: 5, perClass: [2, 3], evaluation: evaluation({ mae: ok(1.4) }) }],
      },
    });
    expect(ordinal).toEqual([
      'Fails on held-out source x (5 clips; 0: 2, 1: 3): MAE 1.40 [1.35, 1.45] when no clip of that source was in training.',
    ]);
  });
});
