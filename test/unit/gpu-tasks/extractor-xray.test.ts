import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../../core/paths';
import {
  decodeFrameBytes,
  defaultFfmpegPath,
  normaliseXray,
  XRAY_PERCENTILES,
} from '../../../gpu-tasks/feature-extractor/src/decode';
import { encodeLavfi, makeLavfiClip } from '../../helpers/clips';
import { tempDir } from '../../helpers/temp';

jest.setTimeout(60_000);

const CXR = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'cxr');
/** A real adult chest X-ray, 512 px wide and not square (ieee8023). */
const CHEST = path.join(CXR, 'images/ieee8023/jkms-35-e79-g001-l-a.jpg');

let work: string;
beforeAll(() => {
  work = tempDir('sonomark-xray-test-');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `CHEST` with its grey levels remapped by an ffmpeg lut expression (a darker or brighter exposure). */
function exposure(name: string, lut: string): string {
  const out = path.join(work, name);
  const r = spawnSync(
    defaultFfmpegPath(),
    ['-hide_banner', '-loglevel', 'error', '-y', '-i', CHEST, '-vf', `format=gray,lut=y='${lut}'`, out],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(r.stderr);
  return out;
}

const meanAbsDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;

describe('normaliseXray', () => {
  it('maps the percentiles to 0 and 255 and is invariant to a global gain and offset', () => {
    const data = new Uint8Array(100 * 100).map((_, i) => 40 + ((i * 7919) % 120));
    const dim = data.map((v) => Math.round(v * 0.5 + 10));
    const a = normaliseXray({ width: 100, height: 100, data });
    const b = normaliseXray({ width: 100, height: 100, data: dim });
    expect(Math.min(...a.data)).toBe(0);
    expect(Math.max(...a.data)).toBe(255);
    // Only the rounding of the dim copy differs: a level or two.
    expect(meanAbsDiff(a.data, b.data)).toBeLessThan(2);
    expect(XRAY_PERCENTILES).toEqual([0.5, 99.5]);
  });
  it('leaves a flat picture as it is', () => {
    const flat = { width: 4, height: 4, data: new Uint8Array(16).fill(77) };
    expect(normaliseXray(flat).data).toEqual(flat.data);
  });
});

describe('xray-1 decoding', () => {
  it('fits a wide picture inside the square with its aspect kept, padded with black, never stretched', async () => {
    const wide = encodeLavfi(path.join(work, 'wide.png'), 'testsrc2=size=200x100:duration=1:rate=1', [
      '-frames:v',
      '1',
      '-c:v',
      'png',
    ]);
    const clip = await decodeFrameBytes(wide, { size: 128, maxFrames: 1, preprocessing: 'xray-1' });
    expect(clip.count).toBe(1);
    const row = (y: number) => clip.bytes.subarray(y * 128, (y + 1) * 128);
    // 200×100 → 128×64, centred: rows 0–31 and 96–127 are padding.
    for (const y of [0, 31, 96, 127]) expect(Math.max(...row(y))).toBe(0);
    for (const y of [33, 64, 94]) expect(Math.max(...row(y))).toBeGreaterThan(0);
    // The picture spans the full width (no side bars).
    let first = 0;
    for (let y = 33; y < 95; y++) first = Math.max(first, clip.bytes[y * 128]!);
    expect(first).toBeGreaterThan(0);
  });

  it('gives a dark and a bright exposure of one chest the same bytes, up to rounding', async () => {
    const dark = exposure('dark.png', 'val*0.45+5');
    const bright = exposure('bright.png', 'val*0.6+90');
    const opts = { size: 160, maxFrames: 1 } as const;
    const x = await decodeFrameBytes(dark, { ...opts, preprocessing: 'xray-1' });
    const y = await decodeFrameBytes(bright, { ...opts, preprocessing: 'xray-1' });
    expect(meanAbsDiff(x.bytes, y.bytes)).toBeLessThan(3);
    // The letterbox alone keeps the exposure difference: the normalisation is what removes it.
    const lx = await decodeFrameBytes(dark, { ...opts, preprocessing: 'letterbox' });
    const ly = await decodeFrameBytes(bright, { ...opts, preprocessing: 'letterbox' });
    expect(meanAbsDiff(lx.bytes, ly.bytes)).toBeGreaterThan(20);
  });

  it('refuses a clip: an X-ray is one picture', async () => {
    const clip = makeLavfiClip(path.join(work, 'clip.mp4'), 'testsrc2=size=64x64:duration=1:rate=5', ['-c:v', 'mpeg4']);
    await expect(decodeFrameBytes(clip, { size: 64, maxFrames: 1, preprocessing: 'xray-1' })).rejects.toMatchObject({
      code: 'NOT_A_STILL',
      message: expect.stringMatching(/one picture, but the .* file has 5 frames/),
    });
  });
});
