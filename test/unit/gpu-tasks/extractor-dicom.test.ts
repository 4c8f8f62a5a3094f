import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DecodeError, InvalidUploadError } from '../../../core/errors';
import { parseDicom } from '../../../core/dicom/header';
import {
  decodeFrameBytes,
  defaultFfmpegPath,
  uniformSampleIndices,
  type DecodedClipBytes,
} from '../../../gpu-tasks/feature-extractor/src/decode';
import {
  buildDicom,
  deflateDicom,
  DEFLATED_LE,
  DICOM_SAMPLE_OUTCOMES,
  DICOM_SAMPLES,
  encodeRle,
  RLE_LOSSLESS,
  requireDicomSamples,
} from '../../helpers/dicom';
import { tempDir } from '../../helpers/temp';

jest.setTimeout(60_000);

const W = 96;
const H = 72;
/** A smooth RGB test picture with some structure (deterministic). */
function rgbPicture(seed = 0, w = W, h = H): Uint8Array {
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      px[i] = (x * 3 + seed * 7) & 0xff;
      px[i + 1] = (y * 3 + ((x * y) >> 5)) & 0xff;
      px[i + 2] = (((x + y) * 2) ^ seed) & 0xff;
    }
  }
  return px;
}
const planar = (px: Uint8Array): Uint8Array => {
  const n = px.length / 3;
  const out = new Uint8Array(px.length);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[c * n + p] = px[p * 3 + c] as number;
  return out;
};
const maxDiff = (a: Uint8Array, b: Uint8Array): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
};
function ffmpeg(args: string[]): void {
  const r = spawnSync(defaultFfmpegPath(), ['-hide_banner', '-loglevel', 'error', '-y', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

describe('DICOM decoder: the shared real samples', () => {
  beforeAll(requireDicomSamples);

  it.each(Object.entries(DICOM_SAMPLE_OUTCOMES))('%s → %j', async (name, outcome) => {
    const file = path.join(DICOM_SAMPLES, name);
    if ('frames' in outcome) {
      const clip = await decodeFrameBytes(file);
      expect(clip).toMatchObject({ count: outcome.frames, decodedFrames: outcome.frames, size: 128 });
      expect(clip.bytes).toHaveLength(outcome.frames * 128 * 128);
      // An image, not a blank: the decoded pixels vary.
      expect(new Set(clip.bytes).size).toBeGreaterThan(16);
      expect(clip.dicom?.transferSyntaxUid).toMatch(/^1\.2\.840\.10008\.1\.2/);
    } else {
      const err = await decodeFrameBytes(file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidUploadError);
      expect(err).toMatchObject({
        code: outcome.code,
        message: expect.stringMatching(/JPEG Extended \(12-bit\).*Accepted encodings/),
      });
    }
  });

  it('multiframe-test1: the frame rate comes from Frame Time', async () => {
    const clip = await decodeFrameBytes(path.join(DICOM_SAMPLES, 'multiframe-test1.dcm'));
    expect(clip.dicom?.frameRate).toEqual({ hz: expect.closeTo(14.395, 3), source: 'FrameTime' });
  });

  it('gdcm-US-RGB-8-epicard (big endian, planar RGB) decodes like the same pixels stored interleaved', async () => {
    // Prepare: the sample's planes, interleaved by the test, in a little-endian file
    const { dataset } = parseDicom(readFileSync(path.join(DICOM_SAMPLES, 'gdcm-US-RGB-8-epicard.dcm')));
    const planes = new Uint8Array((dataset.PixelData as ArrayBuffer[])[0] as ArrayBuffer);
    const n = 480 * 640;
    const inter = new Uint8Array(n * 3);
    for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) inter[p * 3 + c] = planes[c * n + p] as number;
    const twin = buildDicom({ rows: 480, columns: 640, samplesPerPixel: 3, frames: [inter] });

    // Act
    const [a, b] = await Promise.all([
      decodeFrameBytes(path.join(DICOM_SAMPLES, 'gdcm-US-RGB-8-epicard.dcm')),
      decodeFrameBytes(twin),
    ]);

    // Assess
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
  });
});

describe('DICOM decoder: the same pixels as the ffmpeg path', () => {
  it('an RGB DICOM gives byte-identical frames to a PNG of the same pixels', async () => {
    // Prepare
    const dir = tempDir();
    const px = rgbPicture(3);
    writeFileSync(path.join(dir, 'frame.rgb'), px);
    const png = path.join(dir, 'frame.png');
    ffmpeg(['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-video_size', `${W}x${H}`, '-i', path.join(dir, 'frame.rgb'), png]);

    // Act
    const fromPng = await decodeFrameBytes(png);
    const fromDicom = await decodeFrameBytes(buildDicom({ rows: H, columns: W, samplesPerPixel: 3, frames: [px] }));

    // Assess
    expect(Buffer.from(fromDicom.bytes).equals(Buffer.from(fromPng.bytes))).toBe(true);
    expect(fromDicom).toMatchObject({ count: 1, decodedFrames: 1, frameIndices: [0] });
  });

  it('a long multi-frame loop is sampled by the one policy (uniformSampleIndices) and cropped to its B-mode region', async () => {
    // Prepare: 100 frames; a 40x30 image region at (20, 10), the rest burned-in "text" (255)
    const frames: Uint8Array[] = [];
    const inner: Uint8Array[] = [];
    for (let f = 0; f < 100; f++) {
      const full = new Uint8Array(W * H).fill(255);
      const roi = new Uint8Array(40 * 30);
      for (let y = 0; y < 30; y++) for (let x = 0; x < 40; x++) roi[y * 40 + x] = (x * 4 + y * 2 + f) & 0x7f;
      for (let y = 0; y < 30; y++) full.set(roi.subarray(y * 40, (y + 1) * 40), (10 + y) * W + 20);
      frames.push(full);
      inner.push(roi);
    }
    const regions = [
      {
        RegionSpatialFormat: 1,
        RegionDataType: 1,
        RegionFlags: 0,
        RegionLocationMinX0: 20,
        RegionLocationMinY0: 10,
        RegionLocationMaxX1: 59,
        RegionLocationMaxY1: 39,
      },
    ];
    const withRegions = buildDicom({
      rows: H,
      columns: W,
      frames,
      extra: { SequenceOfUltrasoundRegions: regions, FrameTime: '33.3' },
    });
    const croppedTwin = buildDicom({ rows: 30, columns: 40, frames: inner });

    // Act
    const got = await decodeFrameBytes(withRegions, { maxFrames: 64 });
    const want = await decodeFrameBytes(croppedTwin, { maxFrames: 64 });

    // Assess
    expect(got.decodedFrames).toBe(100);
    expect(got.frameIndices).toEqual(uniformSampleIndices(100, 64));
    expect(got.dicom).toMatchObject({ crop: { x0: 20, y0: 10, x1: 59, y1: 39 }, frameRate: { source: 'FrameTime' } });
    expect(Buffer.from(got.bytes).equals(Buffer.from(want.bytes))).toBe(true);
    expect(got.bytes).not.toContain(255);
  });

  it('a colour JPEG baseline DICOM (YBR_FULL_422) matches ffmpeg decoding the same JPEG', async () => {
    // Prepare
    const dir = tempDir();
    writeFileSync(path.join(dir, 'frame.rgb'), rgbPicture(5));
    const jpg = path.join(dir, 'frame.jpg');
    ffmpeg(
      ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-video_size', `${W}x${H}`, '-i', path.join(dir, 'frame.rgb')].concat([
        '-pix_fmt',
        'yuvj420p',
        '-q:v',
        '2',
        jpg,
      ]),
    );
    const jpeg = readFileSync(jpg);
    const dcm = buildDicom({
      rows: H,
      columns: W,
      samplesPerPixel: 3,
      photometric: 'YBR_FULL_422',
      transferSyntax: '1.2.840.10008.1.2.4.50',
      frames: [jpeg, jpeg],
    });

    // Act
    const fromJpeg = await decodeFrameBytes(jpg);
    const fromDicom = await decodeFrameBytes(dcm);

    // Assess: libjpeg-turbo's RGB (clipped where this saturated picture leaves the gamut) and
    // ffmpeg's direct luma agree to within a grey level on average
    expect(fromDicom.count).toBe(2);
    const a = fromDicom.bytes.subarray(0, 128 * 128);
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] as number) - (fromJpeg.bytes[i] as number));
    expect(sum / a.length).toBeLessThan(1);
  });
});

