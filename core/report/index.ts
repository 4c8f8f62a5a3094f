/** The research report: the renderer, its input schemas, the peak-frame helpers the caller needs for thumbnails, and the loader from the stores. */
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
export {
  cohortReportEntries,
  cohortReportTitle,
  getBytes,
  loadReportScan,
  renderStoredReport,
  type ReportEntry,
  type ReportStore,
  type StoredReportMeta,
  type ThumbnailMaker,
  type ThumbnailSource,
} from './stored';
