/**
 * The imaging modalities sonomark analyses, and the interpretable outputs of each modality's
 * extractor, in the order its ONNX output `biomarkers` emits them.
 *
 * One extractor per modality (the manifest's `extractors`, keyed by these names); each expert
 * names the modality of the extractor whose features it reads. The order of each label list is
 * part of that extractor's output contract, as BIOMARKERS is for ultrasound.
 */
import { BIOMARKERS } from './biomarkers';

export const MODALITIES = ['ultrasound', 'xray'] as const;
export type Modality = (typeof MODALITIES)[number];

/** Today's commands and stored features predate modalities: they are ultrasound. */
export const DEFAULT_MODALITY: Modality = 'ultrasound';

/**
 * The chest X-ray extractor's interpretable outputs (per image, probabilities):
 * - `pneumonia`: any pneumonia (bacterial, viral or COVID-19) against a normal chest;
 * - `viral`: among pneumonias, a viral one (COVID-19 included) against bacterial;
 * - `covid`: among adult pneumonias, COVID-19 against other pneumonia.
 * Each is learned only from images whose collection labels it (training/datasets/cxr.ts).
 */
export const XRAY_FINDINGS = ['pneumonia', 'viral', 'covid'] as const;
export type XrayFinding = (typeof XRAY_FINDINGS)[number];

/** Each modality's output labels, in emission order. */
export const MODALITY_LABELS: Readonly<Record<Modality, readonly string[]>> = {
  ultrasound: BIOMARKERS,
  xray: XRAY_FINDINGS,
};

/** DICOM Modality (0008,0060) values and the modality they mean; anything else is refused. */
export const DICOM_MODALITIES: Readonly<Record<string, Modality>> = {
  US: 'ultrasound',
  CR: 'xray',
  DX: 'xray',
};
