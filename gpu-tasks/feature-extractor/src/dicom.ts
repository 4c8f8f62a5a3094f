/**
 * DICOM → raw 8-bit frames for decode.ts, which scales and pads them exactly as it does
 * every other clip (ffmpeg's area filter, grey, centred on the black square canvas).
 *
 * Only the frames the sampling policy keeps are decoded (uniformSampleIndices over the
 * Number of Frames), each is cropped to the B-mode region of the Sequence of Ultrasound
 * Regions when the header has one, and brought to RGB (or grey) here: palette colour,
 * YBR, planar RGB, MONOCHROME1/2 with the modality and VOI (window) transforms.
 *
 * Nothing from the header leaves this module but technical attributes and the salted
 * study/series pseudonyms (DicomClipInfo); error messages name attributes, never values.
 */
import { dicomPseudonyms } from '../../../core/dicom/pseudonym';
import { dicomNumber, dicomNumbers, parseDicom, type DicomImageHeader } from '../../../core/dicom/header';
import type { PixelRegion } from '../../../core/dicom/regions';
import type { DicomSource } from '../../../core/schemas';
import { DecodeError, InvalidUploadError } from '../../../core/errors';
import type { NaturalizedDataset } from 'dcmjs';
import { decodeJpeg2000, decodeJpegBaseline, decodeRle, type CodecFrame } from './dicom-codecs';

/** Frames for ffmpeg's rawvideo demuxer: one pixel format and size for all. */
export interface RawFrames {
  readonly pixFmt: 'gray' | 'rgb24';
  readonly width: number;
  readonly height: number;
  readonly frames: readonly Uint8Array[];
}

/** What a features document may say about a DICOM scan: technical attributes and pseudonyms only. */
export type DicomClipInfo = DicomSource;

export interface DicomFrames {
  readonly raw: RawFrames;
  readonly decodedFrames: number;
  readonly frameIndices: number[];
  readonly info: DicomClipInfo;
}

export interface ReadDicomOptions {
  readonly maxFrames: number;
  readonly maxDecodedFrames: number;
  /** The frame-sampling policy (decode.ts uniformSampleIndices), shared with the ffmpeg path. */
  readonly sample: (n: number, k: number) => number[];
  /** Secret for the study/series pseudonyms; without it none are made. */
  readonly pseudonymSalt?: string;
}

export async function readDicomFrames(bytes: Uint8Array, opts: ReadDicomOptions): Promise<DicomFrames> {
  const { header, dataset } = parseDicom(bytes);
  const n = header.numberOfFrames;
  if (n > opts.maxDecodedFrames) {
    throw new DecodeError(
      'TOO_LONG',
      `The clip has more than ${opts.maxDecodedFrames} frames; split it into shorter clips.`,
    );
  }
  const frameIndices = opts.sample(n, opts.maxFrames);
  const encoded = frameSources(header, dataset, bytes);
  const decoded: CodecFrame[] = [];
  for (const index of frameIndices) decoded.push(await decodeFrame(header, encoded(index)));
  const raw = toRaw(header, dataset, decoded);
  const pseudonyms = opts.pseudonymSalt
    ? dicomPseudonyms(opts.pseudonymSalt, { study: dataset.StudyInstanceUID, series: dataset.SeriesInstanceUID })
    : undefined;
  const info: DicomClipInfo = {
    transferSyntaxUid: header.transferSyntax.uid,
    ...(header.modality ? { modality: header.modality } : {}),
    photometric: header.photometric,
    rows: header.rows,
    columns: header.columns,
    ...(header.frameRate ? { frameRate: { hz: round3(header.frameRate.hz), source: header.frameRate.source } } : {}),
    ...(header.crop ? { crop: header.crop } : {}),
    ...(pseudonyms?.study ? { studyPseudonym: pseudonyms.study } : {}),
    ...(pseudonyms?.series ? { seriesPseudonym: pseudonyms.series } : {}),
  };
  return { raw: header.crop ? crop(raw, header.crop) : raw, decodedFrames: n, frameIndices, info };
}

// ---------------------------------------------------------------------------
// Pixel data → the bytes of each frame
// ---------------------------------------------------------------------------

type FrameSource = (index: number) => Uint8Array;

