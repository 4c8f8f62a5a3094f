/**
 * Property-based fuzzing of the media sniffer and header reader (core/media.ts,
 * core/media-header.ts): random bytes, bytes that start like every known file, and
 * mutations of real clip headers from ../shared always give a container or a clear
 * refusal, a header with finite non-negative numbers, and a limit verdict; never a
 * crash or a hang.
 */
import fc from 'fast-check';
import { closeSync, openSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_INPUT_LIMITS } from '../../../core/limits';
import { isUnsupported, sniffContainer, SNIFF_BYTES } from '../../../core/media';
import { checkHeaderLimits, readHeaderInfo } from '../../../core/media-header';
import { MediaContainer } from '../../../core/schemas';
import { POCUS } from '../../helpers/pocus';
import { fuzzParams, mediaBytes, mutated, withinBudget } from '../helpers/fuzz';

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
