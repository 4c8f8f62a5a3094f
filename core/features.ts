/**
 * From per-frame network outputs to the clip-level features document, and from
 * the features document to an expert's input vector. Pure functions: the
 * extractor container, the expert Lambda, expert training and the tests share them.
 *
 * Generic over the modality: the labels of the `biomarkers` output are MODALITY_LABELS[modality]
 * (ultrasound: BIOMARKERS; X-ray: XRAY_FINDINGS), in that order in every vector built here.
 */
import { CLIP_STATISTICS, FRAME_THRESHOLD } from './biomarkers';
import { ModelError } from './errors';
import { MODALITY_LABELS, type Modality } from './modality';
import type { ClipStats, ExtractorEntry, FeatureBlock, FeaturesDocument } from './schemas';

/** What the length and the names of an expert input depend on: the extractor's label count and embedding size. */
export interface FeatureShape {
  /** The extractor's `biomarkers` labels, in output order. */
  readonly labels: readonly string[];
  readonly embeddingDim: number;
}

/** The feature shape of an extractor entry of the manifest. */
export function featureShape(entry: Pick<ExtractorEntry, 'outputs'>): FeatureShape {
  return { labels: entry.outputs.biomarkers.labels, embeddingDim: entry.outputs.embedding.dim };
}

/** Length of an expert input built from `blocks` on features of this shape. */
export function blocksDim(blocks: readonly FeatureBlock[], shape: FeatureShape): number {
  return blocks.reduce(
    (n, b) => n + (b === 'biomarker-stats' ? shape.labels.length * CLIP_STATISTICS.length : shape.embeddingDim),
    0,
  );
}

/** Linear-interpolated quantile of an ascending-sorted array (numpy's default method). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('quantile of an empty series');
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

export function clipStats(series: readonly number[]): ClipStats {
  if (series.length === 0) throw new RangeError('clip statistics of an empty series');
  const sorted = [...series].sort((x, y) => x - y);
  const sum = series.reduce((s, v) => s + v, 0);
  return {
    mean: sum / series.length,
    max: sorted[sorted.length - 1] as number,
    p90: quantileSorted(sorted, 0.9),
    fractionAbove: series.filter((v) => v > FRAME_THRESHOLD).length / series.length,
  };
}

export interface FrameOutputs {
  /** Row-major [frames, MODALITY_LABELS[modality].length] probabilities. */
  readonly biomarkers: Float32Array;
  /** Row-major [frames, embeddingDim]. */
  readonly embedding: Float32Array;
  readonly frames: number;
  readonly embeddingDim: number;
}

export type AggregatedFeatures = Pick<FeaturesDocument, 'modality' | 'biomarkers' | 'embedding' | 'frames'>;

/**
 * Pools per-frame outputs of an extractor of `modality` into per-label clip statistics, a mean/max
 * embedding and per-frame series, keyed by MODALITY_LABELS[modality]. An X-ray is one frame, so its
 * statistics are those of a 1-long series.
 */
export function aggregateFrames(out: FrameOutputs, modality: Modality): AggregatedFeatures {
  const labels = MODALITY_LABELS[modality];
  const k = labels.length;
  if (out.frames < 1) throw new RangeError('cannot aggregate zero frames');
  if (out.biomarkers.length !== out.frames * k) {
    throw new ModelError(
      `biomarker output has ${out.biomarkers.length} values, expected ${out.frames}×${k} (${modality}: ${labels.join(', ')})`,
    );
  }
  if (out.embedding.length !== out.frames * out.embeddingDim) {
    throw new ModelError(
      `embedding output has ${out.embedding.length} values, expected ${out.frames}×${out.embeddingDim}`,
    );
  }
  const series: Record<string, number[]> = {};
  const stats: Record<string, ClipStats> = {};
  labels.forEach((b, j) => {
    const s: number[] = [];
    for (let i = 0; i < out.frames; i++) s.push(clamp01(out.biomarkers[i * k + j] as number));
    series[b] = s;
    stats[b] = clipStats(s);
  });
  const d = out.embeddingDim;
  const mean = new Array<number>(d).fill(0);
  const max = new Array<number>(d).fill(-Infinity);
  for (let i = 0; i < out.frames; i++) {
    for (let j = 0; j < d; j++) {
      const v = out.embedding[i * d + j] as number;
      mean[j] = (mean[j] as number) + v / out.frames;
      if (v > (max[j] as number)) max[j] = v;
    }
  }
  return { modality, biomarkers: stats, embedding: { dim: d, mean, max }, frames: series };
}

// Float32 sigmoid outputs can land a hair outside [0, 1]; the schema is strict about probabilities.
function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}

/**
 * The expert input vector: the named blocks of the features document, concatenated in order. The
 * biomarker block follows the document's modality's label order (never the document's key order).
 */
export function featureVector(
  doc: Pick<FeaturesDocument, 'modality' | 'biomarkers' | 'embedding'>,
  blocks: readonly FeatureBlock[],
): Float32Array {
  const values: number[] = [];
  for (const block of blocks) {
    switch (block) {
      case 'biomarker-stats':
        for (const b of MODALITY_LABELS[doc.modality]) {
          const stats = doc.biomarkers[b];
          if (!stats) {
            throw new ModelError(
              `The ${doc.modality} features have no biomarker "${b}" (have: ${Object.keys(doc.biomarkers).join(', ')}).`,
            );
          }
          for (const s of CLIP_STATISTICS) values.push(stats[s]);
        }
        break;
      case 'embedding-mean':
        values.push(...doc.embedding.mean);
        break;
      case 'embedding-max':
        values.push(...doc.embedding.max);
        break;
    }
  }
  return Float32Array.from(values);
}

/** Names of the entries of featureVector(…, blocks) on features of this shape, for cards and debugging. */
export function featureNames(blocks: readonly FeatureBlock[], shape: FeatureShape): string[] {
  const names: string[] = [];
  for (const block of blocks) {
    if (block === 'biomarker-stats')
      for (const b of shape.labels) for (const s of CLIP_STATISTICS) names.push(`${b}.${s}`);
    else for (let j = 0; j < shape.embeddingDim; j++) names.push(`${block}.${j}`);
  }
  return names;
}
