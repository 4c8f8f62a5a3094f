/**
 * The ONNX/PyTorch parity fixture of a trained extractor: PyTorch's outputs on
 * the first frames of a fixed clip, written by models/training at export time.
 * Checking it proves two things at once: the TypeScript decoder gives training
 * the same pixels (the sha256 of the uint8 tensor PyTorch read), and
 * onnxruntime-node reproduces PyTorch's numbers on them.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { decodeFrameBytes, toFloat01, createExtractorSession } from '../gpu-tasks/feature-extractor/src';
import { sha256Hex } from './scan-id';
import type { ExtractorEntry } from './schemas';

export const ParityFixture = z.object({
  /** Path of the clip relative to the POCUS data directory. */
  clip: z.string().min(1),
  /** sha256 of the whole clip's uint8 [n,1,S,S] tensor as training read it. */
  tensorSha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** PyTorch outputs on the first `frames` frames. */
  frames: z.number().int().positive(),
  biomarkers: z.array(z.array(z.number())),
  embedding: z.array(z.array(z.number())),
});
export type ParityFixture = z.infer<typeof ParityFixture>;

/** onnxruntime may differ from PyTorch by float rounding only. */
export const PARITY_TOLERANCE = 1e-4;

export interface ParityResult {
  tensorSha256: string;
  sameTensor: boolean;
  maxAbsDiff: { biomarkers: number; embedding: number };
}

export function readParityFixture(file: string): ParityFixture {
  return ParityFixture.parse(JSON.parse(readFileSync(file, 'utf8')));
}

function maxAbsDiff(actual: Float32Array, expected: number[][]): number {
  const flat = expected.flat();
  if (flat.length !== actual.length) throw new Error(`parity: ${actual.length} values, fixture has ${flat.length}`);
  let m = 0;
  for (let i = 0; i < flat.length; i++) m = Math.max(m, Math.abs((actual[i] as number) - (flat[i] as number)));
  return m;
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
