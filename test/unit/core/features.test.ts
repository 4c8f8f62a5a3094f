import { BIOMARKERS, CLIP_STATISTICS } from '../../../core/biomarkers';
import { ModelError, PayloadError } from '../../../core/errors';
import {
  aggregateFrames,
  blocksDim,
  clipStats,
  featureNames,
  featureVector,
  quantileSorted,
  type FrameOutputs,
} from '../../../core/features';
import { XRAY_FINDINGS } from '../../../core/modality';
import { FeaturesDocument, type FeatureBlock } from '../../../core/schemas';
import { parsePayload } from '../../../core/zod-parse';
import { featuresDocument } from '../helpers/fakes';

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

describe('X-ray features (one image, the X-ray labels)', () => {
  /** One X-ray image's outputs: the findings in XRAY_FINDINGS order, a 2-dim embedding. */
  const oneImage = (): FrameOutputs => ({
    biomarkers: Float32Array.from([0.9, 0.2, 0.6]),
    embedding: Float32Array.from([0.5, -1]),
    frames: 1,
    embeddingDim: 2,
  });

  it('keys the clip statistics by the X-ray findings, statistics of a 1-long series', () => {
    // Prepare / Act
    const agg = aggregateFrames(oneImage(), 'xray');

    // Assess
    expect(agg.modality).toBe('xray');
    expect(Object.keys(agg.biomarkers)).toEqual([...XRAY_FINDINGS]);
    expect(agg.biomarkers['pneumonia']).toEqual({
      mean: Math.fround(0.9),
      max: Math.fround(0.9),
      p90: Math.fround(0.9),
      fractionAbove: 1,
    });
    expect(agg.frames['viral']).toEqual([Math.fround(0.2)]);
    expect(agg.embedding).toEqual({ dim: 2, mean: [0.5, -1], max: [0.5, -1] });
  });

  it('refuses ultrasound-shaped outputs as X-ray, naming the labels it expected', () => {
    // Prepare / Act / Assess
    expect(() => aggregateFrames(threeFrames(), 'xray')).toThrow(
      `biomarker output has ${3 * K} values, expected 3×3 (xray: pneumonia, viral, covid)`,
    );
  });

  it('builds the expert vector in the findings order, whatever the key order of the document', () => {
    // Prepare: the same statistics with the keys reversed (a document re-serialised by another tool).
    const agg = aggregateFrames(oneImage(), 'xray');
    const reversed = { ...agg, biomarkers: Object.fromEntries(Object.entries(agg.biomarkers).reverse()) };
    const shape = { labels: XRAY_FINDINGS, embeddingDim: 2 };

    // Act
    const vector = featureVector(reversed, ['biomarker-stats', 'embedding-mean']);
    const names = featureNames(['biomarker-stats', 'embedding-mean'], shape);

    // Assess
    expect(names.slice(0, 5)).toEqual([
      'pneumonia.mean',
      'pneumonia.max',
      'pneumonia.p90',
      'pneumonia.fractionAbove',
      'viral.mean',
    ]);
    expect(vector.length).toBe(blocksDim(['biomarker-stats', 'embedding-mean'], shape));
    expect(vector.length).toBe(3 * 4 + 2);
    expect(vector[0]).toBe(Math.fround(0.9));
    expect(vector[4]).toBe(Math.fround(0.2));
    expect(vector[8]).toBe(Math.fround(0.6));
  });

  it('refuses to build a vector from a document missing one of its labels', () => {
    // Prepare
    const agg = aggregateFrames(oneImage(), 'xray');
    const { covid: _covid, ...partial } = agg.biomarkers;

    // Act / Assess
    expect(() => featureVector({ ...agg, biomarkers: partial }, ['biomarker-stats'])).toThrow(
      'The xray features have no biomarker "covid" (have: pneumonia, viral).',
    );
  });
});

describe('FeaturesDocument modality', () => {
  const ref = { name: 'sonomark-fixture-extractor', version: '0.0.1', sha256: 'a'.repeat(64) };
  const scanId = '0123456789abcdef0123456789abcdef';

  /** A stored ultrasound document as written before modalities existed (no `modality`). */
  function legacy(): Record<string, unknown> {
    const { modality: _m, ...doc } = featuresDocument(scanId, ref, 4);
    return JSON.parse(JSON.stringify(doc));
  }

  /** An X-ray document: one frame, the findings' statistics. */
  function xrayDoc(): Record<string, unknown> {
    return {
      ...legacy(),
      sampling: { ...(legacy()['sampling'] as object), decodedFrames: 1, frameIndices: [0] },
      // modality: 'xray' comes with the aggregate
      ...aggregateFrames(
        { biomarkers: Float32Array.from([0.9, 0.2, 0.6]), embedding: new Float32Array(4), frames: 1, embeddingDim: 4 },
        'xray',
      ),
    };
  }

  it('reads a stored document without `modality` as ultrasound, its values unchanged', () => {
    // Prepare
    const doc = legacy();

    // Act
    const parsed = FeaturesDocument.parse(doc);

    // Assess
    expect(parsed.modality).toBe('ultrasound');
    expect(parsed.biomarkers).toEqual(doc['biomarkers']);
    expect(Array.from(featureVector(parsed, ['biomarker-stats']))).toEqual(
      BIOMARKERS.flatMap((b) => CLIP_STATISTICS.map((s) => Math.fround((doc['biomarkers'] as any)[b][s]))),
    );
  });

  it('reads an X-ray document of one image', () => {
    // Prepare / Act
    const parsed = FeaturesDocument.parse(xrayDoc());

    // Assess
    expect(parsed.modality).toBe('xray');
    expect(Object.keys(parsed.biomarkers)).toEqual([...XRAY_FINDINGS]);
  });

  it.each([
    [
      'an ultrasound document keyed by the X-ray findings',
      () => ({ ...xrayDoc(), modality: 'ultrasound' }),
      'biomarkers: has keys [pneumonia, viral, covid], but a features document of modality ultrasound has exactly [a_lines, b_lines, pleural_irregularity, consolidation, effusion, healthy_pattern]',
    ],
    [
      'an X-ray document keyed by the ultrasound biomarkers',
      () => ({ ...legacy(), modality: 'xray', sampling: xrayDoc()['sampling'] }),
      'biomarkers: has keys [a_lines, b_lines, pleural_irregularity, consolidation, effusion, healthy_pattern], but a features document of modality xray has exactly [pneumonia, viral, covid]',
    ],
    [
      'an extra key',
      () => {
        const doc = xrayDoc();
        return { ...doc, frames: { ...(doc['frames'] as object), opacity: [0.5] } };
      },
      'frames: has keys [pneumonia, viral, covid, opacity], but a features document of modality xray has exactly [pneumonia, viral, covid]',
    ],
    [
      'an X-ray document of two frames',
      () => ({ ...xrayDoc(), sampling: { ...(xrayDoc()['sampling'] as object), frameIndices: [0, 1] } }),
      'sampling.frameIndices: has 2 frames, but a features document of modality xray (one image) has exactly 1',
    ],
    ['an unknown modality', () => ({ ...legacy(), modality: 'ct' }), 'modality: Invalid option'],
  ])('refuses %s, saying which keys a document of its modality has', (_what, make, message) => {
    // Prepare / Act
    let err: Error | undefined;
    try {
      parsePayload(FeaturesDocument, make(), 'features document');
    } catch (e) {
      err = e as Error;
    }

    // Assess
    expect(err).toBeInstanceOf(PayloadError);
    expect(err?.message).toContain(message);
  });
});
