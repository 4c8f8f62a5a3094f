/**
 * The shipped extractor: the file the manifest names, its contract, its
 * determinism and its ONNX/PyTorch parity fixture. Training is not run here.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import {
  createExtractorSession,
  decodeFrameBytes,
  decodeFrames,
  extractFeatures,
  toFloat01,
  type ExtractorSession,
} from '../../gpu-tasks/feature-extractor/src';
import { BIOMARKERS } from '../../core/biomarkers';
import { checkFullParity, checkParity, PARITY_TOLERANCE, readParityFixture } from '../../training/parity';
import { loadManifest } from '../../core/manifest';
import { clip, POCUS } from './helpers';

const { manifest, dir } = loadManifest();
const entry = manifest.extractors.ultrasound;
const base = entry.file.replace(/\.onnx$/, '');
let session: ExtractorSession;

beforeAll(async () => {
  session = await createExtractorSession(dir, entry, { executionProvider: 'cpu' });
});
afterAll(async () => {
  await session.release();
});

describe(`shipped extractor ${entry.name}@${entry.version}`, () => {
  it('is a trained model with a card, metrics and a parity fixture beside it', () => {
    expect(entry.card.status).toBe('trained');
    for (const f of [entry.card.cardFile!, `${base}.metrics.json`, `${base}.parity.json`]) {
      expect(existsSync(path.join(dir, f))).toBe(true);
    }
    expect(entry.card.metrics).toHaveProperty('meanCvAuc');
  });

  it('emits the biomarkers in sonomark order and an embedding of the declared width, per frame', async () => {
    expect(entry.outputs.biomarkers.labels).toEqual([...BIOMARKERS]);
    const decoded = await decodeFrames(clip('videos/convex/Reg-Atlas.gif'), { size: entry.input.size, maxFrames: 7 });
    const out = await session.run(decoded.frames, decoded.count);
    expect(out.biomarkers).toHaveLength(7 * BIOMARKERS.length);
    expect(out.embedding).toHaveLength(7 * entry.outputs.embedding.dim);
    for (const p of out.biomarkers) expect(p >= 0 && p <= 1).toBe(true);
    // The embedding comes after a ReLU.
    for (const e of out.embedding) expect(e).toBeGreaterThanOrEqual(0);
  });

  it('gives the same features for the same clip, run twice and in another batch size', async () => {
    const file = clip('videos/convex/Pneu_northumbria_0409_set6_vid1.avi');
    const scanId = '0'.repeat(32);
    const a = await extractFeatures({ clip: file, scanId, session });
    const b = await extractFeatures({ clip: file, scanId, session });
    expect(b.biomarkers).toEqual(a.biomarkers);
    expect(b.embedding).toEqual(a.embedding);
    const small = await createExtractorSession(
      dir,
      { ...entry, input: { ...entry.input, batchSize: 5 } },
      {
        executionProvider: 'cpu',
      },
    );
    try {
      const c = await extractFeatures({ clip: file, scanId, session: small });
      const flat = (d: typeof a) => Object.values(d.biomarkers).flatMap((s) => Object.values(s));
      flat(c).forEach((v, i) => expect(Math.abs(v - flat(a)[i]!)).toBeLessThan(1e-5));
    } finally {
      await small.release();
    }
  });

  it('matches PyTorch on the parity fixture, from the same decoded pixels training read', async () => {
    const fixture = readParityFixture(path.join(dir, `${base}.parity.json`));
    const result = await checkParity(fixture, POCUS, dir, entry);
    expect(result.tensorSha256).toBe(fixture.tensorSha256);
    expect(result.maxAbsDiff.biomarkers).toBeLessThanOrEqual(PARITY_TOLERANCE);
    expect(result.maxAbsDiff.embedding).toBeLessThanOrEqual(PARITY_TOLERANCE);
  });

  it('checks every frame of a training set against a reference, counting the values over the tolerance', async () => {
    // PyTorch's all-frame outputs stay with the training run, so onnxruntime's own outputs (one batch)
    // are the reference here; the check runs in batches of 4 across two items of 10 and 3 frames.
    const fixture = readParityFixture(path.join(dir, `${base}.parity.json`));
    const { bytes } = await decodeFrameBytes(path.join(POCUS, fixture.clip), {
      size: entry.input.size,
      maxFrames: entry.input.maxFrames,
    });
    const px = entry.input.size * entry.input.size;
    const items = [bytes.subarray(0, 10 * px), bytes.subarray(10 * px, 13 * px)];
    const out = await session.run(toFloat01(bytes.subarray(0, 13 * px)), 13);
    const ref = { biomarkers: out.biomarkers.slice(), embedding: out.embedding.slice() };
    const check = (r: typeof ref) => checkFullParity(2, (i) => items[i]!, r, dir, entry, 4);

    const same = await check(ref);
    expect(same.frames).toBe(13);
    expect(same.overTolerance).toBe(0);
    expect(Math.max(same.maxAbsDiff.biomarkers, same.maxAbsDiff.embedding)).toBeLessThan(1e-5);

    const off = { biomarkers: ref.biomarkers.slice(), embedding: ref.embedding.slice() };
    off.biomarkers[7]! -= 5e-4;
    off.embedding[12 * 48 + 5]! += 2e-3;
    const bad = await check(off);
    expect(bad.overTolerance).toBe(2);
    expect(bad.maxAbsDiff.embedding).toBeCloseTo(2e-3, 4);
    expect(bad.maxAbsDiff.biomarkers).toBeCloseTo(5e-4, 4);

    const short = { biomarkers: ref.biomarkers.subarray(0, 12 * 6), embedding: ref.embedding.subarray(0, 12 * 48) };
    await expect(check(short)).rejects.toThrow('the reference has fewer biomarkers values than the frames');
    const long = { biomarkers: new Float32Array(14 * 6), embedding: new Float32Array(14 * 48) };
    long.biomarkers.set(ref.biomarkers);
    long.embedding.set(ref.embedding);
    await expect(check(long)).rejects.toThrow('13 frames, but the reference has 14 frames of biomarkers');
  });
});
