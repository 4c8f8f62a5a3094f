import { BIOMARKERS, CLIP_STATISTICS } from '../../../core/biomarkers';
import { ModelError } from '../../../core/errors';
import {
  aggregateFrames,
  blocksDim,
  clipStats,
  featureNames,
  featureVector,
  quantileSorted,
  type FrameOutputs,
} from '../../../core/features';
import type { FeatureBlock } from '../../../core/schemas';

const K = BIOMARKERS.length;
/** The feature shape of an ultrasound extractor with this embedding size. */
const us = (embeddingDim: number) => ({ labels: BIOMARKERS, embeddingDim });

describe('quantileSorted', () => {
  it.each([
    [[1, 2, 3, 4], 0.9, 3.7],
    [[1, 2, 3, 4], 0.5, 2.5],
    [[1, 2, 3, 4], 0, 1],
    [[1, 2, 3, 4], 1, 4],
    [[10, 20, 30, 40, 50], 0.9, 46],
    [[7], 0.9, 7],
  ])('quantile of %j at q=%d is %d (numpy linear)', (sorted, q, expected) => {
    // Prepare / Act
    const value = quantileSorted(sorted, q);

    // Assess
    expect(value).toBeCloseTo(expected, 12);
  });

  it('throws a RangeError on an empty series', () => {
    // Prepare / Act / Assess
    expect(() => quantileSorted([], 0.5)).toThrow(RangeError);
  });
});

describe('clipStats', () => {
  it('computes mean, max, p90 and the fraction strictly above 0.5', () => {
    // Prepare: unsorted on purpose; 0.5 itself is not "above".
    const series = [0.5, 0.1, 0.9, 0.6, 0.2];

    // Act
    const stats = clipStats(series);

    // Assess: sorted [0.1, 0.2, 0.5, 0.6, 0.9], p90 position 3.6 → 0.6 + 0.3·0.6 = 0.78.
    expect(stats.mean).toBeCloseTo(0.46, 12);
    expect(stats.max).toBe(0.9);
    expect(stats.p90).toBeCloseTo(0.78, 12);
    expect(stats.fractionAbove).toBeCloseTo(0.4, 12);
  });

  it('does not reorder its input', () => {
    // Prepare
    const series = [0.3, 0.1, 0.2];

    // Act
    clipStats(series);

    // Assess
    expect(series).toEqual([0.3, 0.1, 0.2]);
  });

  it('throws a RangeError on an empty series', () => {
    // Prepare / Act / Assess
    expect(() => clipStats([])).toThrow(RangeError);
  });
});

/** Three frames; biomarker j of frame i is `rows[i][j]`. */
function threeFrames(): FrameOutputs {
  const rows = [
    [1.0000001, 0.2, 0.6, 0, 0.5, -1e-7],
    [0.4, 0.8, 0.6, 0, 0.5, 0.1],
    [0.7, 0.2, 0.1, 0, 0.5, 0.3],
  ];
  return {
    biomarkers: Float32Array.from(rows.flat()),
    embedding: Float32Array.from([1, -2, 3, -4, 0.5, 0.5]),
    frames: 3,
    embeddingDim: 2,
  };
}

