import { makeLavfiClip } from '../../helpers/clips';
import { tempDir } from '../../helpers/temp';
import fs, { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BIOMARKERS } from '../../../core/biomarkers';
import { ModelError } from '../../../core/errors';
import { aggregateFrames } from '../../../core/features';
import { FIXTURE_EXTRACTOR, writeFixtureModels } from '../../../training/onnx/fixture-models';
import { fixtureExtractorWeights, runFixtureExtractorReference } from '../../../training/onnx/fixtures';
import { FeaturesDocument, type ExtractorEntry } from '../../../core/schemas';
import {
  createExtractorSession,
  cudaProviderInstalled,
  decodeFrames,
  extractFeatures,
  type ExtractorSession,
} from '../../../gpu-tasks/feature-extractor/src';
import { asBytes, createWorkerExtractorSession } from '../../../gpu-tasks/feature-extractor/src/infer-worker';
import { toFloat01 } from '../../../gpu-tasks/feature-extractor/src/decode';

const SCAN_ID = '0123456789abcdef0123456789abcdef';

let modelsDir: string;
let entry: ExtractorEntry;
let session: ExtractorSession;

beforeAll(async () => {
  modelsDir = mkdtempSync(path.join(tmpdir(), 'sonomark-infer-test-'));
  entry = writeFixtureModels(modelsDir).manifest.extractors.ultrasound;
  session = await createExtractorSession(modelsDir, entry, { executionProvider: 'cpu' });
});
afterAll(async () => {
  await session.release();
  rmSync(modelsDir, { recursive: true, force: true });
});

/** Deterministic frames with structure (a gradient plus a per-frame offset), [n,1,size,size]. */
function syntheticFrames(n: number, size: number): Float32Array {
  const frames = new Float32Array(n * size * size);
  for (let f = 0; f < n; f++) {
    for (let i = 0; i < size * size; i++) frames[f * size * size + i] = ((i % size) / size + f / n) / 2;
  }
  return frames;
}

describe('extractor infer: session', () => {
  it('runs frames in batches and matches the reference implementation', async () => {
    // Prepare: 40 frames = one full batch of 32 and a partial one of 8
    const n = 40;
    const frames = syntheticFrames(n, entry.input.size);
    const weights = fixtureExtractorWeights({
      size: FIXTURE_EXTRACTOR.size,
      embeddingDim: FIXTURE_EXTRACTOR.embeddingDim,
      seed: FIXTURE_EXTRACTOR.seed,
    });

    // Act
    const out = await session.run(frames, n);

    // Assess
    const ref = runFixtureExtractorReference(weights, frames, n);
    expect(session.executionProvider).toBe('cpu');
    expect(out.frames).toBe(n);
    expect(out.embeddingDim).toBe(entry.outputs.embedding.dim);
    expect(out.biomarkers).toHaveLength(n * BIOMARKERS.length);
    expect(out.embedding).toHaveLength(n * entry.outputs.embedding.dim);
    const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
      Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0);
    expect(maxDiff(out.biomarkers, ref.biomarkers)).toBeLessThan(1e-4);
    expect(maxDiff(out.embedding, ref.embedding)).toBeLessThan(1e-4);
  });

  it('gives the same outputs for a frame whatever batch it falls in', async () => {
    // Prepare
    const size = entry.input.size;
    const frames = syntheticFrames(40, size);
    const last = frames.slice(39 * size * size);

    // Act
    const all = await session.run(frames, 40);
    const alone = await session.run(last, 1);

    // Assess
    const k = BIOMARKERS.length;
    Array.from(alone.biomarkers).forEach((v, j) => expect(v).toBeCloseTo(all.biomarkers[39 * k + j] as number, 6));
  });

  it('rejects a frame buffer of the wrong length', async () => {
    // Prepare
    const frames = new Float32Array(10);

    // Act / Assess
    await expect(session.run(frames, 1)).rejects.toThrow(RangeError);
  });

  it('falls back to CPU with one JSON warning when CUDA is not available (auto)', async () => {
    // Prepare: hide the CUDA provider library, so a GPU build (onnxruntime-node installed with
    // CUDA) takes the same path as a CPU one instead of skipping the test.
    const warnings: string[] = [];
    const realExistsSync = fs.existsSync;
    const hideCuda = jest
      .spyOn(fs, 'existsSync')
      .mockImplementation((p) => !String(p).endsWith('libonnxruntime_providers_cuda.so') && realExistsSync(p));

    // Act
    let s: ExtractorSession;
    try {
      expect(cudaProviderInstalled()).toBe(false);
      s = await createExtractorSession(modelsDir, entry, {
        executionProvider: 'auto',
        warn: (l) => warnings.push(l),
      });
    } finally {
      hideCuda.mockRestore();
    }
    await s.release();

    // Assess
    expect(s.executionProvider).toBe('cpu');
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0] as string)).toMatchObject({ level: 'WARN', extractor: entry.name });
  });
});

