import { encodeLavfi, GENERATED_FORMATS, makeLavfiClip } from '../../helpers/clips';
import { POCUS, requirePocus } from '../../helpers/pocus';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DecodeError } from '../../../core/errors';
import { ACCEPTED_FORMAT_ROWS } from '../../../core/formats';
import { sniffContainer } from '../../../core/media';
import {
  decodeFrameBytes,
  decodeFrames,
  runningDecoderCount,
  uniformSampleIndices,
} from '../../../gpu-tasks/feature-extractor/src/decode';

// Each test runs ffmpeg on real clips, several times; on a loaded 2-core machine that can pass jest's 5-s default.
jest.setTimeout(60_000);
/** One real clip per container the pipeline accepts, with the frame count ffmpeg decodes from it. */
const REAL_CLIPS: { container: string; file: string; decodedFrames: number }[] = [
  { container: 'mp4', file: 'videos/convex/Reg-NormalLungs.mp4', decodedFrames: 131 },
  { container: 'avi', file: 'videos/convex/Pneu_northumbria_0409_set1_vid2.avi', decodedFrames: 93 },
  { container: 'gif', file: 'videos/convex/Reg-Atlas-alines.gif', decodedFrames: 60 },
  { container: 'mov', file: 'videos/convex/Cov_convex_volpecelli_sonographic_v5.mov', decodedFrames: 401 },
  { container: 'mpeg', file: 'videos/convex/Reg_pat2Image_134138.mpeg', decodedFrames: 236 },
  { container: 'png', file: 'images/linear/Cov_unsmoothpleuralline_prelim_study_SSRN_paper6.png', decodedFrames: 1 },
  { container: 'jpeg', file: 'images/convex/Pneu_Avi_small-effusionA-line.JPG', decodedFrames: 1 },
];

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'sonomark-decode-test-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** A synthetic clip in the test's work dir. */
function makeClip(name: string, source: string, extra: string[] = []): string {
  return makeLavfiClip(path.join(work, name), source, extra);
}

describe('extractor decode: real clips', () => {
  // Without the data set these tests fail and say why; they are never skipped.
  beforeAll(requirePocus);

  it.each(REAL_CLIPS)('decodes $container into [n,1,128,128] frames in [0,1]', async ({ file, decodedFrames }) => {
    // Prepare
    const clipPath = path.join(POCUS, file);

    // Act
    const clip = await decodeFrames(clipPath);

    // Assess
    const expectedCount = Math.min(decodedFrames, 64);
    expect(clip.size).toBe(128);
    expect(clip.decodedFrames).toBe(decodedFrames);
    expect(clip.count).toBe(expectedCount);
    expect(clip.frames).toHaveLength(expectedCount * 128 * 128);
    expect(clip.frameIndices).toEqual(uniformSampleIndices(decodedFrames, 64));
    let min = Infinity;
    let max = -Infinity;
    for (const v of clip.frames) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThanOrEqual(1);
    // Real ultrasound: not a blank picture.
    expect(max - min).toBeGreaterThan(0.5);
  });

  it('is deterministic: decoding twice, from a path and from bytes, gives identical pixels', async () => {
    // Prepare
    const clipPath = path.join(POCUS, 'videos/convex/Cov_convex_volpecelli_sonographic_v5.mov');

    // Act
    const a = await decodeFrameBytes(clipPath);
    const b = await decodeFrameBytes(clipPath);
    const c = await decodeFrameBytes(readFileSync(clipPath));

    // Assess
    expect(sha(b.bytes)).toBe(sha(a.bytes));
    expect(sha(c.bytes)).toBe(sha(a.bytes));
    expect(c.frameIndices).toEqual(a.frameIndices);
  });

  it('honours size and maxFrames', async () => {
    // Prepare
    const clipPath = path.join(POCUS, 'videos/convex/Reg-NormalLungs.mp4');

    // Act
    const clip = await decodeFrames(clipPath, { size: 64, maxFrames: 16 });

    // Assess
    expect(clip.count).toBe(16);
    expect(clip.frames).toHaveLength(16 * 64 * 64);
    expect(clip.frameIndices).toEqual(uniformSampleIndices(131, 16));
  });
});

