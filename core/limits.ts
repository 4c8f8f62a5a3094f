/**
 * Input limits: what Validate refuses before any GPU job is paid for (from the
 * object's size and its container header, core/media-header.ts), with the
 * defaults the README documents. The deployment config (lib/config.ts `limits`,
 * `maxUploadBytes`) overrides them; they reach the Validate Lambda through
 * ENV.inputLimits and ENV.maxUploadBytes.
 * The GPU job keeps its own guards (frame cap, timeout, bounded output).
 */
import { z } from 'zod';
import { MAX_DECODED_FRAMES } from './sampling';
import { formatZodIssues } from './zod-parse';

export const InputLimits = z
  .object({
    /** Longest clip, in seconds, when the header states the duration. */
    maxDurationSeconds: z.number().positive(),
    /** Most frames, when the header states the count. */
    maxFrames: z.number().int().positive(),
    /** Widest and tallest picture, in pixels (a header claiming more is refused unread). */
    maxWidth: z.number().int().positive(),
    maxHeight: z.number().int().positive(),
    /** Narrowest and shortest picture that can hold an ultrasound image. */
    minWidth: z.number().int().positive(),
    minHeight: z.number().int().positive(),
  })
  .strict();
export type InputLimits = z.infer<typeof InputLimits>;

export const DEFAULT_INPUT_LIMITS: InputLimits = {
  maxDurationSeconds: 600,
  maxFrames: MAX_DECODED_FRAMES,
  maxWidth: 4096,
  maxHeight: 4096,
  minWidth: 32,
  minHeight: 32,
};

/** What each limit means, for the README table. */
export const INPUT_LIMIT_DOCS: Record<keyof InputLimits, string> = {
  maxDurationSeconds:
    'longest clip, seconds (from the MP4/MOV, WebM/MKV or AVI header, or the DICOM frame count and timing)',
  maxFrames:
    'most frames (AVI header, MP4/MOV video samples, WebM/MKV duration ÷ frame duration, DICOM; the GPU job also stops decoding past it)',
  maxWidth: 'widest picture, pixels (every header with a size)',
  maxHeight: 'tallest picture, pixels',
  minWidth: 'narrowest picture that can hold an ultrasound image, pixels',
  minHeight: 'shortest picture, pixels',
};

/** Limits from a JSON string (the Lambda's env); missing keys keep their defaults. */
export function parseInputLimits(json: string | undefined, name: string): InputLimits {
  if (json === undefined || json === '') return DEFAULT_INPUT_LIMITS;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new Error(`${name} is not valid JSON.`);
  }
  const parsed = InputLimits.partial().strict().safeParse(value);
  if (!parsed.success) throw new Error(`${name} is invalid: ${formatZodIssues(parsed.error, 5)}`);
  return { ...DEFAULT_INPUT_LIMITS, ...parsed.data };
}

/** 2 GiB: longer than any lung ultrasound clip a site should send, small enough to hash in one Lambda run. */
export const DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024 ** 3;

/** The README table of limits and their defaults (deployment config keys). */
export function renderLimitsTable(): string {
  const rows = [
    `| \`maxUploadBytes\` | ${DEFAULT_MAX_UPLOAD_BYTES} (2 GiB) | largest upload, bytes (a larger object is never read) |`,
    ...(Object.keys(DEFAULT_INPUT_LIMITS) as (keyof InputLimits)[]).map(
      (k) => `| \`limits.${k}\` | ${DEFAULT_INPUT_LIMITS[k]} | ${INPUT_LIMIT_DOCS[k]} |`,
    ),
  ];
  return ['| limit (deployment config) | default | meaning |', '| --- | --- | --- |', ...rows].join('\n') + '\n';
}
