/**
 * The ONNX/PyTorch parity fixture of a trained extractor: PyTorch's outputs on
 * the first frames of a fixed clip, written by training/python at export time.
 * Checking it proves two things at once: the TypeScript decoder gives training
 * the same pixels (the sha256 of the uint8 tensor PyTorch read), and
 * onnxruntime-node reproduces PyTorch's numbers on them.
 */
import * as path from 'node:path';
import { decodeFrameBytes, toFloat01, createExtractorSession } from '../gpu-tasks/feature-extractor/src';
import { sha256Hex } from '../core/scan-id';
import type { ExtractorEntry } from '../core/schemas';
import { ParityFixture, readTrainingJson } from './schemas';

/** onnxruntime may differ from PyTorch by float rounding only. */
export const PARITY_TOLERANCE = 1e-4;

export interface ParityResult {
  tensorSha256: string;
  sameTensor: boolean;
  maxAbsDiff: { biomarkers: number; embedding: number };
}

export function readParityFixture(file: string): ParityFixture {
  return readTrainingJson(
    file,
    ParityFixture,
    'parity fixture',
    'training/python/train_extractor.py writes it with the final model.',
  );
}

/** Largest |actual - expected[at + i]| and how many exceed PARITY_TOLERANCE: the one comparison both checks use. */
function diffStats(actual: Float32Array, expected: ArrayLike<number>, at = 0): { max: number; over: number } {
  let max = 0;
  let over = 0;
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs((actual[i] as number) - (expected[at + i] as number));
    if (diff > max) max = diff;
    if (diff > PARITY_TOLERANCE) over++;
  }
  return { max, over };
}

function maxAbsDiff(actual: Float32Array, expected: number[][]): number {
  const flat = expected.flat();
  if (flat.length !== actual.length) throw new Error(`parity: ${actual.length} values, fixture has ${flat.length}`);
  return diffStats(actual, flat).max;
}

/** Decodes the fixture's clip with the serving decoder and runs the model's ONNX file on CPU. */
export async function checkParity(
  fixture: ParityFixture,
  dataDir: string,
  modelsDir: string,
  entry: ExtractorEntry,
): Promise<ParityResult> {
  const clip = await decodeFrameBytes(path.join(dataDir, fixture.clip), {
    size: entry.input.size,
    maxFrames: entry.input.maxFrames,
    ...(entry.input.preprocessing ? { preprocessing: entry.input.preprocessing } : {}),
  });
  const tensorSha256 = sha256Hex(clip.bytes);
  const n = fixture.frames;
  const pixels = entry.input.size * entry.input.size;
  const session = await createExtractorSession(modelsDir, entry, { executionProvider: 'cpu' });
  try {
    const out = await session.run(toFloat01(clip.bytes.subarray(0, n * pixels)), n);
    return {
      tensorSha256,
      sameTensor: tensorSha256 === fixture.tensorSha256,
      maxAbsDiff: {
        biomarkers: maxAbsDiff(out.biomarkers, fixture.biomarkers),
        embedding: maxAbsDiff(out.embedding, fixture.embedding),
      },
    };
  } finally {
    await session.release();
  }
}

/** PyTorch's outputs on every frame of the training set, item by item in dataset order (train_extractor.py writes them). */
export interface FullParityReference {
  biomarkers: Float32Array;
  embedding: Float32Array;
}

export interface FullParityResult {
  frames: number;
  maxAbsDiff: { biomarkers: number; embedding: number };
  /** How many output values differ by more than PARITY_TOLERANCE. */
  overTolerance: number;
}

/**
 * onnxruntime against PyTorch on every training frame, not only the fixture's few: the fixture's 16
 * frames of one clip passed 1.1.0 at 8.8e-5 while other frames were 5.8e-4 apart. `frames(i)` gives
 * item i's uint8 [n,1,S,S] tensor as training read it.
 */
export async function checkFullParity(
  items: number,
  frames: (i: number) => Uint8Array,
  reference: FullParityReference,
  modelsDir: string,
  entry: ExtractorEntry,
  batch = 256,
): Promise<FullParityResult> {
  const pixels = entry.input.size * entry.input.size;
  const k = entry.outputs.biomarkers.labels.length;
  const d = entry.outputs.embedding.dim;
  const worst = { biomarkers: 0, embedding: 0 };
  let frame = 0;
  let overTolerance = 0;
  const compare = (key: 'biomarkers' | 'embedding', got: Float32Array, at: number) => {
    const want = reference[key];
    if (at + got.length > want.length) throw new Error(`parity: the reference has fewer ${key} values than the frames`);
    const { max, over } = diffStats(got, want, at);
    worst[key] = Math.max(worst[key], max);
    overTolerance += over;
  };
  const session = await createExtractorSession(modelsDir, entry, { executionProvider: 'cpu' });
  try {
    for (let i = 0; i < items; i++) {
      const bytes = frames(i);
      for (let s = 0; s < bytes.length / pixels; s += batch) {
        const n = Math.min(batch, bytes.length / pixels - s);
        const out = await session.run(toFloat01(bytes.subarray(s * pixels, (s + n) * pixels)), n);
        compare('biomarkers', out.biomarkers, frame * k);
        compare('embedding', out.embedding, frame * d);
        frame += n;
      }
    }
  } finally {
    await session.release();
  }
  if (frame * k !== reference.biomarkers.length || frame * d !== reference.embedding.length) {
    throw new Error(
      `parity: ${frame} frames, but the reference has ${reference.biomarkers.length / k} frames of biomarkers and ${reference.embedding.length / d} of embeddings`,
    );
  }
  return { frames: frame, maxAbsDiff: worst, overTolerance };
}