describe('extractor decode: generated clips', () => {
  it('decodes every frame of a clip with a known frame count, and samples the right ones', async () => {
    // Prepare: 100 frames whose brightness encodes the frame number (Y = 16 + 2N, limited range), with a
    // bright corner so no frame is one flat grey level (those are refused as BLANK)
    const clip = makeClip(
      'ramp.mp4',
      "color=c=black:s=96x96:r=25:d=4,format=yuv420p,geq=lum='if(lt(X,6)*lt(Y,6),235,16+2*N)':cb=128:cr=128",
    );

    // Act
    const decoded = await decodeFrameBytes(clip, { size: 32, maxFrames: 10 });

    // Assess
    expect(decoded.decodedFrames).toBe(100);
    expect(decoded.frameIndices).toEqual([0, 11, 22, 33, 44, 55, 66, 77, 88, 99]);
    decoded.frameIndices.forEach((n, i) => {
      const centre = decoded.bytes[i * 32 * 32 + 16 * 32 + 16] as number;
      // Limited-range luma is expanded to full range: (16 + 2N − 16) · 255/219.
      expect(Math.abs(centre - (2 * n * 255) / 219)).toBeLessThanOrEqual(2);
    });
  });

  it('keeps the aspect ratio and pads with true black (0), centred', async () => {
    // Prepare: a wide white clip, 320×160 → 128×64 centred in 128×128 (a black box in its middle rows:
    // a picture of one flat grey level is refused as BLANK)
    const clip = makeClip(
      'wide.avi',
      'color=c=white:s=320x160:r=10:d=1,drawbox=x=150:y=70:w=20:h=20:color=black:t=fill',
    );

    // Act
    const decoded = await decodeFrameBytes(clip);

    // Assess
    const f = decoded.bytes.subarray(0, 128 * 128);
    const row = (y: number) => Array.from(f.subarray(y * 128, (y + 1) * 128));
    expect(decoded.decodedFrames).toBe(10);
    expect(new Set(row(0))).toEqual(new Set([0]));
    expect(new Set(row(31))).toEqual(new Set([0]));
    expect(Math.min(...row(32))).toBeGreaterThan(250);
    expect(Math.min(...row(95))).toBeGreaterThan(250);
    expect(new Set(row(96))).toEqual(new Set([0]));
  });

  it('rejects a clip with more frames than the hard limit as TOO_LONG', async () => {
    // Prepare
    const clip = makeClip('long.mp4', 'testsrc=size=64x64:rate=25:duration=2');

    // Act
    const result = decodeFrames(clip, { maxDecodedFrames: 20 });

    // Assess
    await expect(result).rejects.toMatchObject({ name: 'DecodeError', code: 'TOO_LONG' });
  });
});

describe('extractor decode: every accepted format of the table, generated by the npm ffmpeg', () => {
  const rows = ACCEPTED_FORMAT_ROWS.filter((f) => f.reader === 'ffmpeg');

  it('has a generator for every ffmpeg row', () => {
    expect(rows.map((r) => r.id).sort()).toEqual(Object.keys(GENERATED_FORMATS).sort());
  });

  it.each(rows.map((r) => [r.id]))('%s: sniffed by its bytes and decoded', async (id) => {
    // Prepare: 20 frames (one for a still) of a moving pattern, under a name that says nothing
    const gen = GENERATED_FORMATS[id] as { ext: string; args: string[]; still?: boolean };
    const file = encodeLavfi(
      path.join(work, `gen-${id}.${gen.ext}`),
      'testsrc=size=160x120:rate=25:duration=0.8',
      gen.args,
    );
    const bytes = readFileSync(file);

    // Act
    const decoded = await decodeFrameBytes(bytes, { maxFrames: 8 });

    // Assess
    expect(sniffContainer(bytes.subarray(0, 4096))).toBe(id);
    expect(decoded.decodedFrames).toBe(gen.still ? 1 : 20);
    expect(decoded.count).toBe(gen.still ? 1 : 8);
  });

  it('honours the sample aspect ratio: an anamorphic copy decodes to the picture the scanner meant', async () => {
    // Prepare: the same moving pattern, square pixels (160×120), and squeezed to 80×120 with 2:1 pixels
    const square = makeClip('square.mp4', 'testsrc=size=160x120:rate=10:duration=1');
    const squeezed = makeClip('anamorphic.mp4', 'testsrc=size=160x120:rate=10:duration=1,scale=80:120,setsar=2');

    // Act
    const a = await decodeFrameBytes(square);
    const b = await decodeFrameBytes(squeezed);

    // Assess: same geometry (128×96 centred), and pixels within a tolerance (the squeeze lost detail)
    expect(b.decodedFrames).toBe(a.decodedFrames);
    const frame = 128 * 128;
    let diff = 0;
    for (let i = 0; i < a.bytes.length; i++) diff += Math.abs((a.bytes[i] as number) - (b.bytes[i] as number));
    const meanDiff = diff / a.bytes.length;
    expect(meanDiff).toBeLessThan(12);
    for (const bytes of [a.bytes, b.bytes]) {
      expect(new Set(bytes.subarray(0, 16 * 128))).toEqual(new Set([0])); // the pad above the picture
      expect(Math.max(...bytes.subarray(17 * 128, 18 * 128))).toBeGreaterThan(0); // the picture
      expect(new Set(bytes.subarray(frame - 16 * 128, frame))).toEqual(new Set([0])); // the pad below
    }
  });
});