describe('aggregateFrames', () => {
  it('clamps probabilities to [0, 1] and builds per-biomarker series', () => {
    // Prepare
    const out = threeFrames();

    // Act
    const agg = aggregateFrames(out, 'ultrasound');

    // Assess
    expect(Object.keys(agg.frames)).toEqual([...BIOMARKERS]);
    expect(agg.frames['a_lines']![0]).toBe(1);
    expect(agg.frames['healthy_pattern']![0]).toBe(0);
    expect(agg.frames.a_lines).toEqual([1, Math.fround(0.4), Math.fround(0.7)]);
    expect(agg.frames.consolidation).toEqual([0, 0, 0]);
    for (const b of BIOMARKERS) {
      for (const v of agg.frames[b]!) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
    }
  });

  it('computes clip statistics per biomarker from the clamped series', () => {
    // Prepare
    const out = threeFrames();

    // Act
    const agg = aggregateFrames(out, 'ultrasound');

    // Assess
    expect(agg.biomarkers['a_lines']!.max).toBe(1);
    expect(agg.biomarkers['a_lines']!.mean).toBeCloseTo((1 + 0.4 + 0.7) / 3, 6);
    expect(agg.biomarkers['a_lines']!.p90).toBeCloseTo(0.7 + 0.3 * 0.8, 6);
    expect(agg.biomarkers['a_lines']!.fractionAbove).toBeCloseTo(2 / 3, 12);
    expect(agg.biomarkers['effusion']!.fractionAbove).toBe(0);
    expect(agg.biomarkers['pleural_irregularity']!.fractionAbove).toBeCloseTo(2 / 3, 12);
    expect(agg.biomarkers['healthy_pattern']!.mean).toBeCloseTo(0.4 / 3, 6);
  });

  it('pools the embedding by mean and max', () => {
    // Prepare
    const out = threeFrames();

    // Act
    const agg = aggregateFrames(out, 'ultrasound');

    // Assess
    expect(agg.embedding.dim).toBe(2);
    expect(agg.embedding.mean[0]).toBeCloseTo(1.5, 12);
    expect(agg.embedding.mean[1]).toBeCloseTo(-5.5 / 3, 12);
    expect(agg.embedding.max).toEqual([3, 0.5]);
  });

  it('rejects a biomarker output of the wrong shape with a ModelError', () => {
    // Prepare
    const out = { ...threeFrames(), biomarkers: new Float32Array(3 * K - 1) };

    // Act / Assess
    expect(() => aggregateFrames(out, 'ultrasound')).toThrow(ModelError);
    expect(() => aggregateFrames(out, 'ultrasound')).toThrow(
      `biomarker output has ${3 * K - 1} values, expected 3×${K}`,
    );
  });

  it('rejects an embedding output of the wrong shape with a ModelError', () => {
    // Prepare
    const out = { ...threeFrames(), embedding: new Float32Array(5) };

    // Act / Assess
    expect(() => aggregateFrames(out, 'ultrasound')).toThrow(ModelError);
    expect(() => aggregateFrames(out, 'ultrasound')).toThrow('embedding output has 5 values, expected 3×2');
  });

  it('rejects zero frames', () => {
    // Prepare
    const out: FrameOutputs = {
      biomarkers: new Float32Array(0),
      embedding: new Float32Array(0),
      frames: 0,
      embeddingDim: 2,
    };

    // Act / Assess
    expect(() => aggregateFrames(out, 'ultrasound')).toThrow(RangeError);
  });
});

describe('featureVector, featureNames and blocksDim', () => {
  const doc = aggregateFrames(threeFrames(), 'ultrasound');
  const statsBlock = BIOMARKERS.flatMap((b) => CLIP_STATISTICS.map((s) => doc.biomarkers[b]![s]));

  it('lists biomarker statistics biomarker-major, statistic-minor', () => {
    // Prepare / Act
    const names = featureNames(['biomarker-stats'], us(2));

    // Assess
    expect(names.slice(0, 5)).toEqual([
      'a_lines.mean',
      'a_lines.max',
      'a_lines.p90',
      'a_lines.fractionAbove',
      'b_lines.mean',
    ]);
    expect(names).toHaveLength(K * CLIP_STATISTICS.length);
    expect(names[names.length - 1]).toBe('healthy_pattern.fractionAbove');
  });

  const combos: [FeatureBlock[], number[]][] = [
    [['biomarker-stats'], statsBlock],
    [['embedding-mean'], doc.embedding.mean],
    [['embedding-max'], doc.embedding.max],
    [
      ['embedding-max', 'embedding-mean'],
      [...doc.embedding.max, ...doc.embedding.mean],
    ],
    [
      ['embedding-mean', 'biomarker-stats'],
      [...doc.embedding.mean, ...statsBlock],
    ],
    [
      ['biomarker-stats', 'embedding-mean', 'embedding-max'],
      [...statsBlock, ...doc.embedding.mean, ...doc.embedding.max],
    ],
  ];

  it.each(combos)('concatenates blocks %j in order, with matching names and dim', (blocks, expected) => {
    // Prepare
    const dim = doc.embedding.dim;

    // Act
    const vector = featureVector(doc, blocks);
    const names = featureNames(blocks, us(dim));

    // Assess
    expect(vector).toBeInstanceOf(Float32Array);
    expect(Array.from(vector)).toEqual(expected.map((v) => Math.fround(v)));
    expect(vector.length).toBe(blocksDim(blocks, us(dim)));
    expect(names).toHaveLength(blocksDim(blocks, us(dim)));
  });

  it('names embedding entries by block and index', () => {
    // Prepare / Act
    const names = featureNames(['embedding-max', 'embedding-mean'], us(2));

    // Assess
    expect(names).toEqual(['embedding-max.0', 'embedding-max.1', 'embedding-mean.0', 'embedding-mean.1']);
  });

  it('gives 88 for the shipped expert blocks with a 32-dim embedding', () => {
    // Prepare / Act
    const dim = blocksDim(['biomarker-stats', 'embedding-mean', 'embedding-max'], us(32));

    // Assess
    expect(dim).toBe(88);
  });
});
