/**
 * Report data from a local data directory (or a running LocalWorkflow's services):
 * the stored scan items, their features documents and expert results, and PNG
 * thumbnails of each biomarker's peak frame.
 *
 * Thumbnails are made here, by the caller of the pure renderer (core/report), because
 * they need the extractor's own decoder (gpu-tasks/), which core/ may not import. The
 * stored upload is decoded again with the size and frame cap the features document
 * records, so a thumbnail is exactly the 128×128 gray frame the network scored (already
 * stripped of everything but pixels: no overlay text survives at that size as legible
 * identifiers, and no metadata is carried), and the frame indices are checked against
 * the document so a changed decoder cannot mislabel a frame.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { NO_SITE, parseUploadKey } from '../core/keys';
import { renderReport, thumbnailSamples, type ReportScanInput, type ReportThumbnail } from '../core/report';
import { findScansById, getScan, listExpertResultVersions, listScans, type ScanItem } from '../core/results-store';
import { ExpertResult, FeaturesDocument, type Manifest, type ProblemDetail } from '../core/schemas';
import { parsePayload } from '../core/zod-parse';
import { decodeFrameBytes } from '../gpu-tasks/feature-extractor/src';

export interface ReportStore {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly artifactsBucket: string;
}

export interface ReportScanOptions {
  /** Decode the stored upload for peak-frame thumbnails. @default true */
  readonly thumbnails?: boolean;
}

export { getScan, listScans };

/** The scan with this id in a local data directory, whatever its site (the operator gives a bare id). */
export async function getScanById(
  doc: ReportStore['doc'],
  table: string,
  scanId: string,
): Promise<ScanItem | undefined> {
  const found = await findScansById(doc, table, scanId);
  // A failure recorded under NO_SITE sorts last: the site's own item tells more.
  return found.sort((a, b) => Number(a.siteId === undefined) - Number(b.siteId === undefined))[0];
}

/** One stored scan as the renderer reads it: features, every expert result and (optionally) thumbnails. */
export async function loadReportScan(
  store: ReportStore,
  scan: ScanItem,
  opts: ReportScanOptions = {},
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
    `features document ${scan.featuresKey}`,
  );
  // Every stored version: the page shows the current one per expert and the agreement between versions.
  const results = (
    await listExpertResultVersions(store.doc, store.table, scan.siteId ?? NO_SITE, scan.scanId)
  ).results.map((r) => parsePayload(ExpertResult, r, `expert result ${r.sk} of scan ${scan.scanId}`));
  const thumbnails =
    opts.thumbnails === false || !scan.bucket || !scan.key
      ? []
      : await peakThumbnails(await getBytes(store.s3, scan.bucket, scan.key), features);
  return { ...base, features, results, thumbnails };
}

/** PNGs of the sampled frames at each biomarker's peak, decoded as the extractor decoded them. */
export async function peakThumbnails(clip: Buffer | string, features: FeaturesDocument): Promise<ReportThumbnail[]> {
  const s = features.sampling;
  const decoded = await decodeFrameBytes(clip, { size: s.width, maxFrames: s.maxFrames });
  if (decoded.frameIndices.join(',') !== s.frameIndices.join(',')) {
    throw new Error(
      `The clip of scan ${features.scanId} decodes to other frames than its features document records ` +
        `(${decoded.frameIndices.length} vs ${s.frameIndices.length} sampled frames): the decoder changed since extraction.`,
    );
  }
  const n = decoded.size * decoded.size;
  return thumbnailSamples(features).map((sample) => ({
    sample,
    width: decoded.size,
    height: decoded.size,
    png: grayPng(decoded.bytes.subarray(sample * n, (sample + 1) * n), decoded.size, decoded.size).toString('base64'),
  }));
}

/** 8-bit grayscale PNG (colour type 0): a third of the size of RGBA for the same pixels. */
export function grayPng(gray: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  png.data = Buffer.from(gray);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false });
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

async function getBytes(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function getText(s3: S3Client, bucket: string, key: string): Promise<string> {
  return (await getBytes(s3, bucket, key)).toString('utf8');
}

/** A scan to report, or an input that has none (listed among the failures with its reason). */
export type ReportEntry =
  | { readonly scan: ScanItem }
  | { readonly missing: { readonly label: string; readonly scanId: string | null; readonly error: ProblemDetail } };

export interface ReportMeta {
  readonly title: string;
  readonly source: string;
  readonly manifest: Manifest;
  readonly thumbnails?: boolean;
  readonly now?: Date;
}

/** Loads every entry and renders the page; the scans load one after another (each may decode a clip). */
export async function renderStoredReport(
  store: ReportStore,
  entries: readonly ReportEntry[],
  meta: ReportMeta,
): Promise<{ html: string; scans: number }> {
  const scans: ReportScanInput[] = [];
  for (const e of entries) {
    if ('scan' in e) scans.push(await loadReportScan(store, e.scan, { thumbnails: meta.thumbnails }));
    else scans.push({ ...e.missing, status: 'NOT_ANALYZED' });
  }
  const html = renderReport({
    title: meta.title,
    source: meta.source,
    generatedAt: (meta.now ?? new Date()).toISOString(),
    scans,
    models: { extractors: [meta.manifest.extractor], experts: meta.manifest.experts },
  });
  return { html, scans: scans.length };
}

/** Writes the page into `outDir` (created if missing) and returns its path. */
export function writeReportFile(outDir: string, fileName: string, html: string): string {
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, fileName);
  writeFileSync(file, html);
  return file;
}

/** The page's file name: one per scan, one per cohort (a new cohort report replaces the last). */
export function reportFileName(entries: readonly ReportEntry[]): string {
  const only = entries.length === 1 ? entries[0] : undefined;
  const id = only && 'scan' in only ? only.scan.scanId : undefined;
  return id ? `scan-${id}.html` : 'cohort-report.html';
}
