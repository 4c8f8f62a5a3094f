/**
 * Property-based fuzzing of the media sniffer and header reader (core/media.ts,
 * core/media-header.ts): random bytes, bytes that start like every known file, and
 * mutations of real clip headers from ../shared always give a container or a clear
 * refusal, a header with finite non-negative numbers, and a limit verdict; never a
 * crash or a hang. The ranged readers (readHeaderInfoRanged: Matroska/WebM past the
 * head, an MP4 index at the end) get the same, on files the bundled ffmpeg writes and
 * on random EBML elements and ISO boxes with lying sizes: every read they ask for is
 * bounded by a constant, whatever size the bytes claim.
 */
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { bufferRangeReader } from '../../../core/byte-range';
import { DEFAULT_INPUT_LIMITS } from '../../../core/limits';
import { EBML_ID, MAX_MATROSKA_ELEMENT_BYTES } from '../../../core/matroska-header';
import { isUnsupported, sniffContainer, SNIFF_BYTES } from '../../../core/media';
import {
  checkHeaderLimits,
  MAX_INDEX_BYTES,
  MAX_TOP_LEVEL_BOXES,
  readHeaderInfo,
  readHeaderInfoRanged,
  type HeaderInfo,
} from '../../../core/media-header';
import { MediaContainer } from '../../../core/schemas';
import { defaultFfmpegPath } from '../../../gpu-tasks/feature-extractor/src/decode';
import { encodeLavfi } from '../../helpers/clips';
import { POCUS } from '../../helpers/pocus';
import { tempDir } from '../../helpers/temp';
import { fuzzParams, mediaBytes, mutated, withinBudget, withinBudgetAsync } from '../helpers/fuzz';

/** The first bytes of a real file, as Validate reads them. */
function head(file: string, bytes = 16 * 1024): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

const SHARED = path.resolve(POCUS, '..');
const REAL = [
  path.join(POCUS, 'videos/convex/Reg-NormalLungs.mp4'),
  path.join(POCUS, 'videos/convex/Pneu_northumbria_0409_set1_vid2.avi'),
  path.join(POCUS, 'videos/convex/Pneu-Atlas-pneumonia.gif'),
  path.join(POCUS, 'videos/convex/Cov_convex_volpecelli_sonographic_v3.mov'),
  path.join(POCUS, 'videos/convex/Reg_pat2Image_134138.mpeg'),
  path.join(SHARED, 'dicom/gdcm-US-RGB-8-epicard.dcm'),
  path.join(SHARED, 'dicom/multiframe-test1.dcm'),
];

function checkOne(bytes: Uint8Array, fileSize: number): void {
  const sniffed = withinBudget(() => sniffContainer(bytes), 'sniffContainer');
  if (isUnsupported(sniffed)) {
    expect(typeof sniffed.unsupported).toBe('string');
    expect(sniffed.unsupported.length).toBeGreaterThan(20);
    return;
  }
  expect(MediaContainer.safeParse(sniffed).success).toBe(true);
  const info = withinBudget(() => readHeaderInfo(sniffed, bytes, fileSize), `readHeaderInfo(${sniffed})`);
  checkInfo(info);
}

function checkInfo(info: HeaderInfo): void {
  for (const field of ['width', 'height', 'durationSeconds', 'frames'] as const) {
    const v = info[field];
    if (v !== undefined) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(0);
    }
  }
  const verdict = checkHeaderLimits(info, DEFAULT_INPUT_LIMITS);
  if (verdict) {
    expect(verdict.code).toMatch(/^[A-Z_]+$/);
    expect(verdict.message.length).toBeGreaterThan(10);
  }
}

describe('the media sniffer and header reader under fuzzing', () => {
  it('give a container or a clear refusal for any bytes, and a sane header for a container', () => {
    fc.assert(
      fc.property(mediaBytes(4096), fc.nat({ max: 2 ** 31 }), (bytes, extra) => {
        checkOne(bytes, bytes.length + (extra % 3 === 0 ? 0 : extra));
      }),
      fuzzParams(1500),
    );
  });

  it('survive bit flips, cuts and overwrites of real clip and DICOM headers from ../shared', () => {
    const heads = REAL.map((f) => head(f, Math.min(SNIFF_BYTES, 16 * 1024)));
    fc.assert(
      fc.property(
        fc.constantFrom(...heads.keys()).chain((i) => mutated(heads[i]!)),
        (bytes) => checkOne(bytes, bytes.length),
      ),
      fuzzParams(600),
    );
  });
});

/** The ranged reader on a file whose head is `headLength` bytes: resolves (never throws), asks only bounded reads. */
async function checkRanged(file: Uint8Array, headLength: number, claimedSize: number): Promise<void> {
  const sniffed = sniffContainer(file.subarray(0, SNIFF_BYTES));
  if (isUnsupported(sniffed)) return;
  const inner = bufferRangeReader(file);
  const reads: number[] = [];
  const reader = {
    read: (offset: number, length: number) => {
      reads.push(length);
      return inner.read(offset, length);
    },
  };
  const info = await withinBudgetAsync(
    () => readHeaderInfoRanged(sniffed, file.subarray(0, headLength), claimedSize, reader),
    `readHeaderInfoRanged(${sniffed})`,
  );
  checkInfo(info);
  // Never a read sized by a claim: each is at most the index bound, and there are few of them.
  expect(reads.length).toBeLessThanOrEqual(MAX_TOP_LEVEL_BOXES + 4);
  for (const length of reads) {
    expect(Number.isSafeInteger(length)).toBe(true);
    expect(length).toBeLessThanOrEqual(Math.max(MAX_INDEX_BYTES, MAX_MATROSKA_ELEMENT_BYTES));
  }
}

