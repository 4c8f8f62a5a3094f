/**
 * DICOM Part 10 header: the image attributes sonomark needs, read with dcmjs.
 *
 * Validate reads it from the first bytes of an upload (untilPixelData) to reject what the
 * extractor could not decode before any GPU job; the extractor reads it again from the whole
 * file. Only technical attributes leave this module (allowlist): patient, study, device and
 * institution attributes are never copied anywhere (deidentify.ts); the study and series
 * UIDs leave only as salted pseudonyms (pseudonym.ts).
 */
import type { NaturalizedDataset } from 'dcmjs';
import type * as Dcmjs from 'dcmjs';
import { InvalidUploadError } from '../errors';
import { chooseBModeRegion, readUltrasoundRegions, type PixelRegion, type UltrasoundRegion } from './regions';
import {
  ACCEPTED_TRANSFER_SYNTAXES,
  describeTransferSyntax,
  transferSyntax,
  type TransferSyntax,
} from './transfer-syntax';

let dcmjsModule: { data: typeof Dcmjs.data; log: typeof Dcmjs.log } | undefined;

/**
 * dcmjs, loaded on first use: every clip's path imports this module (the sniffer, Validate, the
 * decoder), but only DICOM inputs need the parser, and loading it costs about 0.1 s of a cold start.
 */
function dcmjs(): { data: typeof Dcmjs.data; log: typeof Dcmjs.log } {
  if (!dcmjsModule) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require('dcmjs') as { data: typeof Dcmjs.data; log: typeof Dcmjs.log };
    // dcmjs logs parser warnings through loglevel (a root logger and named ones such as
    // "validation.dcmjs", each with its own level); a warning may quote a value from the header.
    loaded.log.setLevel('silent');
    for (const named of Object.values(loaded.log.getLoggers())) named.setLevel('silent');
    dcmjsModule = loaded;
  }
  return dcmjsModule;
}

const PIXEL_DATA_TAG = '7FE00010';

/** The offset of "DICM" in a Part 10 file (after the 128-byte preamble). */
export const DICM_OFFSET = 128;

/** Photometric interpretations the decoder turns into grey frames. */
export const SUPPORTED_PHOTOMETRIC = [
  'MONOCHROME1',
  'MONOCHROME2',
  'RGB',
  'YBR_FULL',
  'YBR_FULL_422',
  'PALETTE COLOR',
  // Only as JPEG 2000 colour transforms: the codec returns RGB.
  'YBR_ICT',
  'YBR_RCT',
] as const;

export const ACCEPTED_DICOM =
  'DICOM Part 10 files with pixel data (ultrasound or any other modality), single- or multi-frame, ' +
  `encoded as ${ACCEPTED_TRANSFER_SYNTAXES}; photometric ${SUPPORTED_PHOTOMETRIC.slice(0, 6).join(', ')}`;

export type FrameRateSource = 'FrameTime' | 'FrameTimeVector' | 'CineRate' | 'RecommendedDisplayFrameRate';

export interface DicomFrameRate {
  readonly hz: number;
  /** The attribute it came from (PS3.3 C.7.6.5 cine module, C.7.6.6 multi-frame). */
  readonly source: FrameRateSource;
}

/** Technical image attributes only: nothing here identifies a patient, a study or a device. */
export interface DicomImageHeader {
  readonly transferSyntax: TransferSyntax;
  readonly modality: string | undefined;
  readonly rows: number;
  readonly columns: number;
  readonly numberOfFrames: number;
  readonly samplesPerPixel: number;
  readonly photometric: string;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly pixelRepresentation: 0 | 1;
  readonly planarConfiguration: 0 | 1;
  readonly frameRate: DicomFrameRate | undefined;
  readonly regions: readonly UltrasoundRegion[];
  /** The B-mode (2D tissue) region the decoder crops to, clamped to the image; undefined: the whole image. */
  readonly crop: PixelRegion | undefined;
}

export interface ParsedDicom {
  readonly header: DicomImageHeader;
  /** The whole naturalized data set: for the decoder only (pixel data, palettes, window); never output it. */
  readonly dataset: NaturalizedDataset;
}

/** Whether the bytes start like a DICOM Part 10 file (128-byte preamble, then "DICM"). */
export function isDicomPart10(head: Uint8Array): boolean {
  return (
    head.length >= DICM_OFFSET + 4 &&
    head[DICM_OFFSET] === 0x44 &&
    head[DICM_OFFSET + 1] === 0x49 &&
    head[DICM_OFFSET + 2] === 0x43 &&
    head[DICM_OFFSET + 3] === 0x4d
  );
}

export type HeaderCheck =
  | { readonly kind: 'ok'; readonly header: DicomImageHeader }
  /**
   * The head ended before the pixel data: nothing decided about decoding (the extractor checks the
   * whole file), but the Modality and Number of Frames come before the pixel data and are read.
   */
  | { readonly kind: 'incomplete'; readonly modality: string | undefined; readonly numberOfFrames: number | undefined };

