/**
 * The source check on synthetic features whose relation to the source is known: where the label IS the
 * source the check must say so; where the label is spread over the sources it must stay quiet; where one
 * source's labels carry no signal it must name that source; with one source there is nothing to check.
 */
import { featureVector } from '../../../core/features';
import type { FeatureBlock } from '../../../core/schemas';
import { matrix } from '../../../training/experts/model';
import { frequencyProbabilities } from '../../../training/experts/source-check';
import { SYNTHETIC_DIAGNOSES, syntheticRows, type SyntheticRow } from '../../../training/experts/synthetic';
import { trainExpert, type TrainingSet } from '../../../training/experts/train';

const EXTRACTOR = { name: 'synthetic-extractor', version: '0.0.1', sha256: 'c'.repeat(64) };
const BIO: FeatureBlock[] = ['biomarker-stats'];
const CFG = {
  kind: 'classification' as const,
  labels: [...SYNTHETIC_DIAGNOSES],
  seed: 1,
  bootstrap: 100,
  families: ['linear' as const],
};

function set(rows: readonly SyntheticRow[], y = diagnosisY(rows)): TrainingSet {
  const vectors = rows.map((r) => featureVector(r.features, BIO));
  const x = matrix(rows.length, vectors[0]!.length);
  vectors.forEach((v, i) => x.data.set(v, i * x.cols));
  return {
    x,
    y,
    groups: rows.map((r) => r.group),
    folds: rows.map((r) => r.fold),
    sources: rows.map((r) => r.source),
    rowNames: rows.map((_, i) => `labels.csv line ${i + 2}`),
  };
}

const diagnosisY = (rows: readonly SyntheticRow[]) =>
  Int32Array.from(rows, (r) => SYNTHETIC_DIAGNOSES.indexOf(r.diagnosis));

describe('the source check', () => {
  it('flags a task whose label is the source', () => {
    // Prepare: three sources for three diagnoses, dealt alike (group g: diagnosis g % 3, source g % 3).
    const rows = syntheticRows({ seed: 5, extractor: EXTRACTOR, rows: 150, sources: 3 });
    expect(rows.every((r) => r.source === `site-${SYNTHETIC_DIAGNOSES.indexOf(r.diagnosis)}`)).toBe(true);

    // Act
    const c = trainExpert(set(rows), CFG).sourceCheck!;

    // Assess: the features identify the source, the source alone explains the task, and no source has two classes.
    expect(c.classifier!.task).toBe('classification');
    expect(c.classifier!.chance).toBeCloseTo(1 / 3, 3);
    expect(c.classifier!.evaluation.metrics.balancedAccuracy!.value).toBeGreaterThan(0.9);
    expect(c.sourceOnly.metrics.balancedAccuracy!.value).toBe(1);
    expect(c.noSource.metrics.balancedAccuracy!.value).toBeLessThan(0.5);
    expect(c.mixedSources).toEqual([]);
    expect(c.flags).toEqual([
      expect.stringMatching(/^No source holds two classes/),
      expect.stringMatching(/^The source alone explains the task: .* balancedAccuracy 1\.00/),
    ]);
    expect(c.summary).toMatch(/source classifier on the same features reaches balanced accuracy (0\.9\d|1\.00)/);
  });

  it('stays quiet when the label is spread over the sources and holds within each', () => {
    // Prepare: four sources against three diagnoses: every source holds every diagnosis.
    const rows = syntheticRows({ seed: 5, extractor: EXTRACTOR, rows: 240, sources: 4 });

    // Act
    const r = trainExpert(set(rows), CFG);
    const c = r.sourceCheck!;

    // Assess
    expect(c.flags).toEqual([]);
    expect(c.mixedSources).toEqual(['site-0', 'site-1', 'site-2', 'site-3']);
    // Nothing in these features says where a row came from.
    expect(c.classifier!.evaluation.metrics.balancedAccuracy!.value).toBeLessThan(0.45);
    expect(c.sourceOnly.metrics.balancedAccuracy!.value).toBeLessThan(0.5);
    for (const s of c.withinSource) {
      expect(s.evaluation.metrics.balancedAccuracy!.value).toBeGreaterThan(0.85);
      expect(s.evaluation.metrics.balancedAccuracy!.ci95).toHaveLength(2);
    }
    expect(c.withinSource.map((s) => s.rows).reduce((a, b) => a + b, 0)).toBe(rows.length);
    expect(c.sources.map((s) => s.perClass.every((v) => v > 0))).toEqual([true, true, true, true]);
  });

  it('names a source the expert fails within', () => {
    // Prepare: in site-0 the labels are shuffled, so its features carry nothing about them.
    const rows = syntheticRows({ seed: 5, extractor: EXTRACTOR, rows: 240, sources: 4 });
    const y = diagnosisY(rows);
    const site0 = rows.flatMap((r, i) => (r.source === 'site-0' ? [i] : []));
    site0.forEach((i, k) => (y[i] = k % 3));

    // Act
    const c = trainExpert(set(rows, y), CFG).sourceCheck!;

    // Assess
    expect(c.flags).toEqual([expect.stringMatching(/^Does not hold within source site-0: balancedAccuracy 0\.[0-5]/)]);
  });

  it('has nothing to check with one source: no classifier, no leave-one-source-out', () => {
    // Prepare
    const rows = syntheticRows({ seed: 5, extractor: EXTRACTOR, rows: 90, sources: 1 });

    // Act
    const r = trainExpert(set(rows), CFG);

    // Assess
    expect(r.loso).toBeUndefined();
    expect(r.sourceCheck!.classifier).toBeUndefined();
    expect(r.sourceCheck!.flags).toEqual([]);
    expect(r.sourceCheck!.summary).toMatch(/^One source \(site-0\)/);
    expect(r.sourceCheck!.withinSource[0]!.rows).toBe(90);
  });

  it('predicts the label from the training folds of the same source, else from all training rows', () => {
    // Prepare: rows 0-3 in fold 0, rows 4-7 in fold 1; source b only in fold 1.
    const y = Int32Array.from([0, 0, 1, 1, 1, 1, 1, 0]);
    const sources = ['a', 'a', 'a', 'a', 'a', 'b', 'b', 'b'];
    const outer = [0, 0, 0, 0, 1, 1, 1, 1];

    // Act
    const p = frequencyProbabilities(y, 2, outer, sources);
    const none = frequencyProbabilities(y, 2, outer, null);

    // Assess: row 0 (fold 0, source a) learns from row 4 (a, class 1): (1, 2)/3; row 5 (b) has no b in fold 0's
    // training rows... it is in fold 1, whose training rows are all a: (2+1, 2+1)/6.
    expect(Array.from(p.data.subarray(0, 2))).toEqual([1 / 3, 2 / 3]);
    expect(Array.from(p.data.subarray(10, 12))).toEqual([0.5, 0.5]);
    expect(Array.from(none.data.subarray(0, 2))).toEqual([2 / 6, 4 / 6]);
  });
});
