/**
 * Decoded frames kept in memory for one training run. The experts steps run the same clips through
 * several extractors (the shipped one, one per cross-validation fold, one per held-out source) with
 * the same decode options; decoding (two ffmpeg passes under roi preprocessing) costs far more than
 * a small extractor's inference, so each clip is decoded once per run and its frames reused.
 *
 * Kept as the 8-bit bytes the float frames are made from (a quarter of the floats' memory) and
 * converted exactly as decodeFrames does. Keyed by the clip's sha256 and every decode option that
 * changes the pixels. DICOM clips are not kept: their pseudonyms depend on the salt passed per call.
 */
import {
  type ExtractorSession,
  decodeFrameBytes,
  toFloat01,
  type DecodedClip,
  type DecodedClipBytes,
  type DecodeOptions,
} from '../../gpu-tasks/feature-extractor/src';
import type { FrameOutputs } from '../../core/features';

/** About 400 MB holds both training collections at 64 frames of 128×128. */
export const DEFAULT_FRAMES_MEMO_BYTES = 1024 ** 3;

export class DecodedFramesMemo {
  private readonly clips = new Map<string, DecodedClipBytes>();
  private heldBytes = 0;
  /** Model outputs by model sha256 and clip: copies of one model under other names (a fold model reused for a source) run once. */
  private readonly runs = new Map<string, Promise<FrameOutputs>>();
  hits = 0;
  misses = 0;
  runHits = 0;

  constructor(
    private readonly maxBytes: number = DEFAULT_FRAMES_MEMO_BYTES,
    private readonly decode: (
      clip: Buffer | string,
      opts: DecodeOptions,
    ) => Promise<DecodedClipBytes> = decodeFrameBytes,
  ) {}

  /** decodeFrames for the clip whose bytes hash to `sha256`, from memory when decoded before with these options. */
  async frames(sha256: string, clip: Buffer | string, opts: DecodeOptions): Promise<DecodedClip> {
    const key = `${sha256}:${JSON.stringify([opts.size, opts.maxFrames, opts.maxDecodedFrames, opts.preprocessing ?? 'letterbox'])}`;
    let c = this.clips.get(key);
    if (c) this.hits++;
    else {
      this.misses++;
      c = await this.decode(clip, opts);
      if (!c.dicom && this.heldBytes + c.bytes.length <= this.maxBytes) {
        this.clips.set(key, c);
        this.heldBytes += c.bytes.length;
      }
    }
    const { bytes, ...rest } = c;
    return { ...rest, frames: toFloat01(bytes) };
  }

  /**
   * `session`, with its runs on this clip remembered by the model file's sha256: the same weights on the same
   * frames give the same outputs, whatever the model is called. Only for clips decoded through this memo.
   */
  session(session: ExtractorSession, clipSha256: string): ExtractorSession {
    const runs = this.runs;
    const hit = () => this.runHits++;
    return {
      entry: session.entry,
      executionProvider: session.executionProvider,
      release: () => session.release(),
      run(frames: Float32Array, count: number): Promise<FrameOutputs> {
        const key = `${session.entry.sha256}:${JSON.stringify(session.entry.input)}:${clipSha256}:${count}:${frames.length}`;
        let out = runs.get(key);
        if (out) hit();
        else {
          out = session.run(frames, count);
          runs.set(key, out);
          out.catch(() => runs.delete(key));
        }
        return out;
      },
    };
  }
}