/**
 * Checks the header in the first bytes of an upload. `complete`: the head is the whole file.
 * Throws InvalidUploadError for what can be decided (no pixel data, unsupported encoding, not an image).
 */
export function checkDicomHead(head: Uint8Array, complete: boolean): HeaderCheck {
  const { dict, meta } = readPart10(head, true);
  const reached = PIXEL_DATA_TAG in dict;
  const dataset = dcmjs().data.DicomMetaDictionary.naturalizeDataset(dict);
  if (!reached && !complete) {
    return {
      kind: 'incomplete',
      modality: codeString(str(dataset.Modality)),
      numberOfFrames: int(dataset.NumberOfFrames),
    };
  }
  return { kind: 'ok', header: imageHeader(meta, dataset, reached) };
}

/** Reads a whole Part 10 file: the header (checked) and the data set with its pixel data. */
export function parseDicom(bytes: Uint8Array): ParsedDicom {
  const { dict, meta } = readPart10(bytes, false);
  const dataset = dcmjs().data.DicomMetaDictionary.naturalizeDataset(dict);
  return { header: imageHeader(meta, dataset, dataset.PixelData !== undefined), dataset };
}

function readPart10(bytes: Uint8Array, untilPixelData: boolean) {
  if (!isDicomPart10(bytes)) {
    throw new InvalidUploadError(
      'DICOM_NOT_PART10',
      `The file is not a DICOM Part 10 file (no "DICM" marker after the 128-byte preamble). Accepted: ${ACCEPTED_DICOM}.`,
    );
  }
  // dcmjs wants an ArrayBuffer of exactly the file.
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    return dcmjs().data.DicomMessage.readFile(
      buffer,
      untilPixelData ? { untilTag: PIXEL_DATA_TAG, includeUntilTagValue: false } : {},
    );
  } catch {
    // dcmjs' message can quote bytes of the file; ours does not.
    throw new InvalidUploadError(
      'DICOM_UNREADABLE',
      `The DICOM file could not be parsed (a damaged or truncated header). Accepted: ${ACCEPTED_DICOM}.`,
    );
  }
}

function imageHeader(
  meta: Record<string, { Value?: unknown[] }>,
  ds: NaturalizedDataset,
  hasPixelData: boolean,
): DicomImageHeader {
  const tsUid = String(meta['00020010']?.Value?.[0] ?? '')
    .replace(/\0/g, '')
    .trim();
  const ts = transferSyntax(tsUid);
  if (!hasPixelData) {
    throw new InvalidUploadError(
      'DICOM_NO_PIXEL_DATA',
      `The DICOM file has no pixel data (it may be a report, a structured document or a presentation state, not an image). Accepted: ${ACCEPTED_DICOM}.`,
    );
  }
  if (ts === undefined) {
    throw new InvalidUploadError(
      'DICOM_UNSUPPORTED_TRANSFER_SYNTAX',
      `The DICOM pixel data is encoded as ${describeTransferSyntax(tsUid)}, which sonomark does not decode. Accepted encodings: ${ACCEPTED_TRANSFER_SYNTAXES}; export the loop uncompressed or as JPEG baseline.`,
    );
  }
  const rows = int(ds.Rows);
  const columns = int(ds.Columns);
  const samplesPerPixel = int(ds.SamplesPerPixel) ?? 1;
  const bitsAllocated = int(ds.BitsAllocated);
  const bitsStored = int(ds.BitsStored) ?? bitsAllocated;
  const numberOfFrames = int(ds.NumberOfFrames) ?? 1;
  const photometric =
    str(ds.PhotometricInterpretation)?.toUpperCase() ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2');
  const invalid = (what: string) =>
    new InvalidUploadError(
      'DICOM_INVALID_IMAGE',
      `The DICOM image attributes are invalid: ${what}. Accepted: ${ACCEPTED_DICOM}.`,
    );
  if (!rows || !columns || rows < 1 || columns < 1) throw invalid('Rows and Columns must be positive');
  if (numberOfFrames < 1) throw invalid('Number of Frames must be positive');
  if (bitsAllocated !== 8 && bitsAllocated !== 16)
    throw invalid(`${bitsAllocated ?? 'no'} Bits Allocated (8 or 16 are decoded)`);
  if (!bitsStored || bitsStored < 1 || bitsStored > bitsAllocated)
    throw invalid('Bits Stored must be 1..Bits Allocated');
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3)
    throw invalid(`${samplesPerPixel} samples per pixel (1 or 3 are decoded)`);
  if (
    !(SUPPORTED_PHOTOMETRIC as readonly string[]).includes(photometric) ||
    (samplesPerPixel === 3) !== isColour(photometric)
  ) {
    throw new InvalidUploadError(
      'DICOM_UNSUPPORTED_PHOTOMETRIC',
      `The DICOM photometric interpretation ${safeCode(photometric)} with ${samplesPerPixel} sample(s) per pixel is not decoded. Accepted: ${SUPPORTED_PHOTOMETRIC.slice(0, 6).join(', ')}.`,
    );
  }
  if ((photometric === 'YBR_ICT' || photometric === 'YBR_RCT') && ts.codec !== 'jpeg2000') {
    throw new InvalidUploadError(
      'DICOM_UNSUPPORTED_PHOTOMETRIC',
      `The DICOM photometric interpretation ${photometric} is only valid inside JPEG 2000 pixel data.`,
    );
  }
  if (ts.codec === 'jpeg-baseline' && bitsAllocated !== 8) throw invalid('JPEG baseline pixel data must be 8-bit');
  const regions = readUltrasoundRegions(ds.SequenceOfUltrasoundRegions);
  return {
    transferSyntax: ts,
    modality: codeString(str(ds.Modality)),
    rows,
    columns,
    numberOfFrames,
    samplesPerPixel,
    photometric,
    bitsAllocated,
    bitsStored,
    pixelRepresentation: int(ds.PixelRepresentation) === 1 ? 1 : 0,
    planarConfiguration: int(ds.PlanarConfiguration) === 1 ? 1 : 0,
    frameRate: frameRate(ds),
    regions,
    crop: chooseBModeRegion(regions, columns, rows),
  };
}

