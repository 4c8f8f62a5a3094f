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
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { extractFeatures, type ExtractorSession } from '../../gpu-tasks/feature-extractor/src';
import { scanIdFromContent, sha256Hex } from '../../core/scan-id';
import { FeaturesDocument, type ExtractorEntry } from '../../core/schemas';
import type { FeaturesRecord } from './data';

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
    session: await deps.session(),
    entry: deps.entry,
    now: deps.now,
  });
  writeCachedFeatures(cacheFile, features);
  return { ...base, cached: false, features };
}
