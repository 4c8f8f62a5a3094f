/**
 * The expert trainer on synthetic features with a known rule: it recovers the
 * rule, the linear weights point the right way, CV does not leak, it is
 * deterministic, and the CV/LOSO bookkeeping is what the report says.
 */
import { BIOMARKERS, CLIP_STATISTICS } from '../../../core/biomarkers';
import { featureNames, featureVector } from '../../../core/features';
import { TrainingDataError } from '../../../training/experts/errors';
import { groupKFold } from '../../../training/experts/folds';
import { auc, bootstrapIntervals, quadraticKappa, scalarMetrics } from '../../../training/experts/metrics';
import { mulberry32 } from '../../../training/onnx/graph';
import { fitModel, linearWeights, matrix, predictProba, type Matrix } from '../../../training/experts/model';
import { SYNTHETIC_DIAGNOSES, syntheticRows, type SyntheticRow } from '../../../training/experts/synthetic';
import { trainExpert, type TrainingSet } from '../../../training/experts/train';
import type { FeatureBlock } from '../../../core/schemas';

const EXTRACTOR = { name: 'synthetic-extractor', version: '0.0.1', sha256: 'c'.repeat(64) };
const ALL: FeatureBlock[] = ['biomarker-stats', 'embedding-mean', 'embedding-max'];
const BIO: FeatureBlock[] = ['biomarker-stats'];

function featuresOf(rows: readonly SyntheticRow[], blocks: FeatureBlock[]): Matrix {
  const vectors = rows.map((r) => featureVector(r.features, blocks));
  const d = vectors[0]!.length;
  const x = matrix(rows.length, d);
  vectors.forEach((v, i) => x.data.set(v, i * d));
  return x;
}

function set(rows: readonly SyntheticRow[], y: Int32Array, blocks = ALL): TrainingSet {
  return {
    x: featuresOf(rows, blocks),
    y,
    groups: rows.map((r) => r.group),
    folds: rows.map((r) => r.fold),
    sources: null,
    rowNames: rows.map((_, i) => `labels.csv line ${i + 2}`),
  };
}

const diagnosisY = (rows: readonly SyntheticRow[]) =>
  Int32Array.from(rows, (r) => SYNTHETIC_DIAGNOSES.indexOf(r.diagnosis));

const rows = syntheticRows({ seed: 11, extractor: EXTRACTOR, noise: 0.5 });

