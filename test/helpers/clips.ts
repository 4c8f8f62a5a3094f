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
