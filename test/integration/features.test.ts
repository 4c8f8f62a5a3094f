/**
 * `sonomark features` on a real clip, and an expert trained by `sonomark experts
 * train` running in the local workflow (the synthesized state machine, s3rver,
 * dynalite) on that clip.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli';
import { FeaturesRecord } from '../../training/experts/data';
import { featuresCacheFile } from '../../training/experts/features-cache';
import { matrix, predictProba } from '../../training/experts/model';
import { syntheticLabelsCsv, syntheticRows } from '../../training/experts/synthetic';
import { runExpertTraining } from '../../training/experts/train-command';
import { featureVector } from '../../core/features';
import { LocalWorkflow } from '../../local/workflow';
import { writeFixtureModels } from '../../training/onnx/fixture-models';
import { clip, tempDir } from './helpers';

jest.setTimeout(180_000);

const CLIP = clip('videos/convex/Reg-Atlas.gif');

const cli = runCli;

describe('sonomark features and a trained expert on a real clip', () => {
  const work = tempDir('sonomark-features-it-');
  const models = path.join(work, 'models');
  const cache = path.join(work, 'cache');
  const extractor = writeFixtureModels(models).manifest.extractors.ultrasound;
  let first: Awaited<ReturnType<typeof cli>>;
  let second: Awaited<ReturnType<typeof cli>>;
  let record: FeaturesRecord;

  beforeAll(async () => {
    // Every test below reads the clip's features from the cache: extract them here, and
    // once more to be served from the cache, whatever order the tests run in.
    first = await cli(['features', '--cache', cache, '--models-dir', models, CLIP]);
    second = await cli(['features', '--cache', cache, '--models-dir', models, CLIP]);
    if (first.code !== 0) throw new Error(`sonomark features failed (${first.code}): ${first.stderr}`);
    record = FeaturesRecord.parse(JSON.parse(first.stdout));
  });

  it('extracts features once, caches them by content and extractor, and serves the cache the second time', () => {
    // Assess
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    const a = FeaturesRecord.parse(JSON.parse(first.stdout));
    const b = FeaturesRecord.parse(JSON.parse(second.stdout));
    expect(a).toMatchObject({ file: CLIP, name: 'Reg-Atlas', cached: false });
    expect(b).toMatchObject({ file: CLIP, name: 'Reg-Atlas', cached: true });
    expect(b.features).toEqual(a.features);
    expect(a.features.extractor).toEqual({
      name: extractor.name,
      version: extractor.version,
      sha256: extractor.sha256,
    });
    expect(a.features.sampling.decodedFrames).toBeGreaterThan(1);
    const file = featuresCacheFile(cache, extractor, a.sha256);
    expect(file).toBe(path.join(cache, 'features', `${extractor.name}-${extractor.version}`, `${a.sha256}.json`));
    expect(existsSync(file)).toBe(true);
    expect(first.stderr).toMatch(/\[1\/1\] extracted/);
    expect(second.stderr).toMatch(/\[1\/1\] cached/);
  });

  it('keeps going past a bad clip and exits 1, with a clear line for it', async () => {
    // Prepare
    const bad = path.join(work, 'not-a-clip.gif');
    writeFileSync(bad, 'GIF? no, just text');
    const out = path.join(work, 'out.jsonl');

    // Act
    const r = await cli(['features', '--cache', cache, '--models-dir', models, '--out', out, bad, CLIP]);

    // Assess
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[1\/2\] FAILED\s+.*not-a-clip\.gif: UNSUPPORTED_FORMAT: /);
    expect(r.stderr).toMatch(/\[2\/2\] cached/);
    expect(r.stdout).toBe('');
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(FeaturesRecord.parse(JSON.parse(lines[0]!)).sha256).toBe(record.sha256);
  });

  it('runs an expert trained by the tool in the local workflow, with the features the tool extracted', async () => {
    // Prepare: train "triage" on synthetic documents of this extractor into the temp models dir.
    const ref = { name: extractor.name, version: extractor.version, sha256: extractor.sha256 };
    const rows = syntheticRows({ seed: 8, rows: 60, extractor: ref });
    const features = path.join(work, 'synthetic.jsonl');
    writeFileSync(
      features,
      rows
        .map((r) => JSON.stringify({ file: `/s/${r.name}.mp4`, name: r.name, sha256: r.sha256, features: r.features }))
        .join('\n'),
    );
    const labels = path.join(work, 'labels.csv');
    writeFileSync(labels, syntheticLabelsCsv(rows));
    const trained = await runExpertTraining({
      features,
      labels,
      target: 'triage',
      kind: 'binary',
      name: 'triage',
      classes: '0=healthy,1=abnormal',
      groupColumn: 'group',
      foldColumn: 'fold',
      modelsDir: models,
      version: '0.1.0',
      bootstrap: 0,
      candidates: ['linear'],
    });

    // Act
    const workflow = await LocalWorkflow.start({ modelsDir: models });
    let result;
    try {
      result = await workflow.analyze(CLIP);
    } finally {
      await workflow.close();
    }

    // Assess
    if (result.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(result.error)}`);
    expect(result.models!.experts.triage).toBe('triage@0.1.0');
    // The workflow's features are the ones `sonomark features` cached (same code, same pixels, same scan id).
    expect(result.features!.scanId).toBe(record.features.scanId);
    expect(result.features!.biomarkers).toEqual(record.features.biomarkers);
    expect(result.features!.embedding).toEqual(record.features.embedding);
    // And the workflow's triage is the trainer's prediction on them.
    const v = featureVector(result.features!, trained.entry.input.blocks);
    const want = predictProba(trained.result.model, matrix(1, v.length, Float64Array.from(v))).data;
    const triage = result.experts.triage;
    if (triage?.kind !== 'binary') throw new Error('expected a binary triage output');
    expect(triage.positive).toBe('abnormal');
    expect(triage.probability).toBeCloseTo(want[1]!, 5);
  });
});