describe('trainExpert on synthetic features', () => {
  it('recovers the diagnosis rule under grouped CV, with intervals around the estimate', () => {
    // Act
    const r = trainExpert(set(rows, diagnosisY(rows)), {
      kind: 'classification',
      labels: [...SYNTHETIC_DIAGNOSES],
      seed: 1,
      bootstrap: 200,
    });

    // Assess
    for (const family of ['linear', 'mlp'] as const) {
      const m = r.candidates[family]!.evaluation.metrics;
      expect(m.balancedAccuracy!.value).toBeGreaterThan(0.9);
      const [lo, hi] = m.balancedAccuracy!.ci95!;
      expect(lo).toBeLessThanOrEqual(m.balancedAccuracy!.value);
      expect(hi).toBeGreaterThanOrEqual(m.balancedAccuracy!.value);
      expect(m.macroF1!.value).toBeGreaterThan(0.9);
      for (const l of SYNTHETIC_DIAGNOSES) {
        expect(m[`sensitivity.${l}`]!.value).toBeGreaterThan(0.8);
        expect(m[`specificity.${l}`]!.value).toBeGreaterThan(0.8);
      }
      expect(r.candidates[family]!.folds).toHaveLength(5);
    }
    expect(r.cv.scheme).toMatch(/fold column/);
    expect(r.candidates.linear!.evaluation.bootstrap.unit).toBe('group');
    expect(r.candidates.linear!.evaluation.confusion.matrix.flat().reduce((s, v) => s + v, 0)).toBe(rows.length);
    // The final model fits every row and predicts them like the CV models did.
    const p = predictProba(r.model, featuresOf(rows, ALL));
    const acc = scalarMetrics('classification', [...SYNTHETIC_DIAGNOSES], diagnosisY(rows), p).accuracy!;
    expect(acc).toBeGreaterThan(0.9);
  });

  it("gives the logistic model's weights the rule's signs", () => {
    // Prepare: biomarker statistics only, so every weight has a name.
    const names = featureNames(BIO, { labels: BIOMARKERS, embeddingDim: 0 });
    const at = (f: string) => names.indexOf(f);
    const x = featuresOf(rows, BIO);

    // Act
    const model = fitModel(
      { family: 'linear', head: 'softmax', inputDim: x.cols, classes: 3, hidden: 0 },
      x,
      diagnosisY(rows),
      { lambda: 0.1, seed: 1 },
    );

    // Assess: weight[feature, class]; classes covid, pneumonia, healthy.
    const { weights, out } = linearWeights(model);
    const w = (f: string, c: number) => weights[at(f) * out + c]!;
    expect(names).toHaveLength(BIOMARKERS.length * CLIP_STATISTICS.length);
    expect(w('b_lines.mean', 0)).toBeGreaterThan(0);
    expect(w('b_lines.mean', 0)).toBeGreaterThan(w('b_lines.mean', 2));
    expect(w('consolidation.mean', 1)).toBeGreaterThan(0);
    expect(w('consolidation.mean', 1)).toBeGreaterThan(w('consolidation.mean', 0));
    expect(w('a_lines.mean', 2)).toBeGreaterThan(0);
    expect(w('healthy_pattern.mean', 2)).toBeGreaterThan(w('healthy_pattern.mean', 0));
    // Effusion plays no part in the rule: its weights are small next to the informative ones.
    expect(Math.abs(w('effusion.mean', 0))).toBeLessThan(Math.abs(w('b_lines.mean', 0)));
  });

  it('recovers the severity grades (ordinal) and the triage rule (binary)', () => {
    // Act
    const severity = trainExpert(
      set(
        rows,
        Int32Array.from(rows, (r) => r.severity),
        BIO,
      ),
      { kind: 'ordinal', labels: ['0', '1', '2', '3'], seed: 1, bootstrap: 200, families: ['linear'] },
    );
    const triage = trainExpert(
      set(
        rows,
        Int32Array.from(rows, (r) => r.triage),
        BIO,
      ),
      { kind: 'binary', labels: ['healthy', 'abnormal'], seed: 1, bootstrap: 200, families: ['linear'] },
    );

    // Assess
    const s = severity.candidates.linear!.evaluation.metrics;
    expect(s.mae!.value).toBeLessThan(0.5);
    expect(s.within1!.value).toBeGreaterThan(0.9);
    expect(s.qwk!.value).toBeGreaterThan(0.7);
    // One score for all grades (proportional odds): more B-lines, higher grade.
    const names = featureNames(BIO, { labels: BIOMARKERS, embeddingDim: 0 });
    expect(linearWeights(severity.model).out).toBe(1);
    expect(linearWeights(severity.model).weights[names.indexOf('b_lines.mean')]!).toBeGreaterThan(0);
    const t = triage.candidates.linear!.evaluation.metrics;
    expect(t.auc!.value).toBeGreaterThan(0.95);
    expect(t.sensitivity!.value).toBeGreaterThan(0.85);
    expect(t.specificity!.value).toBeGreaterThan(0.85);
    expect(linearWeights(triage.model).weights[names.indexOf('healthy_pattern.mean')]!).toBeLessThan(0);
  });

  it('does not leak: with the labels shuffled across groups, CV is at chance', () => {
    // Prepare: permute whole groups' labels, so no feature carries the label.
    const rand = mulberry32(123);
    const groups = [...new Set(rows.map((r) => r.group))];
    const label = new Map(groups.map((g) => [g, Math.floor(rand() * 3)]));
    const y = Int32Array.from(rows, (r) => label.get(r.group)!);

    // Act
    const r = trainExpert(set(rows, y), {
      kind: 'classification',
      labels: [...SYNTHETIC_DIAGNOSES],
      seed: 1,
      bootstrap: 0,
      families: ['linear'],
    });

    // Assess
    expect(r.candidates.linear!.evaluation.metrics.balancedAccuracy!.value).toBeLessThan(0.6);
  });

  it('is deterministic for a seed', () => {
    // The MLP is the seed-dependent candidate (its initial weights); the bootstrap is seeded too.
    const cfg = {
      kind: 'classification' as const,
      labels: [...SYNTHETIC_DIAGNOSES],
      seed: 3,
      bootstrap: 50,
      hidden: 8,
      mlpLambdas: [0.1],
      families: ['mlp' as const],
    };
    const a = trainExpert(set(rows, diagnosisY(rows), BIO), cfg);
    const b = trainExpert(set(rows, diagnosisY(rows), BIO), cfg);
    expect(Array.from(a.model.params)).toEqual(Array.from(b.model.params));
    const withoutTimes = (v: unknown) => JSON.parse(JSON.stringify(v, (k, x) => (k === 'seconds' ? undefined : x)));
    expect(withoutTimes(a.candidates)).toEqual(withoutTimes(b.candidates));
    expect(a.chosen).toBe(b.chosen);
  });

  it('computes CV metrics on --cv-features and fits the final model on the training features', () => {
    // Prepare: CV features that carry no signal (another draw, labels unrelated).
    const noise = syntheticRows({ seed: 99, extractor: EXTRACTOR, noise: 0.5 });
    const shuffled = [...noise].sort((p, q) => p.sha256.localeCompare(q.sha256));

    // Act
    const r = trainExpert(
      set(rows, diagnosisY(rows), BIO),
      { kind: 'classification', labels: [...SYNTHETIC_DIAGNOSES], seed: 1, bootstrap: 0, families: ['linear'] },
      { mode: 'out-of-fold', x: featuresOf(shuffled, BIO) },
    );

    // Assess
    expect(r.cv.features).toBe('out-of-fold');
    expect(r.candidates.linear!.evaluation.metrics.balancedAccuracy!.value).toBeLessThan(0.7);
    const p = predictProba(r.model, featuresOf(rows, BIO));
    expect(scalarMetrics('classification', [...SYNTHETIC_DIAGNOSES], diagnosisY(rows), p).accuracy).toBeGreaterThan(
      0.9,
    );
  });

  it('evaluates leave-one-source-out on pooled out-of-source predictions', () => {
    // Prepare
    const s = { ...set(rows, diagnosisY(rows), BIO), sources: rows.map((r) => r.source) };

    // Act
    const r = trainExpert(s, {
      kind: 'classification',
      labels: [...SYNTHETIC_DIAGNOSES],
      seed: 1,
      bootstrap: 100,
      families: ['linear'],
    });

    // Assess
    const sources = [...new Set(rows.map((x) => x.source))].sort();
    expect(r.loso!.perSource.map((p) => p.source)).toEqual(sources);
    expect(r.loso!.perSource.reduce((n, p) => n + p.rows, 0)).toBe(rows.length);
    expect(r.loso!.evaluation.rows).toBe(rows.length);
    expect(r.loso!.evaluation.metrics.balancedAccuracy!.value).toBeGreaterThan(0.75);
  });

  it('with per-source features, the fit holding source s out trains and tests on the set for s', () => {
    // Prepare: set s is every row negated (a different extractor's coordinates), and in `leaky` the rows
    // of source s themselves are noise (another draw), as if that extractor could not read the unseen source.
    const s = { ...set(rows, diagnosisY(rows), BIO), sources: rows.map((r) => r.source) };
    const sources = [...new Set(s.sources)].sort();
    const negated = (m: Matrix): Matrix =>
      matrix(
        m.rows,
        m.cols,
        Float64Array.from(m.data, (v) => -v),
      );
    const noise = featuresOf(syntheticRows({ seed: 99, extractor: EXTRACTOR, noise: 0.5 }), BIO);
    const flipped = new Map(sources.map((src) => [src, negated(s.x)]));
    const blind = new Map(
      sources.map((src) => {
        const m = negated(s.x);
        s.sources.forEach((v, i) => {
          if (v === src) m.data.set(noise.data.subarray(i * m.cols, (i + 1) * m.cols), i * m.cols);
        });
        return [src, m];
      }),
    );
    const cfg = {
      kind: 'classification' as const,
      labels: [...SYNTHETIC_DIAGNOSES],
      seed: 1,
      bootstrap: 0,
      families: ['linear' as const],
    };

    // Act
    const plain = trainExpert(s, cfg);
    const perSource = trainExpert(s, cfg, undefined, { mode: 'per-source', x: flipped });
    const blindSource = trainExpert(s, cfg, undefined, { mode: 'per-source', x: blind });

    // Assess: training on the flipped set too recovers the rule (testing alone on it would invert it) ...
    const ba = (r: ReturnType<typeof trainExpert>) => r.loso!.evaluation.metrics.balancedAccuracy!.value;
    expect(plain.loso!.features).toBe('training');
    expect(perSource.loso!.features).toBe('per-source');
    expect(ba(perSource)).toBeCloseTo(ba(plain), 2);
    // ... the held-out rows come from set s, and the CV and the final model never read the per-source sets.
    expect(ba(blindSource)).toBeLessThan(0.6);
    expect(ba(plain)).toBeGreaterThan(0.75);
    expect(blindSource.cv.features).toBe('training');
    expect(blindSource.candidates.linear!.evaluation.metrics).toEqual(plain.candidates.linear!.evaluation.metrics);
    expect(Array.from(blindSource.model.params)).toEqual(Array.from(plain.model.params));
  });

  it('refuses per-source features without sources, or without a set for some source', () => {
    const s = { ...set(rows, diagnosisY(rows), BIO), sources: rows.map((r) => r.source) };
    const cfg = { kind: 'classification' as const, labels: [...SYNTHETIC_DIAGNOSES], seed: 1, bootstrap: 0 };
    const some = new Map([['site-0', s.x]]);
    expect(() => trainExpert({ ...s, sources: null }, cfg, undefined, { mode: 'per-source', x: some })).toThrow(
      /--loso-features needs --source-column/,
    );
    expect(() => trainExpert(s, cfg, undefined, { mode: 'per-source', x: some })).toThrow(
      /--loso-features has no feature set for source site-1\./,
    );
  });

  it('deals grouped folds when the labels have none, keeping each group in one fold', () => {
    // Act
    const r = trainExpert(
      { ...set(rows, diagnosisY(rows), BIO), folds: null },
      {
        kind: 'classification',
        labels: [...SYNTHETIC_DIAGNOSES],
        seed: 1,
        bootstrap: 0,
        families: ['linear'],
        folds: 4,
      },
    );
    const folds = groupKFold(
      rows.map((x) => x.group),
      diagnosisY(rows),
      3,
      4,
    );

    // Assess
    expect(r.cv.folds).toBe(4);
    expect(r.cv.scheme).toMatch(/group column/);
    for (const g of new Set(rows.map((x) => x.group))) {
      expect(new Set(rows.flatMap((x, i) => (x.group === g ? [folds[i]] : []))).size).toBe(1);
    }
  });

  it('refuses a single class, and a class that sits in one fold, naming its rows', () => {
    const y0 = new Int32Array(rows.length);
    expect(() => trainExpert(set(rows, y0, BIO), { kind: 'classification', labels: ['a', 'b'], seed: 1 })).toThrow(
      /one class.*all "a".*at least 2/,
    );
    // Class "rare" only on the first row (one group, one fold).
    const y = Int32Array.from(rows, (_, i) => (i === 0 ? 2 : i % 2));
    expect(() =>
      trainExpert(set(rows, y, BIO), { kind: 'classification', labels: ['a', 'b', 'rare'], seed: 1 }),
    ).toThrow(TrainingDataError);
    expect(() =>
      trainExpert(set(rows, y, BIO), { kind: 'classification', labels: ['a', 'b', 'rare'], seed: 1 }),
    ).toThrow(/Class "rare" has 1 row \(labels\.csv line 2\) in only 1 fold/);
  });
});