describe('DICOM decoder: encodings and colour models the samples lack', () => {
  const rgbFrames = [rgbPicture(1), rgbPicture(2)];
  let rgb: DecodedClipBytes;
  beforeAll(async () => {
    rgb = await decodeFrameBytes(buildDicom({ rows: H, columns: W, samplesPerPixel: 3, frames: rgbFrames }));
  });

  it('planar RGB (Planar Configuration 1) equals interleaved RGB', async () => {
    const got = await decodeFrameBytes(
      buildDicom({ rows: H, columns: W, samplesPerPixel: 3, planarConfiguration: 1, frames: rgbFrames.map(planar) }),
    );
    expect(Buffer.from(got.bytes).equals(Buffer.from(rgb.bytes))).toBe(true);
  });

  it('RLE Lossless RGB equals the uncompressed frames', async () => {
    const rle = buildDicom({
      transferSyntax: RLE_LOSSLESS,
      rows: H,
      columns: W,
      samplesPerPixel: 3,
      frames: rgbFrames.map((f) => encodeRle(planar(f), W * H, 3)),
    });
    const got = await decodeFrameBytes(rle);
    expect(got.dicom?.transferSyntaxUid).toBe(RLE_LOSSLESS);
    expect(Buffer.from(got.bytes).equals(Buffer.from(rgb.bytes))).toBe(true);
  });

  it('RLE Lossless 16-bit grey equals the uncompressed 16-bit frames (two byte planes, MSB first)', async () => {
    const values = new Uint16Array(W * H).map((_, i) => (i * 37) % 4096);
    const native = new Uint8Array(values.buffer.slice(0));
    const msbLsb = new Uint8Array(W * H * 2);
    values.forEach((v, i) => {
      msbLsb[i] = v >> 8;
      msbLsb[W * H + i] = v & 0xff;
    });
    const a = await decodeFrameBytes(buildDicom({ rows: H, columns: W, bitsAllocated: 16, frames: [native] }));
    const b = await decodeFrameBytes(
      buildDicom({
        transferSyntax: RLE_LOSSLESS,
        rows: H,
        columns: W,
        bitsAllocated: 16,
        frames: [encodeRle(msbLsb, W * H, 2)],
      }),
    );
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true);
  });

  it('Deflated Explicit VR Little Endian equals the same data set uncompressed', async () => {
    // Prepare
    const plain = buildDicom({
      transferSyntax: DEFLATED_LE,
      rows: H,
      columns: W,
      samplesPerPixel: 3,
      frames: rgbFrames,
    });
    const deflated = deflateDicom(plain);
    expect(deflated.length).toBeLessThan(plain.length);

    // Act
    const got = await decodeFrameBytes(deflated);

    // Assess
    expect(got.dicom?.transferSyntaxUid).toBe('1.2.840.10008.1.2.1.99');
    expect(Buffer.from(got.bytes).equals(Buffer.from(rgb.bytes))).toBe(true);
  });

  it('PALETTE COLOR equals the RGB it maps to', async () => {
    // Prepare: indices 0..255 into 16-bit tables
    const idx = new Uint8Array(W * H).map((_, i) => (i * 7) & 0xff);
    const lut = (f: (i: number) => number) => new Uint16Array(256).map((_, i) => f(i) * 257).buffer;
    const r = (i: number) => i;
    const g = (i: number) => 255 - i;
    const b = (i: number) => (i * 3) & 0xff;
    const mapped = new Uint8Array(W * H * 3);
    idx.forEach((v, p) => mapped.set([r(v), g(v), b(v)], p * 3));
    const pal = buildDicom({
      rows: H,
      columns: W,
      photometric: 'PALETTE COLOR',
      frames: [idx],
      extra: {
        RedPaletteColorLookupTableDescriptor: [256, 0, 16],
        GreenPaletteColorLookupTableDescriptor: [256, 0, 16],
        BluePaletteColorLookupTableDescriptor: [256, 0, 16],
        RedPaletteColorLookupTableData: [lut(r)],
        GreenPaletteColorLookupTableData: [lut(g)],
        BluePaletteColorLookupTableData: [lut(b)],
      },
    });

    // Act
    const got = await decodeFrameBytes(pal);
    const want = await decodeFrameBytes(buildDicom({ rows: H, columns: W, samplesPerPixel: 3, frames: [mapped] }));

    // Assess
    expect(Buffer.from(got.bytes).equals(Buffer.from(want.bytes))).toBe(true);
  });

  it('YBR_FULL and uncompressed YBR_FULL_422 come out as the RGB they encode', async () => {
    // Prepare: a grey-ish picture (Cb = Cr = 128) so 4:2:2 loses nothing
    const y = new Uint8Array(W * H).map((_, i) => (i * 5) & 0xff);
    const ybr = new Uint8Array(W * H * 3);
    y.forEach((v, p) => ybr.set([v, 128, 128], p * 3));
    const ybr422 = new Uint8Array(W * H * 2);
    for (let p = 0; p < W * H; p += 2) ybr422.set([y[p] as number, y[p + 1] as number, 128, 128], p * 2);
    const grey = await decodeFrameBytes(buildDicom({ rows: H, columns: W, frames: [y] }));

    // Act
    const full = await decodeFrameBytes(
      buildDicom({ rows: H, columns: W, samplesPerPixel: 3, photometric: 'YBR_FULL', frames: [ybr] }),
    );
    const half = await decodeFrameBytes(
      buildDicom({ rows: H, columns: W, samplesPerPixel: 3, photometric: 'YBR_FULL_422', frames: [ybr422] }),
    );

    // Assess
    expect(maxDiff(full.bytes, grey.bytes)).toBeLessThanOrEqual(1);
    expect(Buffer.from(half.bytes).equals(Buffer.from(full.bytes))).toBe(true);
  });

  it('MONOCHROME1 is inverted', async () => {
    const y = new Uint8Array(W * H).map((_, i) => (i * 5) & 0xff);
    const inverted = y.map((v) => 255 - v);
    const m2 = await decodeFrameBytes(buildDicom({ rows: H, columns: W, frames: [y] }));
    const m1 = await decodeFrameBytes(
      buildDicom({ rows: H, columns: W, photometric: 'MONOCHROME1', frames: [inverted] }),
    );
    // Same picture, inside the 128x128 canvas (the black padding is not part of the image)
    expect(maxDiff(m1.bytes.subarray(128 * 28, 128 * 100), m2.bytes.subarray(128 * 28, 128 * 100))).toBeLessThanOrEqual(
      1,
    );
  });
});

