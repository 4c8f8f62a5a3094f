/**
 * A local data directory's own models: `<data-dir>/models/` is the local counterpart of the
 * artifacts bucket's manifest. `sonomark experts publish` and `experts train --data-dir` write
 * there, and every command given that data dir (analyze, rescore, cohort run) reads it, so a
 * published expert version is what the next run scores with, while the package's models/
 * stay as shipped.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { MODELS } from '../core/contract';
import { loadManifest, manifestExtractors } from '../core/manifest';
import { modelsDirFromEnv } from '../core/paths';

export const DATA_DIR_MODELS = 'models';

export function dataDirModelsDir(dataDir: string): string {
  return path.join(dataDir, DATA_DIR_MODELS);
}

/**
 * Which manifest a local run reads: `--models-dir` when given, else the data dir's own
 * models when it has a manifest, else the package's (undefined: loadManifest's default).
 */
export function resolveModelsDir(opts: { modelsDir?: string; dataDir?: string }): string | undefined {
  if (opts.modelsDir) return path.resolve(opts.modelsDir);
  if (opts.dataDir) {
    const own = dataDirModelsDir(opts.dataDir);
    if (existsSync(path.join(own, MODELS.manifestFile))) return path.resolve(own);
  }
  return undefined;
}

/**
 * The data dir's models directory, created on first use as a copy of `from` (the package's
 * models by default): the manifest and every file it names, so the copy stands alone.
 */
export function ensureDataDirModels(dataDir: string, from: string = modelsDirFromEnv()): string {
  const dir = dataDirModelsDir(dataDir);
  if (existsSync(path.join(dir, MODELS.manifestFile))) return dir;
  const { manifest } = loadManifest(from);
  const extractors = manifestExtractors(manifest);
  const files = [
    ...extractors.map((x) => x.file),
    ...manifest.experts.map((e) => e.file),
    ...[...extractors, ...manifest.experts].flatMap((e) => (e.card.cardFile ? [e.card.cardFile] : [])),
  ];
  for (const file of files) {
    const src = path.join(from, file);
    if (!existsSync(src)) continue; // a card file the manifest names but nobody wrote: the card itself is in the manifest
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    copyFileSync(src, path.join(dir, file));
  }
  // The manifest last, so a crash never leaves a manifest naming files that are not there.
  copyFileSync(path.join(from, MODELS.manifestFile), path.join(dir, MODELS.manifestFile));
  return dir;
}
