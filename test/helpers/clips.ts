/**
 * Synthetic clips for tests, encoded by the same ffmpeg the decoder uses, from
 * lavfi sources (mpeg4 at top quality: an encoder every ffmpeg build has).
 */
import { spawnSync } from 'node:child_process';
import { defaultFfmpegPath } from '../../gpu-tasks/feature-extractor/src/decode';

/** Encodes `source` (a lavfi graph) to `out`; `extra` options go before the codec options. */
export function makeLavfiClip(out: string, source: string, extra: string[] = []): string {
  const r = spawnSync(
    defaultFfmpegPath(),
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      source,
      ...extra,
      '-c:v',
      'mpeg4',
      '-q:v',
      '1',
      out,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ffmpeg could not make the test clip: ${r.stderr}`);
  return out;
}

/** Encodes `source` (a lavfi graph) to `out` with exactly `args` (codec, muxer): for the other formats. */
export function encodeLavfi(out: string, source: string, args: string[]): string {
  const r = spawnSync(
    defaultFfmpegPath(),
    ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', source, ...args, out],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ffmpeg could not make the test file: ${r.stderr}`);
  return out;
}

/** Encoder arguments per format row for a generated clip, with encoders the npm ffmpeg 4.1 static build has. */
export const GENERATED_FORMATS: Record<string, { ext: string; args: string[]; still?: boolean }> = {
  mp4: { ext: 'mp4', args: ['-c:v', 'mpeg4', '-q:v', '2'] },
  mov: { ext: 'mov', args: ['-c:v', 'mjpeg', '-q:v', '2'] },
  avi: { ext: 'avi', args: ['-c:v', 'mpeg4', '-q:v', '2'] },
  mpeg: { ext: 'mpg', args: ['-c:v', 'mpeg2video', '-q:v', '2', '-r', '25', '-f', 'mpeg'] },
  m2v: { ext: 'm2v', args: ['-c:v', 'mpeg2video', '-q:v', '2', '-r', '25'] },
  mpegts: { ext: 'ts', args: ['-c:v', 'mpeg2video', '-q:v', '2', '-r', '25', '-f', 'mpegts'] },
  gif: { ext: 'gif', args: [] },
  webm: { ext: 'webm', args: ['-c:v', 'libvpx', '-b:v', '1M'] },
  mkv: { ext: 'mkv', args: ['-c:v', 'ffv1'] },
  jpeg: { ext: 'jpg', args: ['-frames:v', '1', '-q:v', '2'], still: true },
  png: { ext: 'png', args: ['-frames:v', '1'], still: true },
  bmp: { ext: 'bmp', args: ['-frames:v', '1'], still: true },
};