describe('metrics', () => {
  it('AUC counts ties half and is undefined with one class', () => {
    expect(auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])).toBeCloseTo(0.75, 10);
    expect(auc([0, 1], [0.5, 0.5])).toBe(0.5);
    expect(auc([1, 1], [0.2, 0.3])).toBeNaN();
  });

  it('quadratic kappa is 1 for perfect grades and penalises distance', () => {
    expect(quadraticKappa([0, 1, 2, 3], [0, 1, 2, 3], 4)).toBe(1);
    expect(quadraticKappa([0, 1, 2, 3], [0, 1, 2, 2], 4)).toBeGreaterThan(
      quadraticKappa([0, 1, 2, 3], [0, 1, 2, 0], 4),
    );
  });

  it('balanced accuracy, sensitivity and specificity from the argmax', () => {
    const prob = matrix(4, 2, Float64Array.from([0.9, 0.1, 0.6, 0.4, 0.3, 0.7, 0.2, 0.8]));
    const m = scalarMetrics('binary', ['neg', 'pos'], Int32Array.from([0, 1, 1, 1]), prob);
    expect(m.sensitivity).toBeCloseTo(2 / 3);
    expect(m.specificity).toBe(1);
    expect(m.balancedAccuracy).toBeCloseTo((1 + 2 / 3) / 2);
    expect(m.auc).toBe(1);
  });

  it('the bootstrap is seeded and resamples whole clusters', () => {
    const clusters = ['a', 'a', 'b', 'b', 'c'];
    const seen: number[][] = [];
    const fn = (rowsDrawn: number[]) => {
      seen.push(rowsDrawn);
      return { n: rowsDrawn.length };
    };
    const first = bootstrapIntervals(clusters, fn, { resamples: 50, seed: 5 });
    const again = bootstrapIntervals(clusters, () => ({ n: 0 }), { resamples: 50, seed: 5 });
    expect(Object.keys(again)).toEqual(['n']);
    expect(bootstrapIntervals(clusters, fn, { resamples: 50, seed: 5 })).toEqual(first);
    // Rows 0 and 1 (cluster a) are always drawn together.
    for (const s of seen) expect(s.filter((r) => r === 0).length).toBe(s.filter((r) => r === 1).length);
  });
});
