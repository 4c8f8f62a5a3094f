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
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import {
  getBytes,
  renderStoredReport as renderFromStores,
  thumbnailSamples,
  type ReportEntry,
  type ReportStore,
  type ReportThumbnail,
  type ThumbnailSource,
} from '../core/report';
import { findScansById, getScan, listScans, type ScanItem } from '../core/results-store';
import { manifestExtractors } from '../core/manifest';
import type { FeaturesDocument, Manifest, Preprocessing } from '../core/schemas';
import { decodeFrameBytes } from '../gpu-tasks/feature-extractor/src';

export type { ReportEntry, ReportStore };
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

/** Local mode's thumbnails: each stored upload decoded again by the extractor's decoder (or none, `--no-thumbnails`). */
export function localThumbnails(store: ReportStore, enabled = true, manifest?: Manifest): ThumbnailSource {
  if (!enabled) return { omitted: 'The report was written with --no-thumbnails: the clips were not decoded.' };
  return {
    make: async (scan, features) =>
      peakThumbnails(
        await getBytes(store.s3, scan.bucket!, scan.key!),
        features,
        manifest ? preprocessingOf(manifest, features) : undefined,
      ),
  };
}

/**
 * How the extractor that wrote `features` made its frames (its manifest entry's preprocessing: an
 * X-ray's `xray-1`, an ultrasound model's `roi-1`), so the thumbnail is the picture it scored.
 * Undefined when the manifest no longer holds that version: the decoder's default.
 */
export function preprocessingOf(manifest: Manifest, features: FeaturesDocument): Preprocessing | undefined {
  const x = features.extractor;
  return manifestExtractors(manifest).find((e) => e.name === x.name && e.version === x.version)?.input.preprocessing;
}

/** PNGs of the sampled frames at each biomarker's peak (an X-ray: its one image), decoded as the extractor decoded them. */
export async function peakThumbnails(
  clip: Buffer | string,
  features: FeaturesDocument,
  preprocessing?: Preprocessing,
): Promise<ReportThumbnail[]> {
  const s = features.sampling;
  const decoded = await decodeFrameBytes(clip, {
    size: s.width,
    maxFrames: s.maxFrames,
    ...(preprocessing ? { preprocessing } : {}),
  });
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

export interface ReportMeta {
  readonly title: string;
  readonly source: string;
  readonly manifest: Manifest;
  readonly thumbnails?: boolean;
  readonly now?: Date;
}

/** Loads every entry and renders the page, decoding each stored clip for its thumbnails (one at a time). */
export async function renderStoredReport(
  store: ReportStore,
  entries: readonly ReportEntry[],
  meta: ReportMeta,
): Promise<{ html: string; scans: number }> {
  return renderFromStores(store, entries, {
    title: meta.title,
    source: meta.source,
    manifest: meta.manifest,
    now: meta.now,
    thumbnails: localThumbnails(store, meta.thumbnails !== false, meta.manifest),
  });
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
