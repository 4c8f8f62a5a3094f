/**
 * The frame-sampling policy, written down once: the extractor's decoder (serving), the
 * training set export and `sonomark frames` all sample through these definitions, so a
 * model is trained on the frames it later sees.
 *
 * - Frame rate: no cap and no conversion. Every frame the file holds is decoded once
 *   (ffmpeg passthrough timing), so a 10 fps GIF and a 50 fps MP4 of the same length
 *   differ in how many frames they offer, not in which pixels a frame has.
 * - Maximum frames kept: the extractor's `input.maxFrames` in the manifest (64 for the
 *   shipped models), evenly spaced over the decoded frames by uniformSampleIndices.
 * - Maximum frames decoded: MAX_DECODED_FRAMES; a longer clip is refused (TOO_LONG), never
 *   silently truncated. Validate refuses it earlier when the header states the count.
 * - Stills are one-frame clips.
 * Changing any of this changes the features: bump the extractor version.
 */

/** Frame rate cap applied before sampling: none (see above). */
export const FPS_CAP: number | undefined = undefined;
/** Side of the square gray frame the extractor sees, unless the manifest says otherwise. */
export const DEFAULT_FRAME_SIZE = 128;
/** Frames kept per clip, unless the manifest's extractor says otherwise. */
export const DEFAULT_MAX_FRAMES = 64;
/** Clips with more decoded frames than this are refused (TOO_LONG) rather than silently truncated. */
export const MAX_DECODED_FRAMES = 5000;

/** The policy as recorded in a features document's `sampling.strategy`. */
export const SAMPLING_STRATEGY = 'uniform' as const;

/**
 * Indices of `k` frames spread uniformly over `n`: round(i·(n−1)/(k−1)), i = 0…k−1
 * (half rounds up), computed in exact integer arithmetic so no platform rounds
 * differently. All frames when n ≤ k; the middle frame when k = 1.
 */
export function uniformSampleIndices(n: number, k: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`frame count must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`sample size must be a positive integer, got ${k}`);
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  if (k === 1) return [Math.floor(n / 2)];
  const den = 2 * (k - 1);
  // Strictly increasing because the step (n−1)/(k−1) > 1 when n > k.
  return Array.from({ length: k }, (_, i) => Math.floor((2 * i * (n - 1) + (k - 1)) / den));
}
