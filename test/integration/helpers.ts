import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../lib/paths';

export const POCUS = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus');
export const clip = (rel: string): string => path.join(POCUS, rel);

/** Real clips in the containers the issue names, from ../shared/data/pocus. */
export const REAL_CLIPS = {
  mp4: clip('videos/convex/Reg-NormalLungs.mp4'),
  avi: clip('videos/convex/Pneu_northumbria_0409_set1_vid2.avi'),
  gif: clip('videos/convex/Pneu-Atlas-pneumonia.gif'),
  mov: clip('videos/convex/Cov_convex_volpecelli_sonographic_v3.mov'),
  mpeg: clip('videos/convex/Reg_pat2Image_134138.mpeg'),
} as const;

export function tempDir(prefix = 'sonomark-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function ffmpegPath(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
}

/** A clip ffmpeg generates: `frames` frames of a moving test pattern at 10 fps. */
export function generateClip(dir: string, name: string, frames: number, extraArgs: string[] = []): string {
  const out = path.join(dir, name);
  const r = spawnSync(
    ffmpegPath(),
    [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc=size=160x120:rate=10`,
      '-frames:v',
      String(frames),
      ...extraArgs,
      out,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed to generate ${name}: ${r.stderr}`);
  return out;
}

export function writeFile(dir: string, name: string, data: Buffer | string): string {
  const p = path.join(dir, name);
  writeFileSync(p, data);
  return p;
}
