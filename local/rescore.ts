/**
 * Re-scoring stored features: every COMPLETED scan's features document (stored per extractor
 * version) is scored again by the chosen expert versions, through the Score step's own code
 * (scoreFeatures, then putExpertResult), and the new version's result is stored beside the
 * old one with the pointer moved to it. Nothing here decodes a frame or starts an extractor
 * job: it reads features documents and the results table only.
 */
import { NO_SITE } from '../core/keys';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ModelError } from '../core/errors';
import { DEFAULT_MODALITY } from '../core/modality';
import type { LoadedManifest } from '../core/manifest';
import { listExpertResultVersions, listScans, putExpertResult, type ScanItem } from '../core/results-store';
import type { ExpertEntry, Manifest } from '../core/schemas';
import { readFeatures, scoreFeatures } from '../lambdas/expert/score';

export interface RescoreStore {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** Where features documents are when a scan item does not name their bucket. */
  readonly artifactsBucket: string;
}

/** What happened to one scan: `rescored` (a version moved), `unchanged` (already current), `skipped` (nothing to score), `failed`. */
export interface ScanRescore {
  readonly scanId: string;
  readonly status: 'rescored' | 'unchanged' | 'skipped' | 'failed';
  /** Per expert that moved: the version that was current before (null: none) and the one now current. */
  readonly moved: Record<string, { readonly from: string | null; readonly to: string }>;
  readonly reason?: string;
}

export interface RescoreSummary {
  readonly scans: number;
  readonly rescored: number;
  readonly unchanged: number;
  readonly skipped: number;
  readonly failed: number;
  readonly experts: readonly string[];
  readonly seconds: number;
  readonly outcomes: readonly ScanRescore[];
}

/**
 * The experts to score with: every expert of the manifest, or the `NAME@VERSION` (or `NAME`)
 * specs given, each of which must be in the manifest at that version.
 */
export function selectExperts(manifest: Manifest, specs?: readonly string[]): ExpertEntry[] {
  if (!specs || specs.length === 0) return [...manifest.experts];
  const have = manifest.experts.map((e) => `${e.name}@${e.version}`).join(', ') || 'none';
  return specs.map((spec) => {
    const m = /^([a-z][a-z0-9-]*)(?:@(\d+\.\d+\.\d+))?$/.exec(spec.trim());
    if (!m) throw new ModelError(`"${spec}" is not an expert: expected NAME or NAME@X.Y.Z (the manifest has ${have}).`);
    const [, name, version] = m as unknown as [string, string, string | undefined];
    const entry = manifest.experts.find((e) => e.name === name);
    if (!entry || (version !== undefined && entry.version !== version)) {
      throw new ModelError(
        `Expert ${spec} is not in the manifest (it has ${have}). Publish it first: ` +
          `sonomark experts publish ${name}@${version ?? 'X.Y.Z'} --file MODEL.onnx --data-dir DIR.`,
      );
    }
    return entry;
  });
}

/** Scores one stored scan with the experts whose current version differs; reads its features document once. */
export async function rescoreScan(
  store: RescoreStore,
  loaded: LoadedManifest,
  experts: readonly ExpertEntry[],
  scan: ScanItem,
): Promise<ScanRescore> {
  const base = { scanId: scan.scanId, moved: {} };
  if (scan.status !== 'COMPLETED' || !scan.featuresKey) {
    return { ...base, status: 'skipped', reason: `the scan is ${scan.status}, with no stored features to score` };
  }
  try {
    const { current } = await listExpertResultVersions(store.doc, store.table, scan.siteId ?? NO_SITE, scan.scanId);
    // Experts of another modality than the one Validate stored are not this scan's to score (a scan stored before
    // modalities is ultrasound): a mixed manifest leaves an up-to-date scan unchanged. Absent or contradicted, the
    // features document below decides.
    const mine = experts.filter((e) => e.extractor.modality === (scan.modality ?? DEFAULT_MODALITY));
    const todo = (mine.length > 0 ? mine : experts).filter((e) => current[e.name] !== e.version);
    if (todo.length === 0) return { ...base, status: 'unchanged' };
    const features = await readFeatures(store.s3, scan.featuresBucket ?? store.artifactsBucket, scan.featuresKey);
    // An expert scores only scans of its own modality: a store may hold both, and the others are not its to score.
    const ofModality = todo.filter((e) => e.extractor.modality === features.modality);
    if (ofModality.length === 0) {
      return {
        ...base,
        status: 'skipped',
        reason:
          `its features are ${features.modality}, and none of ${todo.map((e) => `${e.name}@${e.version}`).join(', ')} ` +
          `reads ${features.modality} features`,
      };
    }
    const usable = ofModality.filter(
      (e) => e.extractor.name === features.extractor.name && e.extractor.version === features.extractor.version,
    );
    if (usable.length === 0) {
      const e = ofModality[0] as ExpertEntry;
      return {
        ...base,
        status: 'skipped',
        reason:
          `its features come from ${features.extractor.name}@${features.extractor.version}, but ${e.name}@${e.version} reads ` +
          `${e.extractor.name}@${e.extractor.version} features: extract them first (sonomark cohort run)`,
      };
    }
    const moved: Record<string, { from: string | null; to: string }> = {};
    for (const entry of usable) {
      const result = await scoreFeatures(features, entry, { models: loaded });
      await putExpertResult(store.doc, store.table, result, scan.siteId ?? NO_SITE);
      moved[entry.name] = { from: current[entry.name] ?? null, to: entry.version };
    }
    return { ...base, status: 'rescored', moved };
  } catch (err) {
    return { ...base, status: 'failed', reason: (err as Error).message };
  }
}

/** Runs `work` over `items` with at most `concurrency` at a time, in input order of start. */
export async function forEachLimited<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    for (let i = next++; i < items.length; i = next++) await work(items[i] as T, i);
  });
  await Promise.all(workers);
}

/** Re-scores every stored scan (listScans) with `experts`; `onScan` sees each outcome as it lands. */
export async function rescoreStoredScans(
  store: RescoreStore,
  loaded: LoadedManifest,
  experts: readonly ExpertEntry[],
  opts: { concurrency?: number; onScan?: (outcome: ScanRescore, done: number, total: number) => void } = {},
): Promise<RescoreSummary> {
  const started = performance.now();
  const scans = await listScans(store.doc, store.table);
  const outcomes: ScanRescore[] = [];
  await forEachLimited(scans, opts.concurrency ?? 8, async (scan) => {
    const outcome = await rescoreScan(store, loaded, experts, scan);
    outcomes.push(outcome);
    opts.onScan?.(outcome, outcomes.length, scans.length);
  });
  const count = (s: ScanRescore['status']) => outcomes.filter((o) => o.status === s).length;
  return {
    scans: scans.length,
    rescored: count('rescored'),
    unchanged: count('unchanged'),
    skipped: count('skipped'),
    failed: count('failed'),
    experts: experts.map((e) => `${e.name}@${e.version}`),
    seconds: (performance.now() - started) / 1000,
    outcomes,
  };
}
