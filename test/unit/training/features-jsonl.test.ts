/** Features of a folder of clips into one JSONL file, as the experts' training reads them. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { TrainingDataError } from '../../../training/experts/errors';
import { listClipFiles, writeFeaturesJsonl } from '../../../training/experts/features-cache';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { makeLavfiClip } from '../../helpers/clips';

let dir: string;
let models: string;
let clips: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sonomark-jsonl-'));
  models = path.join(dir, 'models');
  writeFixtureModels(models);
  clips = path.join(dir, 'clips');
  mkdirSync(path.join(clips, 'sub'), { recursive: true });
  makeLavfiClip(path.join(clips, 'b.mp4'), 'testsrc=size=160x120:rate=10', ['-frames:v', '4']);
  makeLavfiClip(path.join(clips, 'sub', 'a.avi'), 'testsrc2=size=160x120:rate=10', ['-frames:v', '4']);
  writeFileSync(path.join(clips, 'notes.txt'), 'not a clip');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('listClipFiles', () => {
  it('walks directories in name order for clip extensions, and keeps files and missing paths as given', () => {
    const missing = path.join(dir, 'missing.mp4');
    expect(listClipFiles([clips, missing])).toEqual([
      path.join(clips, 'b.mp4'),
      path.join(clips, 'sub', 'a.avi'),
      missing,
    ]);
  });
});

describe('writeFeaturesJsonl', () => {
  it('writes one record per clip, and reads them from the cache the second time', async () => {
    // Prepare
    const out = path.join(dir, 'out', 'features.jsonl');
    const cacheDir = path.join(dir, 'cache');

    // Act
    const first = await writeFeaturesJsonl({
      inputs: [clips],
      modelsDir: models,
      cacheDir,
      out,
      executionProvider: 'cpu',
    });
    const second = await writeFeaturesJsonl({
      inputs: [clips],
      modelsDir: models,
      cacheDir,
      out,
      executionProvider: 'cpu',
    });

    // Assess
    expect(first).toEqual({ clips: 2, cached: 0 });
    expect(second).toEqual({ clips: 2, cached: 2 });
    const records = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records.map((r) => [r.name, r.cached])).toEqual([
      ['b', true],
      ['a', true],
    ]);
  });

  it('tries every clip, keeps the good ones, and names the bad ones in one error', async () => {
    // Prepare
    const bad = path.join(dir, 'bad');
    mkdirSync(bad, { recursive: true });
    writeFileSync(path.join(bad, 'broken.mp4'), 'not a video at all');
    const out = path.join(dir, 'bad.jsonl');

    // Act
    const run = writeFeaturesJsonl({
      inputs: [bad, path.join(clips, 'b.mp4')],
      modelsDir: models,
      cacheDir: path.join(dir, 'cache'),
      out,
      executionProvider: 'cpu',
    });

    // Assess
    await expect(run).rejects.toThrow(TrainingDataError);
    await expect(run).rejects.toThrow(
      /^1 of 2 clips have no features with sonomark-fixture-extractor@0\.0\.1: .*broken\.mp4/,
    );
    expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(1);
  });
});
