import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { makeLavfiClip } from '../helpers/clips';
import { POCUS } from '../helpers/pocus';

export { POCUS } from '../helpers/pocus';
export { tempDir } from '../helpers/temp';
export const clip = (rel: string): string => path.join(POCUS, rel);

/** Real clips in the containers the issue names, from ../shared/data/pocus. */
export const REAL_CLIPS = {
  mp4: clip('videos/convex/Reg-NormalLungs.mp4'),
  avi: clip('videos/convex/Pneu_northumbria_0409_set1_vid2.avi'),
  gif: clip('videos/convex/Pneu-Atlas-pneumonia.gif'),
  mov: clip('videos/convex/Cov_convex_volpecelli_sonographic_v3.mov'),
  mpeg: clip('videos/convex/Reg_pat2Image_134138.mpeg'),
} as const;

/** A clip ffmpeg generates: `frames` frames of a moving test pattern at 10 fps. */
export function generateClip(dir: string, name: string, frames: number, extraArgs: string[] = []): string {
  return makeLavfiClip(path.join(dir, name), 'testsrc=size=160x120:rate=10', [
    '-frames:v',
    String(frames),
    ...extraArgs,
  ]);
}

export function writeFile(dir: string, name: string, data: Buffer | string): string {
  const p = path.join(dir, name);
  writeFileSync(p, data);
  return p;
}