function frameSources(h: DicomImageHeader, ds: NaturalizedDataset, file: Uint8Array): FrameSource {
  const pixelData = ds.PixelData;
  const buffers = (Array.isArray(pixelData) ? pixelData : [pixelData]).filter(
    (b): b is ArrayBuffer => b instanceof ArrayBuffer || ArrayBuffer.isView(b),
  );
  const bytesOf = (b: ArrayBuffer | ArrayBufferView) =>
    b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (buffers.length === 0) {
    throw new InvalidUploadError('DICOM_NO_PIXEL_DATA', 'The DICOM file has no pixel data.');
  }
  if (h.transferSyntax.codec === 'native') {
    const all = concat(buffers.map(bytesOf));
    // Uncompressed YBR_FULL_422 holds two samples per pixel (Y1 Y2 Cb Cr per pair).
    const samples = h.photometric === 'YBR_FULL_422' ? 2 : h.samplesPerPixel;
    const frameBytes = h.rows * h.columns * samples * (h.bitsAllocated / 8);
    if (all.length < frameBytes * h.numberOfFrames || !pixelDataFits(file, h, frameBytes * h.numberOfFrames)) {
      throw new DecodeError(
        'DICOM_PIXEL_DATA_TRUNCATED',
        `The DICOM pixel data is shorter than Rows × Columns × Samples × Number of Frames says (the file may be truncated).`,
      );
    }
    return (i) => all.subarray(i * frameBytes, (i + 1) * frameBytes);
  }
  const frames = groupFragments(h, buffers.map(bytesOf));
  return (i) => frames[i] as Uint8Array;
}

/**
 * Whether the Pixel Data element's declared length lies inside the file. dcmjs pads a
 * truncated value with zeros rather than failing, which would pass for a black frame.
 * The element is the first Pixel Data tag followed by an OB/OW VR (explicit) or by a length
 * of at least the expected size (implicit); deflated files are inflated by dcmjs and not checked.
 */
function pixelDataFits(file: Uint8Array, h: DicomImageHeader, expected: number): boolean {
  if (h.transferSyntax.uid === '1.2.840.10008.1.2.1.99') return true;
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const big = h.transferSyntax.uid === '1.2.840.10008.1.2.2';
  const implicit = h.transferSyntax.uid === '1.2.840.10008.1.2';
  const tag = Buffer.from(big ? [0x7f, 0xe0, 0x00, 0x10] : [0xe0, 0x7f, 0x10, 0x00]);
  for (let at = buf.indexOf(tag, 132); at >= 0 && at + 12 <= buf.length; at = buf.indexOf(tag, at + 1)) {
    const u32 = (o: number) => (big ? buf.readUInt32BE(o) : buf.readUInt32LE(o));
    if (implicit) {
      const length = u32(at + 4);
      if (length >= expected && length !== 0xffffffff) return at + 8 + length <= buf.length;
    } else if (/^O[BW]$/.test(buf.toString('latin1', at + 4, at + 6))) {
      return at + 12 + u32(at + 8) <= buf.length;
    }
  }
  return true; // not found: nothing to say beyond the length check
}

/**
 * Encapsulated pixel data: dcmjs returns one buffer per frame when the Basic Offset Table
 * is filled, else one per fragment. Without a table, a frame is one fragment when the
 * counts match; else fragments are grouped at each JPEG/JPEG 2000 start-of-image marker.
 */
function groupFragments(h: DicomImageHeader, fragments: Uint8Array[]): Uint8Array[] {
  const n = h.numberOfFrames;
  if (fragments.length === n) return fragments;
  if (n === 1) return [concat(fragments)];
  const starts = (f: Uint8Array): boolean =>
    h.transferSyntax.codec === 'jpeg-baseline'
      ? f[0] === 0xff && f[1] === 0xd8
      : h.transferSyntax.codec === 'jpeg2000'
        ? (f[0] === 0xff && f[1] === 0x4f && f[2] === 0xff && f[3] === 0x51) ||
          (f[4] === 0x6a && f[5] === 0x50 && f[6] === 0x20 && f[7] === 0x20)
        : false;
  const frames: Uint8Array[][] = [];
  for (const f of fragments) {
    if (starts(f) || frames.length === 0) frames.push([f]);
    else frames[frames.length - 1]!.push(f);
  }
  if (frames.length !== n) {
    throw new DecodeError(
      'DICOM_PIXEL_DATA_CORRUPT',
      `The DICOM pixel data holds ${frames.length} encoded frame(s) where Number of Frames says ${n}.`,
    );
  }
  return frames.map(concat);
}

