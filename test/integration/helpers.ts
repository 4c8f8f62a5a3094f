import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadManifest } from '../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../core/paths';
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

/** The shipped version of an expert (models/manifest.json): tests that publish a new version build on it. */
export function shippedExpertVersion(name: string): string {
  const e = loadManifest(DEFAULT_MODELS_DIR).manifest.experts.find((x) => x.name === name);
  if (!e) throw new Error(`models/manifest.json ships no ${name} expert`);
  return e.version;
}

/** The next patch version after `version` (1.2.0 → 1.2.1): a version the shipped manifest does not have. */
export const nextPatch = (version: string): string => version.replace(/\d+$/, (p) => String(Number(p) + 1));

/** `s` with regular-expression metacharacters escaped. */
export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
