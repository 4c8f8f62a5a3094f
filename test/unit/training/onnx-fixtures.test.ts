import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { BIOMARKERS } from '../../../core/biomarkers';
import { loadManifest, readVerifiedModel } from '../../../core/manifest';
import {
  buildFixtureModelSet,
  FIXTURE_EXPERTS,
  FIXTURE_EXTRACTOR,
  writeFixtureModels,
} from '../../../training/onnx/fixture-models';
import {
  buildFixtureExtractor,
  buildLinearExpert,
  fixtureExtractorWeights,
  linearExpertWeights,
  runFixtureExtractorReference,
  runLinearExpertReference,
} from '../../../training/onnx/fixtures';
import { mulberry32 } from '../../../training/onnx/graph';
import { ProtoWriter } from '../../../training/onnx/proto';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe('protobuf writer', () => {
  it('encodes varints, including negatives as 10-byte two’s complement', () => {
    // Prepare
    const w = new ProtoWriter();
    // Act
    w.varint(1);
    w.varint(300);
    w.varint(-1);
    // Assess
    expect(Array.from(w.finish())).toEqual([
      0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
  });

  it('encodes tags, strings and packed floats', () => {
    const w = new ProtoWriter();
    w.string(2, 'ab');
    w.packedFloats(7, [1]);
    expect(Array.from(w.finish())).toEqual([0x12, 0x02, 0x61, 0x62, 0x3a, 0x04, 0x00, 0x00, 0x80, 0x3f]);
  });
});

describe('mulberry32', () => {
  it('is deterministic per seed and in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(mulberry32(43)()).not.toBe(xs[0]);
  });
});

describe('fixture extractor', () => {
  it('runs in onnxruntime and matches the TypeScript reference within 1e-5', async () => {
    // Prepare
    const opts = { size: 128, embeddingDim: 32, seed: 7 };
    const session = await ort.InferenceSession.create(buildFixtureExtractor(opts));
    const n = 3;
    const rand = mulberry32(99);
    const frames = Float32Array.from({ length: n * 128 * 128 }, () => rand());
    // Act
    const out = await session.run({ frames: new ort.Tensor('float32', frames, [n, 1, 128, 128]) });
    const ref = runFixtureExtractorReference(fixtureExtractorWeights(opts), frames, n);
    // Assess
    expect(session.inputNames).toEqual(['frames']);
    expect([...session.outputNames].sort()).toEqual(['biomarkers', 'embedding']);
    expect(out.embedding?.dims).toEqual([n, 32]);
    expect(out.biomarkers?.dims).toEqual([n, BIOMARKERS.length]);
    expect(maxAbsDiff(out.embedding?.data as Float32Array, ref.embedding)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(out.biomarkers?.data as Float32Array, ref.biomarkers)).toBeLessThanOrEqual(1e-5);
  });

  it('is byte-for-byte reproducible and seed-dependent', () => {
    expect(sha(buildFixtureExtractor({ seed: 1 }))).toBe(sha(buildFixtureExtractor({ seed: 1 })));
    expect(sha(buildFixtureExtractor({ seed: 1 }))).not.toBe(sha(buildFixtureExtractor({ seed: 2 })));
  });

  it('rejects a size that is not a multiple of the pooling window', () => {
    expect(() => buildFixtureExtractor({ size: 100, seed: 1 })).toThrow(/multiple of 16/);
  });
});

describe('linear expert', () => {
  it('outputs softmax probabilities matching the TypeScript reference within 1e-5', async () => {
    // Prepare
    const opts = { inputDim: 88, labels: ['covid', 'pneumonia', 'healthy'], seed: 3 };
    const session = await ort.InferenceSession.create(buildLinearExpert(opts));
    const n = 4;
    const rand = mulberry32(5);
    const x = Float32Array.from({ length: n * 88 }, () => rand() * 2 - 1);
    // Act
    const out = await session.run({ features: new ort.Tensor('float32', x, [n, 88]) });
    const ref = runLinearExpertReference(linearExpertWeights(opts), x, n);
    // Assess
    const probs = out.probabilities?.data as Float32Array;
    expect(out.probabilities?.dims).toEqual([n, 3]);
    expect(maxAbsDiff(probs, ref)).toBeLessThanOrEqual(1e-5);
    for (let r = 0; r < n; r++) expect(probs[r * 3]! + probs[r * 3 + 1]! + probs[r * 3 + 2]!).toBeCloseTo(1, 5);
  });

  it('uses given weights and bias', async () => {
    const weights = Float32Array.from([1, 0, 0, 1]);
    const bias = Float32Array.from([0, Math.log(3)]);
    const session = await ort.InferenceSession.create(
      buildLinearExpert({ inputDim: 2, labels: ['a', 'b'], weights, bias, seed: 0 }),
    );
    const out = await session.run({ features: new ort.Tensor('float32', Float32Array.from([0, 0]), [1, 2]) });
    expect(Array.from(out.probabilities?.data as Float32Array)).toEqual([
      expect.closeTo(0.25, 6),
      expect.closeTo(0.75, 6),
    ]);
  });
});

describe('fixture model set', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sonomark-fixtures-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a manifest that loads, with verified files, and every card says fixture', () => {
    // Act
    const written = writeFixtureModels(dir);
    const { manifest } = loadManifest(dir);
    // Assess
    expect(manifest).toEqual(written.manifest);
    expect(manifest.extractors.ultrasound.name).toBe(FIXTURE_EXTRACTOR.name);
    expect(manifest.experts.map((e) => e.name)).toEqual(FIXTURE_EXPERTS.map((e) => e.name));
    for (const entry of [manifest.extractors.ultrasound, ...manifest.experts]) {
      expect(() => readVerifiedModel(dir, entry)).not.toThrow();
      expect(entry.card.status).toBe('fixture');
      expect(entry.card.summary).toMatch(/NOT TRAINED/);
      expect(entry.card.summary).toMatch(/no clinical meaning/);
      expect(entry.card.metrics).toEqual({});
    }
    expect(manifest.experts.find((e) => e.name === 'triage')?.output.positive).toBe('abnormal');
    expect(manifest.experts.every((e) => e.input.dim === 6 * 4 + 32 + 32)).toBe(true);
  });

  it('is byte-for-byte reproducible', () => {
    const a = buildFixtureModelSet();
    const b = buildFixtureModelSet();
    expect([...a.files.entries()].map(([k, v]) => [k, sha(v)])).toEqual(
      [...b.files.entries()].map(([k, v]) => [k, sha(v)]),
    );
  });

  it('matches the committed models/ (the committed files cannot drift from the script)', () => {
    // Prepare: regenerate in a temp dir, as the script would.
    const regenerated = writeFixtureModels(dir);
    const committed = path.join(DEFAULT_MODELS_DIR, 'manifest.json');
    expect(existsSync(committed)).toBe(true);
    const shipped = loadManifest(DEFAULT_MODELS_DIR).manifest;
    const shippedFiles = [shipped.extractors.ultrasound, ...shipped.experts].map((e) => e.file);
    // Assess: every fixture file in models/ is exactly what the script writes today.
    for (const [rel, bytes] of regenerated.files) {
      const file = path.join(DEFAULT_MODELS_DIR, rel);
      if (rel === 'manifest.json' && shipped.extractors.ultrasound.card.status !== 'fixture') continue; // a trained set replaced it
      if (!existsSync(file)) {
        // A trained set replaced this fixture file: then no shipped entry may still name it.
        expect({ rel, namedBy: shippedFiles.filter((f) => f === rel) }).toEqual({ rel, namedBy: [] });
        continue;
      }
      expect({ rel, sha: sha(readFileSync(file)) }).toEqual({ rel, sha: sha(bytes) });
    }
    // No shipped entry that points at a fixture file may claim to be trained.
    const fixtureShas = new Set(
      [regenerated.manifest.extractors.ultrasound, ...regenerated.manifest.experts].map((e) => e.sha256),
    );
    for (const entry of [shipped.extractors.ultrasound, ...shipped.experts]) {
      if (fixtureShas.has(entry.sha256) || entry.name.includes('fixture')) expect(entry.card.status).toBe('fixture');
    }
  });
});
