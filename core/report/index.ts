/** The research report: the renderer, its input schemas and the peak-frame helpers the caller needs for thumbnails. */
export { renderReport, cardCaveat, RUO } from './html';
export {
  ReportInput,
  ReportScan,
  ReportThumbnail,
  biomarkerPeaks,
  thumbnailSamples,
  type BiomarkerPeak,
  type ReportInputJson,
  type ReportScanInput,
} from './model';
