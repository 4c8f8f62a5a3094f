/**
 * The features cache behind `sonomark features`: keyed by the clip's bytes and the
 * extractor's name+version, filled through the GPU task's extractFeatures, and
 * never running the extractor again for bytes it has seen.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createExtractorSession, type ExtractorSession } from '../../../gpu-tasks/feature-extractor/src';
import { clipFeatures, featuresCacheFile, type ClipFeaturesDeps } from '../../../training/experts/features-cache';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { sha256Hex } from '../../../core/scan-id';
import { FeaturesDocument, type ExtractorEntry } from '../../../core/schemas';
import { makeLavfiClip } from '../../helpers/clips';

let dir: string;
let models: string;
let entry: ExtractorEntry;
let clip: string;
const sessions: ExtractorSession[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sonomark-cache-'));
  models = path.join(dir, 'models');
  entry = writeFixtureModels(models).manifest.extractors.ultrasound;
  clip = makeLavfiClip(path.join(dir, 'clip.mp4'), 'testsrc=size=160x120:rate=10', ['-frames:v', '6']);
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.release()));
  rmSync(dir, { recursive: true, force: true });
});

/** Deps whose session factory counts how often the extractor had to be loaded. */
function deps(cacheDir: string, e: ExtractorEntry = entry) {
  const calls = { session: 0, warnings: [] as string[] };
  const d: ClipFeaturesDeps = {
    cacheDir,
    entry: e,
    session: async () => {
      calls.session++;
      const s = await createExtractorSession(models, entry, { executionProvider: 'cpu' });
      sessions.push(s);
      return s;
    },
    warn: (line) => calls.warnings.push(line),
  };
  return { d, calls };
}

describe('clipFeatures', () => {
  it('extracts once, writes <cache>/features/<extractor>-<version>/<sha256>.json, then serves the cache', async () => {
    // Prepare
    const cache = path.join(dir, 'c1');
    const first = deps(cache);
    const second = deps(cache);

    // Act
    const a = await clipFeatures(clip, first.d);
    const b = await clipFeatures(clip, second.d);

    // Assess
    const sha = sha256Hex(readFileSync(clip));
    const file = featuresCacheFile(cache, entry, sha);
    expect(file).toBe(path.join(cache, 'features', `${entry.name}-${entry.version}`, `${sha}.json`));
    expect(FeaturesDocument.parse(JSON.parse(readFileSync(file, 'utf8')))).toEqual(a.features);
    expect(a).toMatchObject({ file: path.resolve(clip), name: 'clip', sha256: sha, cached: false });
    expect(b).toMatchObject({ sha256: sha, cached: true });
    expect(b.features).toEqual(a.features);
    expect(first.calls.session).toBe(1);
    // The second run never loaded the extractor.
    expect(second.calls.session).toBe(0);
    expect(a.features.extractor).toEqual({ name: entry.name, version: entry.version, sha256: entry.sha256 });
    expect(a.features.sampling.decodedFrames).toBe(6);
  });

  it('is keyed by content: the same bytes under another name are a hit', async () => {
    // Prepare
    const cache = path.join(dir, 'c2');
    await clipFeatures(clip, deps(cache).d);
    const copy = path.join(dir, 'renamed.mp4');
    copyFileSync(clip, copy);
    const again = deps(cache);

    // Act
    const r = await clipFeatures(copy, again.d);

    // Assess
    expect(r).toMatchObject({ cached: true, name: 'renamed', file: path.resolve(copy) });
    expect(again.calls.session).toBe(0);
  });

  it('is keyed by extractor version: another version misses', async () => {
    // Prepare
    const cache = path.join(dir, 'c3');
    await clipFeatures(clip, deps(cache).d);
    const other = deps(cache, { ...entry, version: '0.0.2' });

    // Act
    const r = await clipFeatures(clip, other.d);

    // Assess
    expect(r.cached).toBe(false);
    expect(other.calls.session).toBe(1);
    expect(r.features.extractor.version).toBe('0.0.2');
    expect(existsSync(featuresCacheFile(cache, { name: entry.name, version: '0.0.2' }, r.sha256))).toBe(true);
    expect(
      FeaturesDocument.parse(JSON.parse(readFileSync(featuresCacheFile(cache, entry, r.sha256), 'utf8'))).extractor
        .version,
    ).toBe('0.0.1');
  });

  it('recomputes a stale entry (same version, another model file) and a corrupt one, saying why', async () => {
    // Prepare
    const cache = path.join(dir, 'c4');
    const made = await clipFeatures(clip, deps(cache).d);
    const file = featuresCacheFile(cache, entry, made.sha256);
    const stale = { ...made.features, extractor: { ...made.features.extractor, sha256: 'e'.repeat(64) } };
    writeFileSync(file, JSON.stringify(stale));
    const afterStale = deps(cache);

    // Act
    const r1 = await clipFeatures(clip, afterStale.d);
    writeFileSync(file, '{"half": ');
    const afterCorrupt = deps(cache);
    const r2 = await clipFeatures(clip, afterCorrupt.d);

    // Assess
    expect(r1.cached).toBe(false);
    expect(afterStale.calls.warnings.join('\n')).toMatch(/made by another .* model file .*recomputing/);
    expect(r2.cached).toBe(false);
    expect(afterCorrupt.calls.warnings.join('\n')).toMatch(/not valid JSON; recomputing/);
    expect(FeaturesDocument.parse(JSON.parse(readFileSync(file, 'utf8'))).extractor.sha256).toBe(entry.sha256);
  });
});