/** EBML: an element with a known ID (or any), a true, lying, huge or unknown size, and a payload. */
function ebmlElement(payload: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  const ids = Object.values(EBML_ID);
  return fc
    .tuple(
      fc.oneof(fc.constantFrom(...ids), fc.integer({ min: 0x81, max: 0xfe })),
      fc.constantFrom('true', 'lie', 'huge', 'unknown'),
      fc.oneof(fc.nat({ max: 300 }), fc.nat({ max: 2 ** 31 })),
      payload,
    )
    .map(([id, mode, lie, body]) => {
      const idBytes: number[] = [];
      for (let v = id; v > 0; v = Math.floor(v / 256)) idBytes.unshift(v % 256);
      const size = Buffer.alloc(8);
      if (mode === 'unknown') size.fill(0xff);
      else
        size.writeBigUInt64BE(mode === 'huge' ? 2n ** 55n + BigInt(lie) : BigInt(mode === 'lie' ? lie : body.length));
      size[0] = mode === 'unknown' ? 0x01 : size[0]! | 0x01;
      return Buffer.concat([Buffer.from(idBytes), size, body]);
    });
}
const ebmlFile = fc
  .tuple(
    fc.boolean(),
    fc.array(ebmlElement(fc.uint8Array({ maxLength: 40 })), { maxLength: 4 }),
    fc.array(ebmlElement(fc.uint8Array({ maxLength: 200 })), { maxLength: 8 }),
  )
  .map(([unknownSegment, inner, top]) => {
    const header = Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x8b, 0x42, 0x82, 0x88, ...Buffer.from('matroska')]);
    const children = Buffer.concat([...top, ...inner]);
    const seg = Buffer.from([0x18, 0x53, 0x80, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 0]);
    if (unknownSegment) seg.fill(0xff, 5, 12);
    else seg.writeUIntBE(children.length, 6, 6);
    return Buffer.concat([header, seg, children]);
  });

/** ISO boxes: known top-level and index types, with true, lying, zero (to the end) or 64-bit sizes. */
const isoFile = fc
  .array(
    fc.tuple(
      fc.constantFrom(
        'ftyp',
        'free',
        'mdat',
        'moov',
        'trak',
        'mvhd',
        'tkhd',
        'mdia',
        'hdlr',
        'minf',
        'stbl',
        'stsz',
        'wide',
      ),
      fc.constantFrom('true', 'lie', 'zero', 'large'),
      fc.nat({ max: 2 ** 32 - 1 }),
      fc.uint8Array({ maxLength: 120 }),
    ),
    { minLength: 1, maxLength: 12 },
  )
  .map((boxes) =>
    Buffer.concat([
      Buffer.from('\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom', 'latin1'),
      ...boxes.map(([type, mode, lie, body]) => {
        const h = Buffer.alloc(mode === 'large' ? 16 : 8);
        h.writeUInt32BE(mode === 'true' ? 8 + body.length : mode === 'lie' ? lie : mode === 'zero' ? 0 : 1);
        h.write(type, 4, 'latin1');
        if (mode === 'large') h.writeBigUInt64BE(BigInt(lie) * 2n ** 20n + 16n + BigInt(body.length), 8);
        return Buffer.concat([h, body]);
      }),
    ]),
  );

describe('the ranged header readers (Matroska/WebM, MP4 index at the end) under fuzzing', () => {
  // Real files the bundled ffmpeg writes, small enough to mutate whole.
  const dir = tempDir();
  const source = 'testsrc=size=96x64:rate=10:duration=1';
  const vpx = /libvpx/.test(spawnSync(defaultFfmpegPath(), ['-hide_banner', '-encoders'], { encoding: 'utf8' }).stdout);
  const files = [
    encodeLavfi(path.join(dir, 'a.mkv'), source, ['-c:v', 'ffv1']),
    encodeLavfi(path.join(dir, 'b.mkv'), source, ['-c:v', 'mjpeg']),
    encodeLavfi(path.join(dir, 'late.mp4'), source, ['-c:v', 'mpeg4']),
    encodeLavfi(path.join(dir, 'late.mov'), source, ['-c:v', 'mjpeg']),
    ...(vpx ? [encodeLavfi(path.join(dir, 'c.webm'), source, ['-c:v', 'libvpx', '-b:v', '100k'])] : []),
  ].map((f) => readFileSync(f));

  it('resolve with sane numbers and bounded reads for random EBML elements and ISO boxes with lying sizes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(ebmlFile, isoFile, mediaBytes(4096)),
        fc.nat({ max: 512 }),
        fc.nat({ max: 2 ** 31 }),
        async (file, headLength, extra) => {
          await checkRanged(file, headLength, file.length + (extra % 3 === 0 ? 0 : extra));
        },
      ),
      fuzzParams(800),
    );
  });

  it('survive bit flips, cuts and overwrites of whole mkv, webm, mov and index-at-end mp4 files', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...files.keys()).chain((i) => mutated(files[i]!)),
        fc.nat({ max: 2048 }),
        async (file, headLength) => {
          await checkRanged(file, headLength, file.length);
        },
      ),
      fuzzParams(600),
    );
  });
});