async function decodeFrame(h: DicomImageHeader, frame: Uint8Array): Promise<CodecFrame> {
  const bytesPerSample = (h.bitsAllocated / 8) as 1 | 2;
  let out: CodecFrame;
  switch (h.transferSyntax.codec) {
    case 'native':
      out = nativeFrame(h, frame, bytesPerSample);
      break;
    case 'rle':
      out = decodeRle(frame, h.columns, h.rows, h.samplesPerPixel, bytesPerSample);
      break;
    case 'jpeg-baseline':
      out = await decodeJpegBaseline(frame);
      break;
    case 'jpeg2000':
      out = await decodeJpeg2000(frame);
      break;
  }
  if (out.width !== h.columns || out.height !== h.rows || out.components !== h.samplesPerPixel) {
    throw new DecodeError(
      'DICOM_PIXEL_DATA_CORRUPT',
      `A DICOM frame decoded to ${out.width}×${out.height}×${out.components}, not the ${h.columns}×${h.rows}×${h.samplesPerPixel} the header declares.`,
    );
  }
  return out;
}

/** Uncompressed: little endian (or big endian, the retired syntax), pixel- or plane-interleaved. */
function nativeFrame(h: DicomImageHeader, frame: Uint8Array, bytesPerSample: 1 | 2): CodecFrame {
  const pixels = h.rows * h.columns;
  const c = h.samplesPerPixel;
  let samples: Uint8Array | Uint16Array;
  if (bytesPerSample === 1) {
    samples = frame;
  } else {
    const big = h.transferSyntax.uid === '1.2.840.10008.1.2.2';
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    samples = new Uint16Array(pixels * c);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getUint16(2 * i, !big);
  }
  if (c === 3 && h.photometric === 'YBR_FULL_422')
    return { width: h.columns, height: h.rows, components: 3, samples: expand422(samples, h) };
  if (c === 3 && h.planarConfiguration === 1) {
    const inter = bytesPerSample === 1 ? new Uint8Array(pixels * 3) : new Uint16Array(pixels * 3);
    for (let p = 0; p < pixels; p++) for (let k = 0; k < 3; k++) inter[p * 3 + k] = samples[k * pixels + p] as number;
    samples = inter;
  }
  return { width: h.columns, height: h.rows, components: c, samples };
}

