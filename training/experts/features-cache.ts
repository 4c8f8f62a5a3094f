/**
 * `sonomark features`: clip → features document through the GPU task's own code
 * (decode → extractor ONNX → aggregate, gpu-tasks/feature-extractor/src/extract.ts),
 * with a local cache so the same bytes never go through the same extractor twice.
 *
 * Cache layout: <cacheDir>/features/<extractor>-<version>/<sha256 of the clip>.json,
 * each file a bare FeaturesDocument. Keyed by content and extractor name+version
 * (as the artifacts bucket is keyed by extractor); the document's extractor
 * sha256 is checked on read, so a model file retrained without a version bump is
 * recomputed rather than served stale.
 */
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import * as path from 'node:path';
import {
  createExtractorSession,
  extractFeatures,
  type ExecutionProviderChoice,
  type ExtractorSession,
} from '../../gpu-tasks/feature-extractor/src';
import { extractorFor, loadManifest } from '../../core/manifest';
import { DEFAULT_MODALITY, type Modality } from '../../core/modality';
import { scanIdFromContent, sha256Hex } from '../../core/scan-id';
import { FeaturesDocument, type ExtractorEntry } from '../../core/schemas';
import type { FeaturesRecord } from './data';
import { TrainingDataError } from './errors';
import type { DecodedFramesMemo } from './frames-memo';

/** Relative to the working directory, like the training exports under .sonomark/. */
export const DEFAULT_CACHE_DIR = '.sonomark';

/** Site and study of the scan id in cached documents: those `sonomark analyze` uses by default. */
const LOCAL_SCOPE = 'local';

export function featuresCacheDir(cacheDir: string, extractor: { name: string; version: string }): string {
  return path.join(cacheDir, 'features', `${extractor.name}-${extractor.version}`);
}

export function featuresCacheFile(
  cacheDir: string,
  extractor: { name: string; version: string },
  sha256: string,
): string {
  return path.join(featuresCacheDir(cacheDir, extractor), `${sha256}.json`);
}

export type CacheLookup =
  { readonly hit: true; readonly doc: FeaturesDocument } | { readonly hit: false; readonly reason?: string };

/** A cached document for these bytes and this extractor, or why there is none usable. */
export function readCachedFeatures(file: string, entry: ExtractorEntry): CacheLookup {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { hit: false };
  }
  let parsed;
  try {
    parsed = FeaturesDocument.safeParse(JSON.parse(text));
  } catch {
    return { hit: false, reason: `cached ${file} is not valid JSON; recomputing` };
  }
  if (!parsed.success) return { hit: false, reason: `cached ${file} is not a valid features document; recomputing` };
  if (parsed.data.extractor.sha256 !== entry.sha256) {
    return {
      hit: false,
      reason: `cached ${file} was made by another ${entry.name}@${entry.version} model file (sha256 ${parsed.data.extractor.sha256.slice(0, 12)}…, now ${entry.sha256.slice(0, 12)}…); recomputing. Bump the extractor version when its weights change.`,
    };
  }
  return { hit: true, doc: parsed.data };
}

/** Written to a temp name and renamed, so an interrupted run never leaves half a document behind. */
export function writeCachedFeatures(file: string, doc: FeaturesDocument): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(doc) + '\n');
  renameSync(tmp, file);
}

export interface ClipFeaturesDeps {
  readonly cacheDir: string;
  readonly entry: ExtractorEntry;
  /** Created on the first cache miss only: a fully cached run never loads the model. */
  readonly session: () => Promise<ExtractorSession>;
  /** Cache problems worth telling the user (a stale or corrupt entry). */
  readonly warn?: (line: string) => void;
  readonly now?: () => Date;
  /** Decoded frames shared by the extractors of one training run (a miss decodes as usual). */
  readonly frames?: DecodedFramesMemo;
  /** The modality `entry` is the extractor of. @default 'ultrasound' */
  readonly modality?: Modality;
}

/** Features of one clip: from the cache when these bytes met this extractor before, else extracted and cached. */
export async function clipFeatures(file: string, deps: ClipFeaturesDeps): Promise<FeaturesRecord> {
  const bytes = readFileSync(file);
  const sha256 = sha256Hex(bytes);
  const base = { file: path.resolve(file), name: path.basename(file).replace(/\.[^.]*$/, ''), sha256 };
  const cacheFile = featuresCacheFile(deps.cacheDir, deps.entry, sha256);
  const lookup = readCachedFeatures(cacheFile, deps.entry);
  if (lookup.hit) return { ...base, cached: true, features: lookup.doc };
  if (lookup.reason) deps.warn?.(lookup.reason);
  const features = await extractFeatures({
    // The bytes that were hashed are the bytes decoded: the cache key always describes the pixels.
    clip: bytes,
    scanId: scanIdFromContent(LOCAL_SCOPE, LOCAL_SCOPE, sha256),
    session: deps.frames ? deps.frames.session(await deps.session(), sha256) : await deps.session(),
    entry: deps.entry,
    ...(deps.modality ? { modality: deps.modality } : {}),
    now: deps.now,
    ...(deps.frames ? { decodeWith: deps.frames.frames.bind(deps.frames, sha256) } : {}),
  });
  writeCachedFeatures(cacheFile, features);
  return { ...base, cached: false, features };
}

