/**
 * The extractor image carries the extractor only: its Dockerfile and build context take
 * models/extractor/ (the ONNX file and its own, expert-free manifest), so publishing or
 * changing an expert changes nothing the image is built from.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MODELS } from '../../../core/contract';
import {
  EXTRACTOR_MANIFEST_FILE,
  extractorOnlyManifest,
  loadManifest,
  manifestJson,
  writeManifest,
} from '../../../core/manifest';
import { DEFAULT_MODELS_DIR, PACKAGE_ROOT } from '../../../core/paths';
import { tempDir } from '../../helpers/temp';

const read = (p: string) => readFileSync(p, 'utf8');

describe('the extractor image carries no expert', () => {
  it('ships models/extractor/manifest.json: the package manifest without experts, byte for byte as written', () => {
    const shared = JSON.parse(read(path.join(DEFAULT_MODELS_DIR, MODELS.manifestFile)));
    expect(read(path.join(DEFAULT_MODELS_DIR, EXTRACTOR_MANIFEST_FILE))).toBe(
      manifestJson(extractorOnlyManifest(shared)),
    );
  });

  it('copies only models/extractor/ into every image (GPU, CPU, Lambda), and the build context excludes the rest of models/', () => {
    const dockerfile = read(path.join(PACKAGE_ROOT, 'gpu-tasks/feature-extractor/Dockerfile'));
    const copies = dockerfile.split('\n').filter((l) => /^COPY\s+models\//.test(l));
    // Three runtime stages: the Batch GPU and CPU images and the Lambda image (computeMode 'lambda').
    expect(copies).toEqual(
      Array.from({ length: 3 }, () => [
        'COPY models/extractor/ models/extractor/',
        'COPY models/extractor/manifest.json models/manifest.json',
      ]).flat(),
    );
    const ignore = read(path.join(PACKAGE_ROOT, '.dockerignore'));
    expect(ignore).toMatch(/^!models\/extractor\/\*\*$/m);
    expect(ignore).not.toMatch(/^!models\/\*\*$/m);
  });

  it('writeManifest keeps the extractor manifest in step, and the image layout loads', () => {
    // Prepare: a models dir as the image sees it after both COPY lines
    const dir = tempDir();
    mkdirSync(path.join(dir, 'extractor'));
    const shared = JSON.parse(read(path.join(DEFAULT_MODELS_DIR, MODELS.manifestFile)));
    // Act: an expert is re-versioned; then the extractor changes version
    writeManifest(dir, { ...shared, experts: shared.experts.map((e: any) => ({ ...e, version: '9.0.0' })) });
    const first = read(path.join(dir, EXTRACTOR_MANIFEST_FILE));
    writeManifest(dir, shared);
    // Assess: an expert change leaves the file as it was; it never names an expert
    expect(read(path.join(dir, EXTRACTOR_MANIFEST_FILE))).toBe(first);
    expect(JSON.parse(first).experts).toEqual([]);
    const image = tempDir();
    mkdirSync(path.join(image, 'extractor'));
    writeFileSync(path.join(image, MODELS.manifestFile), first);
    expect(loadManifest(image).manifest.extractors.ultrasound.version).toBe(shared.extractors.ultrasound.version);
  });
});
