/**
 * Small DICOM Part 10 files built with dcmjs, for the cases the shared samples lack
 * (palette colour, RLE, multi-frame with ultrasound regions, no pixel data, unknown
 * encodings). The identifying attributes are filled with recognisable fake values so a
 * test can check none of them reaches an output.
 */
import { data, type NaturalizedDataset } from 'dcmjs';
import { existsSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths';

export const FAKE_IDENTIFIERS = {
  PatientName: 'Doe^Jane^Fakename',
  PatientID: 'PID-4711-FAKE',
  PatientBirthDate: '19700101',
  InstitutionName: 'Fake General Hospital',
  DeviceSerialNumber: 'SN-FAKE-0042',
  StudyInstanceUID: '1.2.826.0.1.3680043.8.498.11111111111111111111',
  SeriesInstanceUID: '1.2.826.0.1.3680043.8.498.22222222222222222222',
  SOPInstanceUID: '1.2.826.0.1.3680043.8.498.33333333333333333333',
  StudyDate: '20240229',
  AccessionNumber: 'ACC-FAKE-99',
  ReferringPhysicianName: 'Who^Doctor',
  StationName: 'FAKE-STATION-7',
} as const;

export const US_MULTIFRAME_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.3.1';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const IMPLICIT_LE = '1.2.840.10008.1.2';
export const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
/** dcmjs writes this syntax's data set uncompressed; see deflateDicom. */
export const DEFLATED_LE = '1.2.840.10008.1.2.1.99';

/** Deflates the data set of a file buildDicom wrote with DEFLATED_LE (after the meta group, whose length is at 140). */
export function deflateDicom(file: Buffer): Buffer {
  const metaEnd = 144 + file.readUInt32LE(140);
  return Buffer.concat([file.subarray(0, metaEnd), deflateRawSync(file.subarray(metaEnd))]);
}

export interface BuildDicomOptions {
  readonly transferSyntax?: string;
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel?: 1 | 3;
  readonly photometric?: string;
  readonly bitsAllocated?: 8 | 16;
  readonly planarConfiguration?: 0 | 1;
  /** Native: each frame's raw bytes; encapsulated (RLE): each frame's encoded bytes. Omit: no pixel data. */
  readonly frames?: readonly Uint8Array[];
  /** More attributes (naturalized keywords), e.g. FrameTime, SequenceOfUltrasoundRegions, palettes. */
  readonly extra?: NaturalizedDataset;
}

export function buildDicom(o: BuildDicomOptions): Buffer {
  const ts = o.transferSyntax ?? EXPLICIT_LE;
  const spp = o.samplesPerPixel ?? 1;
  const bits = o.bitsAllocated ?? 8;
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: US_MULTIFRAME_SOP_CLASS,
    MediaStorageSOPInstanceUID: FAKE_IDENTIFIERS.SOPInstanceUID,
    TransferSyntaxUID: ts,
    ImplementationClassUID: '1.2.826.0.1.3680043.8.498.1',
  };
  const encapsulated = ![IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE].includes(ts);
  const dataset: NaturalizedDataset = {
    ...FAKE_IDENTIFIERS,
    SOPClassUID: US_MULTIFRAME_SOP_CLASS,
    Modality: 'US',
    Rows: o.rows,
    Columns: o.columns,
    SamplesPerPixel: spp,
    PhotometricInterpretation: o.photometric ?? (spp === 3 ? 'RGB' : 'MONOCHROME2'),
    BitsAllocated: bits,
    BitsStored: bits,
    HighBit: bits - 1,
    PixelRepresentation: 0,
    ...(spp === 3 ? { PlanarConfiguration: o.planarConfiguration ?? 0 } : {}),
    ...(o.frames && o.frames.length > 1 ? { NumberOfFrames: String(o.frames.length) } : {}),
    ...o.extra,
    _vrMap: {
      PixelData: encapsulated || bits === 8 ? 'OB' : 'OW',
      // Palette descriptors are US or SS by the dictionary ("xs"): say which.
      RedPaletteColorLookupTableDescriptor: 'US',
      GreenPaletteColorLookupTableDescriptor: 'US',
      BluePaletteColorLookupTableDescriptor: 'US',
    },
  };
  if (o.frames) {
    dataset.PixelData = encapsulated
      ? o.frames.map((f) => toArrayBuffer(f))
      : [toArrayBuffer(Buffer.concat(o.frames.map((f) => Buffer.from(f))))];
  }
  const dict = new data.DicomDict(data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = data.DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write({ fragmentMultiframe: false }));
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** RLE Lossless (PS3.5 Annex G) encoder for tests: each byte plane PackBits-coded (replicate runs of ≥ 3, else literals). */
export function encodeRle(samples: Uint8Array, pixels: number, planes: number): Uint8Array {
  const segments: Buffer[] = [];
  for (let s = 0; s < planes; s++) {
    const plane = samples.subarray(s * pixels, (s + 1) * pixels);
    const out: number[] = [];
    let i = 0;
    while (i < plane.length) {
      let run = 1;
      while (i + run < plane.length && run < 128 && plane[i + run] === plane[i]) run++;
      if (run >= 3) {
        out.push(257 - run, plane[i] as number);
        i += run;
        continue;
      }
      const start = i;
      while (i < plane.length && i - start < 128) {
        if (i + 2 < plane.length && plane[i] === plane[i + 1] && plane[i] === plane[i + 2]) break;
        i++;
      }
      out.push(i - start - 1, ...plane.subarray(start, i));
    }
    if (out.length % 2) out.push(0x80); // segments are padded to even length (−128 is a no-op)
    segments.push(Buffer.from(out));
  }
  const header = Buffer.alloc(64);
  header.writeUInt32LE(planes, 0);
  let offset = 64;
  segments.forEach((seg, k) => {
    header.writeUInt32LE(offset, 4 + 4 * k);
    offset += seg.length;
  });
  return Buffer.concat([header, ...segments]);
}

/** The real DICOM samples (../shared/data/dicom): tests that read them fail, never skip, without them. */
export const DICOM_SAMPLES = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'dicom');

/** Each shared sample and what sonomark does with it. */
export const DICOM_SAMPLE_OUTCOMES: Readonly<Record<string, { frames: number } | { code: string }>> = {
  'gdcm-US-RGB-8-epicard.dcm': { frames: 1 },
  'gdcm-US-RGB-8-esopecho.dcm': { frames: 1 },
  'nema-us1_j2ki.dcm': { frames: 1 },
  'leadtools-8BitsJpegLossyGrayScale.dcm': { frames: 1 },
  'multiframe-test1.dcm': { frames: 16 },
  'nema-mr1_jply.dcm': { code: 'DICOM_UNSUPPORTED_TRANSFER_SYNTAX' },
};

export function requireDicomSamples(): void {
  for (const name of Object.keys(DICOM_SAMPLE_OUTCOMES)) {
    if (!existsSync(path.join(DICOM_SAMPLES, name))) {
      throw new Error(
        `The DICOM samples are missing: ${path.join(DICOM_SAMPLES, name)} does not exist. ` +
          'These tests read real DICOM files from ../shared/data/dicom (next to the repository); put them there.',
      );
    }
  }
}