/** File name endings picked up from a directory (as `sonomark features` does); the bytes are sniffed later anyway. */
const CLIP_EXTENSIONS = new Set(['.mp4', '.m4v', '.mov', '.avi', '.gif', '.mpeg', '.mpg', '.jpg', '.jpeg', '.png']);

/**
 * The clips under each input, as `sonomark features FILE|DIR...` takes them: a directory is walked in
 * name order for clip extensions, a file is taken as is, and a missing path stays in the list so that
 * it is reported as a failed input rather than silently dropped.
 */
export function listClipFiles(inputs: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (CLIP_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) files.push(p);
    }
  };
  for (const input of inputs) {
    let directory = false;
    try {
      directory = statSync(input).isDirectory();
    } catch {
      // Missing: kept, and reported as failed below.
    }
    if (directory) walk(input);
    else files.push(input);
  }
  return files;
}

export interface FeaturesJsonlOptions {
  /** Clips and directories of clips. */
  readonly inputs: readonly string[];
  /** The models directory whose manifest's extractor runs. */
  readonly modelsDir: string;
  /** Cache root (see featuresCacheDir). */
  readonly cacheDir: string;
  /** The JSONL file to write: one FeaturesRecord per clip. */
  readonly out: string;
  /** @default 'auto' (CUDA when installed, else CPU) */
  readonly executionProvider?: ExecutionProviderChoice;
  readonly log?: (line: string) => void;
  /** See ClipFeaturesDeps.frames. */
  readonly frames?: DecodedFramesMemo;
  /** Which of the manifest's extractors runs. @default 'ultrasound' */
  readonly modality?: Modality;
}

/**
 * Features of every clip under `inputs` with the manifest's extractor, cached, into one JSONL file (what
 * `sonomark features --out` writes). Every clip is tried; if any failed, the file still holds the others
 * and a TrainingDataError names the failed clips, since a training run must not go on with clips missing.
 */
export async function writeFeaturesJsonl(opts: FeaturesJsonlOptions): Promise<{ clips: number; cached: number }> {
  const log = opts.log ?? (() => {});
  const loaded = loadManifest(opts.modelsDir);
  const entry = extractorFor(loaded.manifest, opts.modality ?? DEFAULT_MODALITY);
  const files = listClipFiles(opts.inputs);
  if (files.length === 0) throw new TrainingDataError(`No clips found in ${opts.inputs.join(', ')}.`);
  log(
    `extractor ${entry.name}@${entry.version} (sha256 ${entry.sha256.slice(0, 16)}…), cache ${featuresCacheDir(opts.cacheDir, entry)}`,
  );
  mkdirSync(path.dirname(opts.out), { recursive: true });
  let session: Promise<ExtractorSession> | undefined;
  const failed: string[] = [];
  let cached = 0;
  const fd = openSync(opts.out, 'w');
  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const t0 = performance.now();
      try {
        const record = await clipFeatures(file, {
          cacheDir: opts.cacheDir,
          entry,
          ...(opts.modality ? { modality: opts.modality } : {}),
          session: () =>
            (session ??= createExtractorSession(loaded.dir, entry, {
              executionProvider: opts.executionProvider ?? 'auto',
              warn: log,
            })),
          warn: (line) => log(`  ${line}`),
          ...(opts.frames ? { frames: opts.frames } : {}),
        });
        if (record.cached) cached++;
        writeSync(fd, JSON.stringify(record) + '\n');
        log(
          `[${i + 1}/${files.length}] ${(record.cached ? 'cached' : 'extracted').padEnd(9)} ${Math.round(performance.now() - t0)} ms  ${file}`,
        );
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
        failed.push(`${file} (${why})`);
        log(`[${i + 1}/${files.length}] FAILED    ${file}: ${why}`);
      }
    }
  } finally {
    closeSync(fd);
    if (session) await (await session.catch(() => undefined))?.release();
  }
  log(`${files.length - failed.length} with features (${cached} cached) → ${opts.out}`);
  if (failed.length > 0) {
    throw new TrainingDataError(
      `${failed.length} of ${files.length} clips have no features with ${entry.name}@${entry.version}: ${failed.slice(0, 5).join('; ')}${failed.length > 5 ? '; …' : ''}`,
    );
  }
  return { clips: files.length, cached };
}