/** Uncompressed YBR_FULL_422 stores Y1 Y2 Cb Cr for each horizontal pair of pixels. */
function expand422(s: Uint8Array | Uint16Array, h: DicomImageHeader): Uint8Array | Uint16Array {
  const out =
    s instanceof Uint8Array ? new Uint8Array(h.rows * h.columns * 3) : new Uint16Array(h.rows * h.columns * 3);
  for (let pair = 0, j = 0; pair < (h.rows * h.columns) / 2; pair++, j += 4) {
    const cb = s[j + 2] as number;
    const cr = s[j + 3] as number;
    out.set([s[j] as number, cb, cr, s[j + 1] as number, cb, cr], pair * 6);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Samples → 8-bit grey or RGB
// ---------------------------------------------------------------------------

function toRaw(h: DicomImageHeader, ds: NaturalizedDataset, frames: CodecFrame[]): RawFrames {
  const width = h.columns;
  const height = h.rows;
  // The codecs return RGB for JPEG (YCbCr converted) and JPEG 2000 (ICT/RCT undone).
  const compressedColour = h.transferSyntax.codec === 'jpeg-baseline' || h.transferSyntax.codec === 'jpeg2000';
  const p = h.photometric;
  if (p === 'PALETTE COLOR') return { pixFmt: 'rgb24', width, height, frames: frames.map((f) => palette(ds, f)) };
  if (h.samplesPerPixel === 3) {
    const shift = Math.max(0, h.bitsStored - 8);
    const ybr = !compressedColour && (p === 'YBR_FULL' || p === 'YBR_FULL_422');
    return {
      pixFmt: 'rgb24',
      width,
      height,
      frames: frames.map((f) => {
        const rgb = new Uint8Array(f.samples.length);
        for (let i = 0; i < rgb.length; i++) rgb[i] = Math.min(255, (f.samples[i] as number) >> shift);
        return ybr ? ybrToRgb(rgb) : rgb;
      }),
    };
  }
  return { pixFmt: 'gray', width, height, frames: monochrome(h, ds, frames) };
}

/** YBR_FULL → RGB (PS3.3 C.7.6.3.1.2), in place. */
function ybrToRgb(px: Uint8Array): Uint8Array {
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  for (let i = 0; i < px.length; i += 3) {
    const y = px[i] as number;
    const cb = (px[i + 1] as number) - 128;
    const cr = (px[i + 2] as number) - 128;
    px[i] = clamp(y + 1.402 * cr);
    px[i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    px[i + 2] = clamp(y + 1.772 * cb);
  }
  return px;
}

/**
 * Grey: stored value (sign-extended) → modality LUT (Rescale Slope/Intercept) → VOI window
 * (Window Center/Width, PS3.3 C.11.2.1.2.1) → 0..255; without a window, 8-bit unsigned data
 * stays as is and deeper data is stretched over the min–max of the kept frames (one mapping
 * for the whole clip, so brightness does not flicker). MONOCHROME1 is inverted.
 */
function monochrome(h: DicomImageHeader, ds: NaturalizedDataset, frames: CodecFrame[]): Uint8Array[] {
  const bits = h.bitsStored;
  const mask = bits >= 16 ? 0xffff : (1 << bits) - 1;
  const signBit = 1 << (bits - 1);
  const slope = dicomNumber(ds.RescaleSlope) ?? 1;
  const intercept = dicomNumber(ds.RescaleIntercept) ?? 0;
  const value = (raw: number): number => {
    let v = raw & mask;
    if (h.pixelRepresentation === 1 && v & signBit) v -= 1 << bits;
    return v * slope + intercept;
  };
  const center = dicomNumber(ds.WindowCenter);
  const widthW = dicomNumber(ds.WindowWidth);
  const invert = h.photometric === 'MONOCHROME1';
  let map: (v: number) => number;
  if (center !== undefined && widthW !== undefined && widthW >= 1) {
    map = (v) => {
      const x = (v - (center - 0.5)) / (widthW - 1) + 0.5;
      return x <= 0 ? 0 : x >= 1 ? 255 : Math.round(x * 255);
    };
  } else if (bits === 8 && h.pixelRepresentation === 0 && slope === 1 && intercept === 0) {
    map = (v) => v;
  } else {
    let lo = Infinity;
    let hi = -Infinity;
    for (const f of frames) {
      for (let i = 0; i < f.samples.length; i++) {
        const v = value(f.samples[i] as number);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    const span = hi > lo ? hi - lo : 1;
    map = (v) => Math.round(((v - lo) / span) * 255);
  }
  return frames.map((f) => {
    const out = new Uint8Array(f.samples.length);
    for (let i = 0; i < out.length; i++) {
      const g = map(value(f.samples[i] as number));
      out[i] = invert ? 255 - g : g;
    }
    return out;
  });
}

/** PALETTE COLOR: each stored value indexes the red, green and blue lookup tables (PS3.3 C.7.6.3.1.5). */
function palette(ds: NaturalizedDataset, f: CodecFrame): Uint8Array {
  const lut = (c: 'Red' | 'Green' | 'Blue') => {
    const desc = dicomNumbers(ds[`${c}PaletteColorLookupTableDescriptor`]);
    const dataValue = ds[`${c}PaletteColorLookupTableData`];
    const buf = Array.isArray(dataValue) ? (dataValue[0] as unknown) : dataValue;
    if (desc.length < 3 || !(buf instanceof ArrayBuffer)) {
      throw new InvalidUploadError(
        'DICOM_INVALID_IMAGE',
        'The DICOM palette colour image lacks its lookup tables (segmented palettes are not decoded). Export it as RGB.',
      );
    }
    const entries = desc[0] === 0 ? 65536 : (desc[0] as number);
    const first = desc[1] as number;
    const bitsPerEntry = desc[2] as number;
    const bytes = new Uint8Array(buf);
    // Entries are 16-bit words even when 8 bits are used (PS3.3 C.7.6.3.1.6), unless the data is exactly one byte each.
    const wide = bytes.length >= entries * 2;
    const table = new Uint8Array(entries);
    for (let i = 0; i < entries; i++) {
      const v = wide ? (bytes[2 * i] as number) | ((bytes[2 * i + 1] as number) << 8) : (bytes[i] as number);
      table[i] = bitsPerEntry > 8 ? v >> 8 : v & 0xff;
    }
    return { table, first, entries };
  };
  const tables = [lut('Red'), lut('Green'), lut('Blue')];
  const out = new Uint8Array(f.samples.length * 3);
  for (let i = 0; i < f.samples.length; i++) {
    const v = f.samples[i] as number;
    for (let k = 0; k < 3; k++) {
      const t = tables[k]!;
      const idx = Math.min(t.entries - 1, Math.max(0, v - t.first));
      out[i * 3 + k] = t.table[idx] as number;
    }
  }
  return out;
}

function crop(raw: RawFrames, r: PixelRegion): RawFrames {
  const c = raw.pixFmt === 'rgb24' ? 3 : 1;
  const w = r.x1 - r.x0 + 1;
  const hgt = r.y1 - r.y0 + 1;
  return {
    ...raw,
    width: w,
    height: hgt,
    frames: raw.frames.map((f) => {
      const out = new Uint8Array(w * hgt * c);
      for (let y = 0; y < hgt; y++) {
        const src = ((r.y0 + y) * raw.width + r.x0) * c;
        out.set(f.subarray(src, src + w * c), y * w * c);
      }
      return out;
    }),
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