describe('extractor infer: model checks', () => {
  it.each([
    [
      'input name',
      (e: ExtractorEntry): ExtractorEntry => ({ ...e, input: { ...e.input, name: 'pixels' } }),
      /inputs \[frames\].*"pixels"/,
    ],
    [
      'output name',
      (e: ExtractorEntry): ExtractorEntry => ({
        ...e,
        outputs: { ...e.outputs, embedding: { ...e.outputs.embedding, name: 'features' } },
      }),
      /outputs \[.*\].*"features"/,
    ],
    [
      'embedding dim',
      (e: ExtractorEntry): ExtractorEntry => ({
        ...e,
        outputs: { ...e.outputs, embedding: { ...e.outputs.embedding, dim: 33 } },
      }),
      /output "embedding" has shape \[batch, 32\].*\[batch, 33\]/,
    ],
    [
      'frame size',
      (e: ExtractorEntry): ExtractorEntry => ({ ...e, input: { ...e.input, size: 64 } }),
      /input "frames" has shape/,
    ],
  ])('rejects a manifest entry whose %s does not match the model', async (_what, mutate, message) => {
    // Prepare
    const bad = mutate(entry);

    // Act
    const err = await createExtractorSession(modelsDir, bad, { executionProvider: 'cpu' }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses a model file whose sha256 differs from the manifest', async () => {
    // Prepare
    const dir = tempDir('sonomark-infer-sha-');
    const e = writeFixtureModels(dir).manifest.extractors.ultrasound;
    writeFileSync(path.join(dir, e.file), Buffer.from('not the model'));

    // Act
    const err = await createExtractorSession(dir, e, { executionProvider: 'cpu' }).catch((x: unknown) => x);

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toMatch(/sha256/);
  });
});

describe('extractor infer: session in its own process (local mode)', () => {
  it('sends decoded frames as their bytes and gives exactly the in-process outputs', async () => {
    // Prepare: frames as the decoder makes them (byte / 255), one full batch and a partial one
    const n = 40;
    const size = entry.input.size;
    const bytes = Uint8Array.from({ length: n * size * size }, (_, i) => (i * 37 + (i >> 9)) & 255);
    const frames = toFloat01(bytes);
    const worker = await createWorkerExtractorSession(modelsDir, entry);

    // Act
    const [inWorker, inProcess] = await Promise.all([worker.run(frames, n), session.run(frames, n)]);
    await worker.release();

    // Assess: the byte path was taken, and the model saw the same floats
    expect(Array.from(asBytes(frames) ?? [])).toEqual(Array.from(bytes));
    expect(Array.from(inWorker.biomarkers)).toEqual(Array.from(inProcess.biomarkers));
    expect(Array.from(inWorker.embedding)).toEqual(Array.from(inProcess.embedding));
  });

  it('sends frames that are not bytes / 255 as floats', () => {
    // Prepare
    const frames = Float32Array.from([0, 1, 0.5, 128 / 255]);

    // Act / Assess: 0.5 is not k/255; 2 is out of range; k/255 round-trips
    expect(asBytes(frames)).toBeUndefined();
    expect(asBytes(Float32Array.from([2]))).toBeUndefined();
    expect(Array.from(asBytes(Float32Array.from([0, 1, 128 / 255])) ?? [])).toEqual([0, 255, 128]);
  });

  it('gives exactly the in-process session outputs, batch by batch', async () => {
    // Prepare: one full batch of 32 and a partial one of 8
    const n = 40;
    const frames = syntheticFrames(n, entry.input.size);
    const worker = await createWorkerExtractorSession(modelsDir, entry);

    // Act
    const [inWorker, inProcess] = await Promise.all([worker.run(frames, n), session.run(frames, n)]);
    await worker.release();

    // Assess
    expect(inWorker.frames).toBe(n);
    expect(Array.from(inWorker.biomarkers)).toEqual(Array.from(inProcess.biomarkers));
    expect(Array.from(inWorker.embedding)).toEqual(Array.from(inProcess.embedding));
    expect(worker.executionProvider).toBe('cpu');
  });

  it("checks the worker's model against the manifest entry like the in-process session", async () => {
    // Prepare
    const bad: ExtractorEntry = { ...entry, input: { ...entry.input, name: 'pixels' } };

    // Act
    const err = await createWorkerExtractorSession(modelsDir, bad).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toMatch(/inputs \[frames\].*"pixels"/);
  });

  it('refuses a run after release', async () => {
    // Prepare
    const worker = await createWorkerExtractorSession(modelsDir, entry);
    await worker.release();

    // Act
    const err = await worker.run(syntheticFrames(1, entry.input.size), 1).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ModelError);
  });
});