describe('extractor decode: bad input', () => {
  it('refuses random bytes before ffmpeg (UNSUPPORTED_FORMAT) with a message that names no path', async () => {
    // Prepare
    const bad = path.join(work, 'Patient_Jane_Doe_1970.mp4');
    writeFileSync(bad, randomBytes(4096));

    // Act
    const err = await decodeFrames(bad).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(DecodeError);
    expect(err).toMatchObject({ code: 'UNSUPPORTED_FORMAT' });
    const message = (err as Error).message;
    expect(message).toMatch(/match no accepted format\. Accepted: MP4/);
    expect(message).not.toMatch(/Jane|Patient|sonomark-decode|\/tmp|\//);
  });

  it('rejects a truncated mp4 (bytes) with DECODE_FAILED', async () => {
    // Prepare: the index (moov) of an mp4 written by ffmpeg sits at the end, so cutting the tail loses it
    const whole = readFileSync(makeClip('whole.mp4', 'testsrc=size=96x96:rate=25:duration=1'));
    const truncated = whole.subarray(0, Math.floor(whole.length / 2));

    // Act
    const err = await decodeFrames(truncated).catch((e: unknown) => e);

    // Assess
    expect(err).toMatchObject({ name: 'DecodeError', code: 'DECODE_FAILED' });
    expect((err as Error).message).toMatch(
      /^The clip could not be decoded: the MP4 \(M4V\) file is damaged, truncated/,
    );
    expect((err as Error).message).not.toMatch(/moov|corrupt|ffmpeg|tmp/);
  });

  it('rejects a missing file and an empty clip without naming them', async () => {
    // Prepare
    const missing = path.join(work, 'Patient_John_Smith.mp4');

    // Act
    const a = await decodeFrames(missing).catch((e: unknown) => e);
    const b = await decodeFrames(Buffer.alloc(0)).catch((e: unknown) => e);

    // Assess
    expect(a).toMatchObject({ name: 'DecodeError', code: 'NOT_FOUND' });
    expect((a as Error).message).not.toContain('Smith');
    expect(b).toMatchObject({ name: 'DecodeError', code: 'EMPTY_INPUT' });
  });

  it('reports a missing ffmpeg binary as FFMPEG_UNAVAILABLE', async () => {
    // Prepare
    const clip = makeClip('tiny.mp4', 'testsrc=size=32x32:rate=5:duration=1');

    // Act
    const err = await decodeFrames(clip, { ffmpegPath: path.join(work, 'no-such-ffmpeg') }).catch((e: unknown) => e);

    // Assess
    expect(err).toMatchObject({ name: 'DecodeError', code: 'FFMPEG_UNAVAILABLE' });
  });

  it('stops an ffmpeg that writes past its output bound (frames × frame bytes), instead of buffering it', async () => {
    // Prepare: an "ffmpeg" that ignores -frames:v and writes zeros until it is killed.
    const clip = makeClip('bounded.mp4', 'testsrc=size=32x32:rate=5:duration=1');
    const endless = path.join(work, 'endless-ffmpeg');
    writeFileSync(endless, '#!/bin/sh\nexec cat /dev/zero\n', { mode: 0o755 });

    // Act: 4 frames of 16×16 allowed, so the bound is (16·16 + 32)·5 bytes, the limit plus one frame.
    const err = await decodeFrames(clip, {
      ffmpegPath: endless,
      size: 16,
      maxFrames: 4,
      maxDecodedFrames: 4,
      timeoutMs: 10_000,
    }).catch((e: unknown) => e);

    // Assess: refused as a failed decode, not by the timeout (DECODE_TIMEOUT, after gigabytes of zeros), with no
    // decoder left running.
    expect(err).toMatchObject({ name: 'DecodeError', code: 'DECODE_FAILED' });
    expect(runningDecoderCount()).toBe(0);
  });

  it('stops a decode that runs past its timeout', async () => {
    // Prepare
    const clip = makeClip('slow.mp4', 'testsrc=size=640x480:rate=25:duration=8');

    // Act
    const err = await decodeFrames(clip, { timeoutMs: 1 }).catch((e: unknown) => e);

    // Assess
    expect(err).toMatchObject({ name: 'DecodeError', code: 'DECODE_TIMEOUT' });
  });
});