function isColour(photometric: string): boolean {
  return !photometric.startsWith('MONOCHROME') && photometric !== 'PALETTE COLOR';
}

/** The frame rate from the timing attributes, in the order the standard makes them authoritative. */
export function frameRate(ds: NaturalizedDataset): DicomFrameRate | undefined {
  const ok = (hz: number | undefined): hz is number => hz !== undefined && Number.isFinite(hz) && hz > 0 && hz <= 1000;
  const frameTime = num(ds.FrameTime);
  if (frameTime !== undefined && frameTime > 0 && ok(1000 / frameTime))
    return { hz: 1000 / frameTime, source: 'FrameTime' };
  const vector = nums(ds.FrameTimeVector).slice(1); // the first entry is 0 by definition
  if (vector.length > 0) {
    const mean = vector.reduce((a, b) => a + b, 0) / vector.length;
    if (mean > 0 && ok(1000 / mean)) return { hz: 1000 / mean, source: 'FrameTimeVector' };
  }
  const cine = num(ds.CineRate);
  if (ok(cine)) return { hz: cine, source: 'CineRate' };
  const display = num(ds.RecommendedDisplayFrameRate);
  if (ok(display)) return { hz: display, source: 'RecommendedDisplayFrameRate' };
  return undefined;
}

function first(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}
function num(v: unknown): number | undefined {
  const x = first(v);
  const n = typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : NaN;
  return Number.isFinite(n) ? n : undefined;
}
function nums(v: unknown): number[] {
  const list = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return list.map((x) => num(x)).filter((x): x is number => x !== undefined);
}
function int(v: unknown): number | undefined {
  const n = num(v);
  return n !== undefined && Number.isInteger(n) ? n : undefined;
}
function str(v: unknown): string | undefined {
  const x = first(v);
  return typeof x === 'string' ? x.replace(/\0/g, '').trim() : undefined;
}
/** A code string (CS) value, or undefined when it is not one (free text never leaves the header). */
function codeString(v: string | undefined): string | undefined {
  return v !== undefined && /^[A-Z0-9 _]{1,16}$/.test(v) ? v : undefined;
}
/** Code strings are upper-case letters, digits, space and "_"; anything else is not echoed. */
function safeCode(v: string): string {
  return /^[A-Z0-9 _]{1,16}$/.test(v) ? `"${v}"` : '(an unreadable value)';
}

/** For the decoder: a header value as a number (first of a multi-valued attribute). */
export const dicomNumber = num;
/** For the decoder: every value of a multi-valued numeric attribute. */
export const dicomNumbers = nums;

/** The first bytes Validate keeps of a DICOM upload to read its header: headers with ultrasound regions fit easily. */
export const DICOM_HEAD_BYTES = 256 * 1024;

/**
 * For Validate: the reason a DICOM upload cannot be analysed, from its first bytes, or
 * undefined when it looks decodable (or the head ends before the pixel data: the extractor decides).
 */
export function dicomHeadProblem(head: Uint8Array, complete: boolean): { code: string; message: string } | undefined {
  const read = readDicomHead(head, complete);
  return 'problem' in read ? read.problem : undefined;
}

/**
 * For Validate: what the first bytes of a DICOM upload say. A problem (what the extractor could
 * not decode), or the two attributes the modality decision reads (core/modality-detect.ts): the
 * Modality (0008,0060), as a code string (free text never leaves the header), and the number of
 * frames (a still or a video). Never an identifier.
 */
export function readDicomHead(
  head: Uint8Array,
  complete: boolean,
):
  | { readonly problem: { code: string; message: string } }
  | { readonly modality: string | undefined; readonly numberOfFrames: number | undefined } {
  try {
    const check = checkDicomHead(head, complete);
    return check.kind === 'ok'
      ? { modality: check.header.modality, numberOfFrames: check.header.numberOfFrames }
      : { modality: check.modality, numberOfFrames: check.numberOfFrames };
  } catch (err) {
    if (err instanceof InvalidUploadError) return { problem: { code: err.code, message: err.message } };
    throw err;
  }
}
