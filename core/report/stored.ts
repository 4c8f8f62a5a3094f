/**
 * The report's data from the stores (results table, features documents in S3): one loader for
 * every caller, so `sonomark report`, `sonomark analyze --report`, `sonomark cohort run` and the
 * cloud cohort report (lambdas/cohort-report) render the same page from the same records.
 *
 * Thumbnails are the caller's: decoding a clip needs the extractor's decoder (gpu-tasks/), which
 * core/ may not import and the cohort report Lambda does not carry. A caller that cannot decode
 * says why (`{ omitted: reason }`), and the page says so instead of showing frames.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { CohortSummary } from '../cohort';
import { NO_SITE, parseUploadKey } from '../keys';
import { getScan, listExpertResultVersions, type ScanItem } from '../results-store';
import { ExpertResult, FeaturesDocument, type Manifest, type ProblemDetail } from '../schemas';
import { parsePayload } from '../zod-parse';
import { renderReport } from './html';
import type { ReportScanInput, ReportThumbnail } from './model';
import { manifestExtractors } from '../manifest';

export interface ReportStore {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly artifactsBucket: string;
}

/** Makes a scan's peak-frame thumbnails from its stored upload (local mode decodes the clip). */
export type ThumbnailMaker = (scan: ScanItem, features: FeaturesDocument) => Promise<ReportThumbnail[]>;

/** Thumbnails: made by a decoder, or omitted with the reason the page gives. */
export type ThumbnailSource = { readonly make: ThumbnailMaker } | { readonly omitted: string };

/** A scan to report, or an input that has none (listed among the failures with its reason). */
export type ReportEntry =
  | { readonly scan: ScanItem }
  | { readonly missing: { readonly label: string; readonly scanId: string | null; readonly error: ProblemDetail } };

export interface StoredReportMeta {
  readonly title: string;
  readonly source: string;
  readonly manifest: Manifest;
  readonly thumbnails: ThumbnailSource;
  readonly now?: Date;
  /** Scans loaded at once (each is a GetObject and a Query; a decoder makes them one at a time). @default 1 */
  readonly concurrency?: number;
}

/** One stored scan as the renderer reads it: features, every expert result and thumbnails. */
export async function loadReportScan(
  store: ReportStore,
  scan: ScanItem,
  thumbnails: ThumbnailSource,
): Promise<ReportScanInput> {
  const base: ReportScanInput = {
    scanId: scan.scanId,
    label: labelOf(scan),
    status: scan.status,
    siteId: scan.siteId,
    studyId: scan.studyId,
    receivedAt: scan.receivedAt,
    frameRate: scan.sidecar?.frameRate,
    error: scan.error,
  };
  if (scan.status !== 'COMPLETED' || !scan.featuresKey) return base;
  const features = parsePayload(
    FeaturesDocument,
    JSON.parse(await getText(store.s3, scan.featuresBucket ?? store.artifactsBucket, scan.featuresKey)),
    `features document of scan ${scan.scanId}`,
  );
  // Every stored version: the page shows the current one per expert and the agreement between versions.
  const results = (
    await listExpertResultVersions(store.doc, store.table, scan.siteId ?? NO_SITE, scan.scanId)
  ).results.map((r) => parsePayload(ExpertResult, r, `expert result ${r.sk} of scan ${scan.scanId}`));
  const thumbs = 'make' in thumbnails && scan.bucket && scan.key ? await thumbnails.make(scan, features) : [];
  return { ...base, features, results, thumbnails: thumbs };
}

/** Loads every entry (in order, `concurrency` at a time) and renders the page. */
export async function renderStoredReport(
  store: ReportStore,
  entries: readonly ReportEntry[],
  meta: StoredReportMeta,
): Promise<{ html: string; scans: number }> {
  const scans: ReportScanInput[] = new Array(entries.length);
  let next = 0;
  const worker = async () => {
    while (next < entries.length) {
      const i = next++;
      const e = entries[i] as ReportEntry;
      scans[i] =
        'scan' in e ? await loadReportScan(store, e.scan, meta.thumbnails) : { ...e.missing, status: 'NOT_ANALYZED' };
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(meta.concurrency ?? 1, entries.length)) }, worker));
  const html = renderReport({
    title: meta.title,
    source: meta.source,
    generatedAt: (meta.now ?? new Date()).toISOString(),
    scans,
    ...('omitted' in meta.thumbnails ? { thumbnailsOmitted: meta.thumbnails.omitted } : {}),
    models: { extractors: manifestExtractors(meta.manifest), experts: meta.manifest.experts },
  });
  return { html, scans: scans.length };
}

/** The page's title for a cohort of `n` entries: the same wherever the page is rendered. */
export const cohortReportTitle = (n: number): string => `sonomark cohort report (${n} scans)`;

/**
 * A cohort run's entries from its summary: each scan it stored, read from the site's partition,
 * then each item that never became a scan (a key outside the site, an unreadable input) with its
 * reason. A scan id without a stored item (a failure before any claim) is listed with the run's
 * reason for it. The summary is what both the local and the cloud cohort run write, so
 * `sonomark report COHORT_DIR` and the cloud's report.html list the same scans.
 */
export async function cohortReportEntries(
  store: ReportStore,
  summary: Pick<CohortSummary, 'scanIds' | 'failures'>,
  site: string,
): Promise<ReportEntry[]> {
  const failureOf = new Map(summary.failures.flatMap((f) => (f.scanId ? [[f.scanId, f] as const] : [])));
  const entries: ReportEntry[] = [];
  for (const scanId of summary.scanIds) {
    const scan = await getScan(store.doc, store.table, site, scanId);
    if (scan) {
      entries.push({ scan });
      continue;
    }
    const f = failureOf.get(scanId);
    entries.push({
      missing: {
        label: f?.item ?? scanId,
        scanId,
        error: f
          ? { code: f.code, message: f.message }
          : { code: 'NO_SCAN_RECORD', message: `No scan record for this scan id in site ${site}'s results.` },
      },
    });
  }
  for (const f of summary.failures) {
    if (f.scanId === null)
      entries.push({ missing: { label: f.item, scanId: null, error: { code: f.code, message: f.message } } });
  }
  return entries;
}

/** The uploaded file's name below its study (what the researcher named it), else the scan id. */
function labelOf(scan: ScanItem): string {
  if (!scan.key) return scan.scanId;
  try {
    return parseUploadKey(scan.key).fileName;
  } catch {
    return scan.key;
  }
}

export async function getBytes(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function getText(s3: S3Client, bucket: string, key: string): Promise<string> {
  return (await getBytes(s3, bucket, key)).toString('utf8');
}
