/**
 * From per-frame network outputs to the clip-level features document, and from
 * the features document to an expert's input vector. Pure functions: the
 * extractor container, the expert Lambda, expert training and the tests share them.
 */
import { BIOMARKERS, CLIP_STATISTICS, FRAME_THRESHOLD, type Biomarker } from './biomarkers';
import { ModelError } from './errors';
import type { ClipStats, FeatureBlock, FeaturesDocument } from './schemas';

/** Length of an expert input built from `blocks`, for an extractor with embedding size `embeddingDim`. */
export function blocksDim(blocks: readonly FeatureBlock[], embeddingDim: number): number {
  return blocks.reduce(
    (n, b) => n + (b === 'biomarker-stats' ? BIOMARKERS.length * CLIP_STATISTICS.length : embeddingDim),
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
  /** Row-major [frames, BIOMARKERS.length] probabilities. */
  readonly biomarkers: Float32Array;
  /** Row-major [frames, embeddingDim]. */
  readonly embedding: Float32Array;
  readonly frames: number;
  readonly embeddingDim: number;
}

export type AggregatedFeatures = Pick<FeaturesDocument, 'biomarkers' | 'embedding' | 'frames'>;

/** Pools per-frame outputs into clip statistics, a mean/max embedding and per-frame series. */
export function aggregateFrames(out: FrameOutputs): AggregatedFeatures {
  const k = BIOMARKERS.length;
  if (out.frames < 1) throw new RangeError('cannot aggregate zero frames');
  if (out.biomarkers.length !== out.frames * k) {
    throw new ModelError(`biomarker output has ${out.biomarkers.length} values, expected ${out.frames}×${k}`);
  }
  if (out.embedding.length !== out.frames * out.embeddingDim) {
    throw new ModelError(
      `embedding output has ${out.embedding.length} values, expected ${out.frames}×${out.embeddingDim}`,
    );
  }
  const series = {} as Record<Biomarker, number[]>;
  const stats = {} as Record<Biomarker, ClipStats>;
  BIOMARKERS.forEach((b, j) => {
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
  return { biomarkers: stats, embedding: { dim: d, mean, max }, frames: series };
}

// Float32 sigmoid outputs can land a hair outside [0, 1]; the schema is strict about probabilities.
function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}

/** The expert input vector: the named blocks of the features document, concatenated in order. */
export function featureVector(
  doc: Pick<FeaturesDocument, 'biomarkers' | 'embedding'>,
  blocks: readonly FeatureBlock[],
): Float32Array {
  const values: number[] = [];
  for (const block of blocks) {
    switch (block) {
      case 'biomarker-stats':
        for (const b of BIOMARKERS) for (const s of CLIP_STATISTICS) values.push(doc.biomarkers[b][s]);
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

/** Names of the entries of featureVector(…, blocks), for cards and debugging. */
export function featureNames(blocks: readonly FeatureBlock[], embeddingDim: number): string[] {
  const names: string[] = [];
  for (const block of blocks) {
    if (block === 'biomarker-stats')
      for (const b of BIOMARKERS) for (const s of CLIP_STATISTICS) names.push(`${b}.${s}`);
    else for (let j = 0; j < embeddingDim; j++) names.push(`${block}.${j}`);
  }
  return names;
}
