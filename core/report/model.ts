/**
 * What the report renderer reads, as zod schemas: the stored scan, its features
 * document and expert results, the model entries (for names, versions and card
 * caveats) and, optionally, PNG thumbnails of sampled frames. The renderer is pure
 * and lives in core/ so that a Lambda (the cloud cohort workflow, later) can run it;
 * the thumbnails come from the caller, because decoding needs the extractor's
 * decoder (gpu-tasks/), which core/ must not import.
 */
import { z } from 'zod';
import { MODALITY_LABELS } from '../modality';
import { ExpertEntry, ExpertResult, ExtractorEntry, FeaturesDocument, ProblemDetail, ScanId } from '../schemas';

/** One sampled frame as the network saw it, PNG-encoded (base64, no data: prefix). */
export const ReportThumbnail = z.object({
  /** Position in the features document's per-frame series (0 … frameIndices.length − 1). */
  sample: z.number().int().nonnegative(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  png: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'),
});
export type ReportThumbnail = z.infer<typeof ReportThumbnail>;

/**
 * A scan as the report shows it. NOT_ANALYZED: an input named in a cohort that the
 * data directory holds no scan for (it appears among the failures with the reason).
 */
export const ReportScan = z.object({
  /** Null when the workflow failed before a scan id existed (the failure still belongs in the report). */
  scanId: ScanId.nullable(),
  /** What the researcher calls it: the uploaded file name, else the scan id. */
  label: z.string().min(1),
  status: z.enum(['COMPLETED', 'FAILED', 'RUNNING', 'NOT_ANALYZED']),
  siteId: z.string().optional(),
  studyId: z.string().optional(),
  receivedAt: z.string().optional(),
  /** Frames per second from the sidecar, when the site sent one: the timeline then runs in seconds. */
  frameRate: z.number().positive().optional(),
  error: ProblemDetail.optional(),
  features: FeaturesDocument.optional(),
  /** Every stored result; two versions of one expert give the agreement section. */
  results: z.array(ExpertResult).default([]),
  thumbnails: z.array(ReportThumbnail).default([]),
});
export type ReportScan = z.infer<typeof ReportScan>;
export type ReportScanInput = z.input<typeof ReportScan>;

export const ReportInput = z.object({
  title: z.string().min(1),
  generatedAt: z.string().datetime(),
  /** Where the scans came from and what the cohort is, in a sentence (shown under the title). */
  source: z.string().min(1),
  scans: z.array(ReportScan).min(1),
  /**
   * Why the page carries no frame images, when its renderer could not decode the clips (the cloud
   * cohort report reads stored features, never the uploads): said on the page, and each peak is then
   * shown by its time and probabilities from the features alone.
   */
  thumbnailsOmitted: z.string().min(1).optional(),
  /** Manifest entries of every model version that may appear in the results (cards and caveats). */
  models: z.object({ extractors: z.array(ExtractorEntry), experts: z.array(ExpertEntry) }),
});
export type ReportInput = z.infer<typeof ReportInput>;
export type ReportInputJson = z.input<typeof ReportInput>;

export interface BiomarkerPeak {
  /** A label of the document's modality (MODALITY_LABELS). */
  readonly biomarker: string;
  /** Position in the per-frame series. */
  readonly sample: number;
  /** Index into the decoded frames (sampling.frameIndices[sample]). */
  readonly frame: number;
  readonly probability: number;
}

/** Each biomarker's most probable sampled frame (the first one on ties). */
export function biomarkerPeaks(doc: FeaturesDocument): BiomarkerPeak[] {
  return MODALITY_LABELS[doc.modality].map((biomarker) => {
    const series = doc.frames[biomarker] ?? [];
    let sample = 0;
    series.forEach((p, i) => {
      if (p > (series[sample] as number)) sample = i;
    });
    return {
      biomarker,
      sample,
      frame: doc.sampling.frameIndices[sample] as number,
      probability: series[sample] as number,
    };
  });
}

/** The sampled frames a report needs as thumbnails: the distinct peak frames, ascending. */
export function thumbnailSamples(doc: FeaturesDocument): number[] {
  return [...new Set(biomarkerPeaks(doc).map((p) => p.sample))].sort((a, b) => a - b);
}
