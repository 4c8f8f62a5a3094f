/**
 * Shipping a trained extractor: a stand-in recipe output (the fixture extractor, with onnxruntime's own
 * outputs as the "PyTorch" parity reference) goes through the parity checks into a models directory,
 * under the manifest's version unless one is given, with the manifest written last.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createExtractorSession, decodeFrameBytes, toFloat01 } from '../../../gpu-tasks/feature-extractor/src';
import { loadManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { sha256Hex } from '../../../core/scan-id';
import { toNpy } from '../../../training/npy';
import { ExtractorMetrics, readTrainingJson } from '../../../training/schemas';
import { shipExtractor } from '../../../training/ship-extractor';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { makeLavfiClip } from '../../helpers/clips';

let work: string;
let from: string;
let data: string;
let models: string;
let report: Record<string, unknown>;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'sonomark-ship-'));
  const fixtures = path.join(work, 'fixtures');
  const x = writeFixtureModels(fixtures).manifest.extractors.ultrasound;
  // The "recipe output": the fixture extractor as if trained, and its outputs as the reference.
  from = path.join(work, 'extractor');
  data = path.join(work, 'pocus');
  const clips = path.join(work, 'clips');
  mkdirSync(from);
  mkdirSync(path.join(data, 'frames'), { recursive: true });
  mkdirSync(clips);
  copyFileSync(path.join(fixtures, x.file), path.join(from, 'extractor.onnx'));
  makeLavfiClip(path.join(clips, 'a.mp4'), 'testsrc=size=160x120:rate=10', ['-frames:v', '5']);
  const clip = await decodeFrameBytes(path.join(clips, 'a.mp4'), { size: x.input.size, maxFrames: x.input.maxFrames });
  writeFileSync(
    path.join(data, 'frames', 'a.npy'),
    toNpy(clip.bytes, [clip.count, 1, x.input.size, x.input.size], 'u1'),
  );
  const session = await createExtractorSession(fixtures, x, { executionProvider: 'cpu' });
  const out = await session.run(toFloat01(clip.bytes), clip.count);
  await session.release();
  const rows = (a: Float32Array, width: number) =>
    Array.from({ length: clip.count }, (_, i) => Array.from(a.subarray(i * width, (i + 1) * width)));
  writeFileSync(
    path.join(from, 'parity.json'),
    JSON.stringify({
      clip: 'a.mp4',
      tensorSha256: sha256Hex(clip.bytes),
      frames: clip.count,
      biomarkers: rows(out.biomarkers, 6),
      embedding: rows(out.embedding, x.outputs.embedding.dim),
    }),
  );
  writeFileSync(path.join(from, 'parity-full-biomarkers.npy'), toNpy(out.biomarkers, [clip.count, 6], '<f4'));
  writeFileSync(
    path.join(from, 'parity-full-embedding.npy'),
    toNpy(out.embedding, [clip.count, x.outputs.embedding.dim], '<f4'),
  );
  writeFileSync(
    path.join(data, 'dataset.json'),
    JSON.stringify({
      dataset: 'pocus',
      dataDir: clips,
      size: x.input.size,
      maxFrames: x.input.maxFrames,
      folds: 5,
      diagnoses: ['covid', 'pneumonia', 'healthy'],
      items: [
        {
          name: 'a',
          file: 'a.mp4',
          npy: 'frames/a.npy',
          kind: 'video',
          license: 'CC BY 4.0',
          source: '1',
          group: 'a',
          diagnosis: 'healthy',
          fold: 0,
          sha256: sha256Hex(readFileSync(path.join(clips, 'a.mp4'))),
        },
      ],
    }),
  );
  // The shipped extractor's training report, with the fixture's embedding size.
  const shipped = JSON.parse(
    readFileSync(
      path.join(
        DEFAULT_MODELS_DIR,
        loadManifest(DEFAULT_MODELS_DIR).manifest.extractors.ultrasound.file.replace(/\.onnx$/, '.metrics.json'),
      ),
      'utf8',
    ),
  );
  const { model: _model, parity: _p, parityAllFrames: _a, changes: _c, ...training } = shipped;
  report = { ...training, config: { ...training.config, embedding_dim: x.outputs.embedding.dim } };
  writeFileSync(path.join(from, 'report.json'), JSON.stringify(report));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeEach(() => {
  models = path.join(mkdtempSync(path.join(work, 'models-')), 'models');
  writeFixtureModels(models);
});

describe('shipExtractor', () => {
  it("re-ships under the manifest's name and version when none is given, keeping the experts on it", async () => {
    // Prepare
    const before = loadManifest(models).manifest;

    // Act
    const { entry, dropped } = await shipExtractor({ from, data, modelsDir: models });

    // Assess
    expect(entry).toMatchObject({
      name: before.extractors.ultrasound.name,
      version: before.extractors.ultrasound.version,
    });
    expect(dropped).toEqual([]);
    const after = loadManifest(models).manifest;
    expect(after.extractors.ultrasound).toEqual(entry);
    expect(after.experts).toEqual(before.experts);
  });

  it('ships a new version: model, card, parity and metrics files, experts on the old one dropped', async () => {
    // Prepare
    const lines: string[] = [];

    // Act
    const { entry, dropped } = await shipExtractor({
      from,
      data,
      modelsDir: models,
      name: 'test-extractor',
      version: '2.0.0',
      changes: 'A test.',
      log: (l) => lines.push(l),
    });

    // Assess
    expect(entry).toMatchObject({
      name: 'test-extractor',
      version: '2.0.0',
      file: 'extractor/test-extractor-2.0.0.onnx',
    });
    expect(dropped).toEqual(['diagnosis@0.0.1', 'severity@0.0.1', 'triage@0.0.1']);
    expect(loadManifest(models).manifest).toMatchObject({ extractor: entry, experts: [] });
    expect(
      readdirSync(path.join(models, 'extractor'))
        .filter((f) => f.startsWith('test-extractor'))
        .sort(),
    ).toEqual([
      'test-extractor-2.0.0.md',
      'test-extractor-2.0.0.metrics.json',
      'test-extractor-2.0.0.onnx',
      'test-extractor-2.0.0.parity.json',
    ]);
    expect(readdirSync(models).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const metricsFile = path.join(models, 'extractor', 'test-extractor-2.0.0.metrics.json');
    const metrics = readTrainingJson(metricsFile, ExtractorMetrics, 'metrics');
    expect(metrics).toMatchObject({ model: { name: 'test-extractor', version: '2.0.0' }, changes: 'A test.' });
    // The report is copied whole, in its own key order, between the model and the parity.
    const keys = Object.keys(JSON.parse(readFileSync(metricsFile, 'utf8')));
    expect(keys).toEqual(['model', ...Object.keys(report), 'parity', 'parityAllFrames', 'changes']);
    expect(readFileSync(path.join(models, 'extractor', 'test-extractor-2.0.0.md'), 'utf8')).toContain(
      '## Changes in 2.0.0\nA test.',
    );
    expect(lines.join('\n')).toMatch(/dropped experts trained on other features: .*sonomark train experts/);
  });

  it('refuses an invalid version before anything is written', async () => {
    // Prepare
    const before = readFileSync(path.join(models, 'manifest.json'));
    const files = readdirSync(path.join(models, 'extractor'));

    // Act / Assess
    await expect(shipExtractor({ from, data, modelsDir: models, version: '2.0' })).rejects.toThrow(
      /extractor\.version: .*Nothing was shipped\./,
    );
    expect(readFileSync(path.join(models, 'manifest.json')).equals(before)).toBe(true);
    expect(readdirSync(path.join(models, 'extractor'))).toEqual(files);
  });
});