describe('DICOM decoder: typed errors that say what is accepted', () => {
  it('no pixel data → InvalidUpload DICOM_NO_PIXEL_DATA', async () => {
    await expect(decodeFrameBytes(buildDicom({ rows: 8, columns: 8 }))).rejects.toMatchObject({
      name: 'InvalidUpload',
      code: 'DICOM_NO_PIXEL_DATA',
    });
  });

  it('an unknown transfer syntax → InvalidUpload DICOM_UNSUPPORTED_TRANSFER_SYNTAX', async () => {
    const file = buildDicom({
      rows: 8,
      columns: 8,
      transferSyntax: '1.2.840.10008.1.2.4.80',
      frames: [new Uint8Array(64)],
    });
    await expect(decodeFrameBytes(file)).rejects.toMatchObject({
      code: 'DICOM_UNSUPPORTED_TRANSFER_SYNTAX',
      message: expect.stringMatching(/JPEG-LS Lossless.*Accepted encodings/),
    });
  });

  it('truncated pixel data → DecodeError DICOM_PIXEL_DATA_TRUNCATED', async () => {
    const file = buildDicom({ rows: 16, columns: 16, frames: [new Uint8Array(256), new Uint8Array(256)] });
    const err = await decodeFrameBytes(file.subarray(0, file.length - 100)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecodeError);
    expect(err).toMatchObject({ code: 'DICOM_PIXEL_DATA_TRUNCATED' });
  });

  it('a loop longer than the frame cap → TOO_LONG, like any clip', async () => {
    const file = buildDicom({ rows: 8, columns: 8, frames: Array.from({ length: 12 }, () => new Uint8Array(64)) });
    await expect(decodeFrameBytes(file, { maxDecodedFrames: 10 })).rejects.toMatchObject({ code: 'TOO_LONG' });
  });

  it('a text file named .dcm is not DICOM: the clip decoder refuses it', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'scan.dcm');
    writeFileSync(file, 'Patient: Jane Doe\nThis is a text file.\n');
    const err = await decodeFrameBytes(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as Error).message).not.toMatch(/Jane|scan\.dcm/);
  });
});