describe('extractor extract: features document', () => {
  it('decodes, infers and aggregates a clip into a valid features document', async () => {
    // Prepare
    const clipPath = makeLavfiClip(path.join(modelsDir, 'clip.mp4'), 'testsrc=size=160x120:rate=25:duration=4');
    const now = new Date('2026-01-02T03:04:05.000Z');

    // Act
    const doc = await extractFeatures({ clip: clipPath, scanId: SCAN_ID, session, entry, now: () => now });

    // Assess
    expect(() => FeaturesDocument.parse(doc)).not.toThrow();
    expect(doc.scanId).toBe(SCAN_ID);
    expect(doc.extractor).toEqual({ name: entry.name, version: entry.version, sha256: entry.sha256 });
    expect(doc.sampling).toMatchObject({
      strategy: 'uniform',
      maxFrames: 64,
      decodedFrames: 100,
      width: 128,
      height: 128,
      colorspace: 'gray',
    });
    expect(doc.sampling.frameIndices).toHaveLength(64);
    for (const b of BIOMARKERS) expect(doc.frames[b]).toHaveLength(64);
    expect(doc.embedding.mean).toHaveLength(entry.outputs.embedding.dim);
    expect(doc.runtime.executionProvider).toBe('cpu');
    expect(doc.createdAt).toBe(now.toISOString());
    // The document is exactly decode → run → aggregateFrames.
    const clip = await decodeFrames(clipPath);
    const expected = aggregateFrames(await session.run(clip.frames, clip.count), 'ultrasound');
    expect(doc.biomarkers).toEqual(expected.biomarkers);
    expect(doc.embedding).toEqual(expected.embedding);
  });

  it('refuses an entry that is not the one the session was loaded from', async () => {
    // Prepare
    const other: ExtractorEntry = { ...entry, sha256: 'f'.repeat(64) };

    // Act
    const result = extractFeatures({ clip: Buffer.from('x'), scanId: SCAN_ID, session, entry: other });

    // Assess
    await expect(result).rejects.toThrow(ModelError);
  });
});
