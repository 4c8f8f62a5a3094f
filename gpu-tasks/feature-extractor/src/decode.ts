/**
 * Clip → frames: THE single source of truth for the pixels sonomark's networks see.
 *
 * The GPU container, local mode, `sonomark frames` and the training dataset builder
 * all call decodeFrames, so training and serving see byte-identical inputs. Change
 * nothing here without bumping the extractor version: a different resize or
 * sampling silently shifts every feature.
 *
 * Pipeline: ffmpeg decodes every video frame (no frame-rate conversion), scales it
 * to fit inside a size×size square with area averaging (aspect kept) and converts
 * it to full-range 8-bit gray; each frame is then centred on a black (0) size×size
 * canvas here, at most `maxFrames` frames are picked by deterministic uniform
 * sampling, and bytes become float32 in [0, 1].
 *
 * Padding is done here, not with ffmpeg's `pad` filter: `pad` on gray writes
 * "black" as 16 (limited range) in ffmpeg 4.x while the scaled picture is full
 * range, and its colour handling changed in later releases, so the bundled ffmpeg
 * and the container's could disagree on the border. Frames come out as a PGM
 * stream so each one carries its own width and height.
 *
 * Preprocessing `roi-1` (DecodeOptions.preprocessing, from the manifest's extractor `input`;
 * `letterbox`, the above, when absent): a first ffmpeg pass streams every frame fitted into
 * ROI_ANALYSIS_SIZE through per-pixel statistics (no frame is kept), which find the ultrasound
 * image region (roi.ts); a second pass decodes only the sampled frames, cropped to that region in
 * the source's own pixels and fitted into the square; then the mask and intensity normalisation.
 * Memory stays bounded by the frames kept, not by the clip's length.
 *
 * Preprocessing `trim-1`: the same two passes, but the region is the picture's content box (roi.ts
 * findContentBox: rows and columns that reach a grey level in some frame), placed at the top of the square;
 * nothing is masked or normalised. Black borders of any width (pillar-box, letterbox, padding added by a
 * re-encoding or an archive) fall outside the box, so they do not shrink the scan inside the square.
 *
 * Preprocessing `xray-1` (chest X-rays): the letterbox fit above of exactly one picture (a file with
 * more frames is refused: an X-ray is a still), then normaliseXray: the picture's own pixels (never the
 * padding) stretched so their XRAY_PERCENTILES map to 0 and 255. Exposure, detector gain, window/level
 * and the JPEG export of each collection differ far more between sites than between lungs; a stretch
 * between robust percentiles makes a dark and a bright exposure of one chest (any positive gain and
 * offset) give the same bytes up to rounding, and the 0.5 % tails (labels, burnt-in markers, collimator
 * edges) cannot set the scale. No histogram equalisation: it would reshape the contrast of opacities,
 * which is the signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ENV } from '../../../core/contract';
import { DecodeError, TransientError } from '../../../core/errors';
import { ACCEPTED_FORMATS, FFMPEG_FORMAT_WHITELIST, formatRow, type FormatRow } from '../../../core/formats';
import { isUnsupported, sniffContainer, SNIFF_BYTES } from '../../../core/media';
import { readHeaderInfo } from '../../../core/media-header';
import {
  DEFAULT_FRAME_SIZE,
  DEFAULT_MAX_FRAMES,
  MAX_DECODED_FRAMES,
  uniformSampleIndices,
} from '../../../core/sampling';

// The sampling policy lives in core (shared with training); re-exported for the extractor's callers.
export { DEFAULT_FRAME_SIZE, DEFAULT_MAX_FRAMES, MAX_DECODED_FRAMES, uniformSampleIndices };
import { isDicomPart10 } from '../../../core/dicom/header';
import { readDicomFrames, type DicomClipInfo, type RawFrames } from './dicom';
import type { Preprocessing } from '../../../core/schemas';
import {
  cropFractions,
  findContentBox,
  findRegion,
  FrameStats,
  maskAndNormalise,
  outputMask,
  ROI_ANALYSIS_SIZE,
} from './roi';

export type { Preprocessing };

/** Wall-clock limit for one ffmpeg run; a decompression bomb or a pathological file is killed. */
export const DEFAULT_DECODE_TIMEOUT_MS = 120_000;
/**
 * Largest picture ffmpeg may allocate (its decoders' max_pixels): 4096×4096. A header that
 * claims more (a PNG "20000×20000") is refused by the decoder before it allocates the frame.
 */
export const MAX_DECODE_PIXELS = 4096 * 4096;
/**
 * A sampled picture whose grey levels all lie within this range holds no image (a blank or
 * a 1×1 clip scaled up): refused as BLANK instead of getting a confident label.
 */
export const BLANK_RANGE = 8;
/** xray-1: the picture's grey levels at these percentiles become 0 and 255 (normaliseXray). */
export const XRAY_PERCENTILES = [0.5, 99.5] as const;

export interface DecodeOptions {
  /** Side of the square output frame in pixels. @default 128 */
  readonly size?: number;
  /** Most frames returned; longer clips are sampled uniformly. @default 64 */
  readonly maxFrames?: number;
  /** ffmpeg binary. @default $FFMPEG_PATH, else the @ffmpeg-installer/ffmpeg binary */
  readonly ffmpegPath?: string;
  /** Kill ffmpeg after this long. @default 120000 */
  readonly timeoutMs?: number;
  /** Hard cap on decoded frames (TOO_LONG above it). @default 5000 */
  readonly maxDecodedFrames?: number;
  /** DICOM only: the secret salt of the study/series pseudonyms. @default none (no pseudonyms) */
  readonly pseudonymSalt?: string;
  /** How frames are made (the manifest's extractor input.preprocessing). @default 'letterbox' */
  readonly preprocessing?: Preprocessing;
}

export interface DecodedClip {
  /** [count, 1, size, size] row-major, gray, scaled to [0, 1] (byte / 255). */
  readonly frames: Float32Array;
  /** Frames in `frames` (= frameIndices.length). */
  readonly count: number;
  readonly size: number;
  /** Frames ffmpeg decoded from the clip, before sampling. */
  readonly decodedFrames: number;
  /** Indices into the decoded frames of the returned frames, ascending. */
  readonly frameIndices: number[];
  /** DICOM input only: its technical attributes and pseudonyms (never identifiers). */
  readonly dicom?: DicomClipInfo;
}

/** Like DecodedClip but with the raw 8-bit gray bytes ([count, size, size]), for PGM export and tests. */
export interface DecodedClipBytes extends Omit<DecodedClip, 'frames'> {
  readonly bytes: Uint8Array;
}

/** Decodes a clip (path or bytes) into at most `maxFrames` gray frames in [0, 1]. */
export async function decodeFrames(input: string | Buffer, opts: DecodeOptions = {}): Promise<DecodedClip> {
  const clip = await decodeFrameBytes(input, opts);
  return { ...withoutBytes(clip), frames: toFloat01(clip.bytes) };
}

/** decodeFrames, but returning the 8-bit gray bytes the floats are made from. */
export async function decodeFrameBytes(input: string | Buffer, opts: DecodeOptions = {}): Promise<DecodedClipBytes> {
  const size = opts.size ?? DEFAULT_FRAME_SIZE;
  const maxFrames = opts.maxFrames ?? DEFAULT_MAX_FRAMES;
  const maxDecoded = opts.maxDecodedFrames ?? MAX_DECODED_FRAMES;
  if (!Number.isInteger(size) || size < 8 || size > 4096)
    throw new RangeError(`frame size must be an integer in 8..4096, got ${size}`);
  if (!Number.isInteger(maxFrames) || maxFrames < 1)
    throw new RangeError(`maxFrames must be a positive integer, got ${maxFrames}`);

  const ffmpeg = opts.ffmpegPath ?? defaultFfmpegPath();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DECODE_TIMEOUT_MS;
  const preprocessing = opts.preprocessing ?? 'letterbox';

  const inputSize = typeof input === 'string' ? await fileSize(input) : input.length;
  if (inputSize === 0)
    throw new DecodeError('EMPTY_INPUT', `The file is empty (0 bytes). Accepted: ${ACCEPTED_FORMATS}.`);
  // DICOM is decoded by dicom.ts; its frames then take the same scaling and padding below.
  if (await startsAsDicom(input)) {
    return decodeDicomBytes(typeof input === 'string' ? await readFile(input) : input, {
      ...opts,
      size,
      maxFrames,
      maxDecodedFrames: maxDecoded,
      ffmpegPath: ffmpeg,
      timeoutMs,
      preprocessing,
    });
  }
  // The GPU job's own guard: the same sniffer and header reader as Validate, so bytes Validate
  // would refuse never reach ffmpeg, and ffmpeg reads them with the demuxer the table names.
  const row = await sniffRow(input, inputSize);
  // The DICOM reader's hook: rows with reader 'dicom' (core/formats.ts) are decoded by it, not ffmpeg.

  // ffmpeg always reads a file named "clip" in a private temp dir: the caller's file name
  // (which can identify a patient) never reaches ffmpeg or its messages, and a name with
  // "%d" or "proto:" in it cannot be taken for an image sequence or a protocol.
  const tempDir = await mkdtemp(path.join(tmpdir(), 'sonomark-decode-'));
  const file = path.join(tempDir, 'clip');
  try {
    if (typeof input === 'string') await symlink(path.resolve(input), file);
    // A file, not a stdin pipe: MP4/MOV with the index (moov) at the end need a seekable input.
    else await writeFile(file, input, { mode: 0o600 });
    if (preprocessing === 'roi-1' || preprocessing === 'trim-1') {
      const argsFor =
        (vf: string): typeof ffmpegArgs =>
        (f, sz, limit, timing) =>
          ffmpegArgs(f, sz, limit, timing, row.demuxer, vf);
      return await decodeRoi(ffmpeg, file, row, { size, maxFrames, maxDecoded, timeoutMs, preprocessing }, argsFor);
    }
    const stream = await runFfmpeg(ffmpeg, file, size, maxDecoded + 1, timeoutMs, row);
    const frames = parsePgmStream(stream);
    const decoded = frames.length;
    if (decoded === 0) {
      throw new DecodeError('NO_FRAMES', `The ${row.name} file contains no decodable video frames.`);
    }
    if (decoded > maxDecoded) {
      throw new DecodeError(
        'TOO_LONG',
        `The clip has more than ${maxDecoded} frames, over the limit; split it into shorter clips.`,
      );
    }
    if (preprocessing === 'xray-1' && decoded > 1) {
      throw new DecodeError(
        'NOT_A_STILL',
        `An X-ray is one picture, but the ${row.name} file has ${decoded} frames. Upload the radiograph as one image (PNG, JPEG or DICOM CR/DX), or analyse a clip as ultrasound.`,
      );
    }
    const frameIndices = uniformSampleIndices(decoded, maxFrames);
    if (isBlank(frameIndices.map((i) => frames[i] as PgmFrame))) {
      throw new DecodeError(
        'BLANK',
        'Every sampled frame is a single flat grey level: the file holds no ultrasound image (a blank or 1×1 picture).',
      );
    }
    const frameBytes = size * size;
    const bytes = new Uint8Array(frameIndices.length * frameBytes);
    const picture = (f: PgmFrame) => (preprocessing === 'xray-1' ? normaliseXray(f) : f);
    frameIndices.forEach((src, dst) => padInto(bytes, dst * frameBytes, size, picture(frames[src] as PgmFrame)));
    return { bytes, count: frameIndices.length, size, decodedFrames: decoded, frameIndices };
  } finally {
    await rm(tempDir, { recursive: true, force: true });
  }
}

/** byte / 255 as float32, the network's input scaling. */
export function toFloat01(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = (bytes[i] as number) / 255;
  return out;
}

/** Inverse of toFloat01 (exact for values that came from it); for writing frames back out as images. */
export function toUint8Frames(frames: Float32Array): Uint8Array {
  const out = new Uint8Array(frames.length);
  for (let i = 0; i < frames.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, frames[i] as number)) * 255);
  return out;
}

/** One frame as a binary PGM (P5) image: viewable anywhere, no image library needed. */
export function framePgm(bytes: Uint8Array, size: number, index: number): Buffer {
  const n = size * size;
  if ((index + 1) * n > bytes.length) throw new RangeError(`frame ${index} is out of range`);
  return Buffer.concat([
    Buffer.from(`P5\n${size} ${size}\n255\n`, 'ascii'),
    Buffer.from(bytes.subarray(index * n, (index + 1) * n)),
  ]);
}

/**
 * The ffmpeg arguments, exported so the flags are reviewable and testable.
 * - `-protocol_whitelist file`, `-format_whitelist`: untrusted bytes cannot make ffmpeg
 *   open URLs or other files (HLS/concat playlist tricks).
 * - `out_range=full,format=gray`: luma expanded to 0–255 explicitly (ffmpeg 4.x already
 *   treats gray as full range; later releases are told so rather than left to guess).
 * - `-threads 1`, `-filter_threads 1`, bitexact flags: same bytes on every machine and run.
 * - `flags=area+accurate_rnd+bitexact` in the scale filter and `-sws_flags` for the
 *   auto-inserted gray conversion: area averaging is the right filter for downscaling
 *   ultrasound speckle, and the bitexact path avoids CPU-specific SIMD rounding.
 * - passthrough frame timing: every decoded frame exactly once (the muxer's default is
 *   constant frame rate, which duplicates or drops frames of variable-rate clips such as GIFs).
 * - `-xerror`: a truncated or corrupt clip fails instead of yielding a silent partial decode.
 * - `-f DEMUXER`: the format table's demuxer for the sniffed row, not ffmpeg's own guess.
 * - `-max_pixels`: a picture larger than MAX_DECODE_PIXELS is refused before it is allocated.
 * - the scale fits the *display* shape (width × sample aspect ratio) inside size×size, so an
 *   anamorphic copy (non-square pixels) gives the picture the scanner meant. For square pixels
 *   the sizes are those of `force_original_aspect_ratio=decrease` (av_rescale rounds half up,
 *   as `trunc(x+0.5)` does), so clips with square pixels decode to the same bytes as before.
 */
export function ffmpegArgs(
  file: string,
  size: number,
  frameLimit: number,
  timing: 'vsync' | 'fps_mode',
  demuxer?: string,
  filter: string = fitFilter(size),
): string[] {
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-xerror',
    '-protocol_whitelist',
    'file',
    '-format_whitelist',
    FFMPEG_FORMAT_WHITELIST,
    '-threads',
    '1',
    '-max_pixels',
    String(MAX_DECODE_PIXELS),
    ...(demuxer ? ['-f', demuxer] : []),
    '-i',
    file,
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-dn',
    '-filter_threads',
    '1',
    '-vf',
    filter,
    '-sws_flags',
    'area+accurate_rnd+bitexact',
    ...(timing === 'fps_mode' ? ['-fps_mode', 'passthrough'] : ['-vsync', 'passthrough']),
    '-fflags',
    '+bitexact',
    '-flags',
    '+bitexact',
    '-frames:v',
    String(frameLimit),
    '-f',
    'image2pipe',
    '-c:v',
    'pgm',
    'pipe:1',
  ];
}

/**
 * The letterbox filter: fit the display shape (width × sample aspect ratio) inside size×size, area
 * averaging, full-range gray. `roi-1` runs it after its own select and crop.
 */
export function fitFilter(size: number): string {
  const s = String(size);
  const wide = 'gte(iw*sar,ih)';
  const w = `'if(${wide},${s},trunc(${s}*iw*sar/ih+0.5))'`;
  const h = `'if(${wide},trunc(${s}*ih/(iw*sar)+0.5),${s})'`;
  return `scale=w=${w}:h=${h}:flags=area+accurate_rnd+bitexact:out_range=full,format=gray`;
}

/** ffmpeg's select filter for these decoded-frame indices (ascending), each frame once. */
export function selectFilter(indices: readonly number[]): string {
  return `select='${indices.map((i) => `eq(n,${i})`).join('+')}'`;
}

/** ffmpeg's crop filter for a region given as fractions of the picture (exact: odd offsets allowed). */
export function cropFilter(c: { x: number; y: number; w: number; h: number }): string {
  const f = (v: number) => v.toFixed(6);
  return `crop=w='max(1,iw*${f(c.w)})':h='max(1,ih*${f(c.h)})':x='iw*${f(c.x)}':y='ih*${f(c.y)}':exact=1`;
}

export interface PgmFrame {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Splits ffmpeg's `-c:v pgm` output ("P5\n{w} {h}\n255\n" + w·h bytes, repeated) into frames. */
export function parsePgmStream(buf: Uint8Array): PgmFrame[] {
  const frames: PgmFrame[] = [];
  let pos = 0;
  const token = (): string => {
    while (pos < buf.length && isSpace(buf[pos] as number)) pos++;
    const start = pos;
    while (pos < buf.length && !isSpace(buf[pos] as number)) pos++;
    return Buffer.from(buf.subarray(start, pos)).toString('ascii');
  };
  while (pos < buf.length) {
    const magic = token();
    if (magic === '' && pos >= buf.length) break;
    const width = Number(token());
    const height = Number(token());
    const maxval = Number(token());
    pos++; // the single whitespace byte after maxval
    if (magic !== 'P5' || !(width > 0) || !(height > 0) || maxval !== 255 || pos + width * height > buf.length) {
      throw malformedPgm();
    }
    frames.push({ width, height, data: buf.subarray(pos, pos + width * height) });
    pos += width * height;
  }
  return frames;
}

/**
 * parsePgmStream for a stream: each frame is handed to `onFrame` as it completes. Its `data` is one buffer
 * reused for every frame of that size, valid only during the call (copy it to keep it). Each byte is
 * copied once, from the pipe's chunk into that buffer: the statistics pass of trim-1/roi-1 reads every
 * frame of a clip at 512 px (59 MB for a 10-s 640×480 clip), and concatenating chunks, then copying each
 * frame out, made about three times that in garbage, whose collection took CPU from the inference beside it.
 */
export class PgmStreamParser {
  /** Header bytes gathered so far, while a header is awaited (at most HEADER_MAX). */
  private head: Buffer = Buffer.alloc(0);
  /** The frame being filled, once its header is read. */
  private frame: { width: number; height: number; data: Uint8Array } | undefined;
  private filled = 0;
  private spare: Uint8Array | undefined;

  constructor(private readonly onFrame: (f: PgmFrame) => void) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const f = this.frame;
      if (!f) {
        // A header is "P5", width, height, 255, each followed by one whitespace byte: well under 64 bytes.
        const had = this.head.length;
        this.head = Buffer.concat([this.head, chunk.subarray(off, off + PGM_HEADER_MAX - had)]);
        const text = this.head.toString('latin1');
        const m = /^P5\s(\d+)\s(\d+)\s255\s/.exec(text);
        if (!m) {
          if (this.head.length >= PGM_HEADER_MAX || !'P5'.startsWith(text.slice(0, 2))) throw malformedPgm();
          return; // the rest of the header comes with the next chunk
        }
        const width = Number(m[1]);
        const height = Number(m[2]);
        if (!(width > 0) || !(height > 0)) throw malformedPgm();
        off += m[0].length - had;
        this.head = Buffer.alloc(0);
        const n = width * height;
        if (this.spare?.length !== n) this.spare = new Uint8Array(n);
        this.frame = { width, height, data: this.spare };
        this.filled = 0;
        continue;
      }
      const take = Math.min(f.data.length - this.filled, chunk.length - off);
      f.data.set(chunk.subarray(off, off + take), this.filled);
      this.filled += take;
      off += take;
      if (this.filled === f.data.length) this.complete();
    }
  }

  private complete(): void {
    const f = this.frame as PgmFrame;
    this.frame = undefined;
    this.onFrame(f);
  }

  /** After the stream: nothing may be left over. */
  end(): void {
    if (this.frame || this.head.length > 0) throw malformedPgm();
  }
}

const PGM_HEADER_MAX = 64;

function malformedPgm(): DecodeError {
  return new DecodeError('DECODE_FAILED', 'The clip could not be decoded: ffmpeg produced malformed frame data.');
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Copies a frame (at most size×size) into the centre of a black size×size canvas at `offset`; with
 * `top`, centred across but against the top edge (roi-1: the probe face is at the top of every scan,
 * and a region one pixel taller or shorter then moves only its bottom row, not the whole picture).
 */
function padInto(out: Uint8Array, offset: number, size: number, f: PgmFrame, top = false): void {
  if (f.width > size || f.height > size) {
    throw new DecodeError(
      'DECODE_FAILED',
      `The clip could not be decoded: ffmpeg produced a ${f.width}×${f.height} frame for ${size}×${size}.`,
    );
  }
  const x0 = Math.floor((size - f.width) / 2);
  const y0 = top ? 0 : Math.floor((size - f.height) / 2);
  for (let y = 0; y < f.height; y++) {
    out.set(f.data.subarray(y * f.width, (y + 1) * f.width), offset + (y0 + y) * size + x0);
  }
}

// ffmpeg ≥ 5.1 prefers -fps_mode and a future release may drop -vsync; the 2018 build
// bundled by @ffmpeg-installer only knows -vsync. Learned once per binary.
const timingOption = new Map<string, 'vsync' | 'fps_mode'>();

async function runFfmpeg(
  ffmpeg: string,
  file: string,
  size: number,
  frameLimit: number,
  timeoutMs: number,
  row: FormatRow,
  argsFor: typeof ffmpegArgs = ffmpegArgs,
  sink?: () => (chunk: Buffer) => void,
): Promise<Buffer> {
  const known = timingOption.get(ffmpeg);
  const args = (timing: 'vsync' | 'fps_mode') => argsFor(file, size, frameLimit, timing, row.demuxer);
  // A sink is made per run: a first run refused for its timing option must not leave half a stream in it.
  const first = await spawnFfmpeg(ffmpeg, args(known ?? 'fps_mode'), size, frameLimit, timeoutMs, sink?.());
  if (known === undefined && first.code !== 0 && /Unrecognized option 'fps_mode'/.test(first.stderr)) {
    timingOption.set(ffmpeg, 'vsync');
    return checked(await spawnFfmpeg(ffmpeg, args('vsync'), size, frameLimit, timeoutMs, sink?.()), row);
  }
  if (known === undefined && first.code === 0) timingOption.set(ffmpeg, 'fps_mode');
  return checked(first, row);
}

interface FfmpegResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly timedOut: boolean;
  /**
   * The signal that ended ffmpeg when this code did not send it (not the timeout, not the
   * output limit): killed from outside, e.g. by the kernel's OOM killer or an operator.
   */
  readonly killedBy?: NodeJS.Signals;
}

/** The error name a decoder killed from outside is classified under (TransientError.causeName). */
export const DECODER_KILLED = 'DecoderKilled';

/**
 * ffmpeg's failure in the project's words: what was wrong and what is accepted. ffmpeg's own
 * text ("To ignore this, add a trailing '?' to the map.") never reaches users.
 */
export function decodeFailure(stderr: string, row: Pick<FormatRow, 'name'>): DecodeError {
  if (/matches no streams|does not contain any stream|no video stream/i.test(stderr)) {
    return new DecodeError(
      'NO_VIDEO_STREAM',
      `The ${row.name} file holds no video stream (audio only?). Upload the ultrasound clip itself; accepted: ${ACCEPTED_FORMATS}.`,
    );
  }
  if (/Picture size \d+x\d+ is invalid|exceeds max_pixels|too large|Invalid image size/i.test(stderr)) {
    return new DecodeError(
      'TOO_LARGE_PICTURE',
      `The ${row.name} file's picture is larger than ${Math.sqrt(MAX_DECODE_PIXELS)}×${Math.sqrt(MAX_DECODE_PIXELS)} pixels (or its header says so). Export it at a lower resolution.`,
    );
  }
  return new DecodeError(
    'DECODE_FAILED',
    `The clip could not be decoded: the ${row.name} file is damaged, truncated or uses a codec sonomark cannot read. Export or upload it again; accepted: ${ACCEPTED_FORMATS}.`,
  );
}

function checked(r: FfmpegResult, row: FormatRow): Buffer {
  // Not the clip's fault: ffmpeg was killed mid-decode by something else. What it wrote so far
  // says nothing about the clip, so this is no DecodeError ("damaged") but transient: the
  // extraction runs again (Batch retries the container's EXIT_TRANSIENT, the local binding the
  // state's TransientError retrier) and, should it be killed every time, the scan is recorded
  // RETRIES_EXHAUSTED naming this reason.
  if (r.killedBy) {
    throw new TransientError(
      `The decoder (ffmpeg) was killed by ${r.killedBy} while decoding the clip, not by sonomark; the clip itself may be fine.`,
      DECODER_KILLED,
    );
  }
  if (r.timedOut) {
    throw new DecodeError(
      'DECODE_TIMEOUT',
      'Decoding the clip took too long and was stopped; split it into shorter clips.',
    );
  }
  if (r.code !== 0) throw decodeFailure(r.stderr, row);
  return r.stdout;
}

/** ffmpeg's last stderr line, with the input path, memory addresses and any other paths removed. */
export function lastLine(stderr: string, file: string): string | undefined {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  return (
    last
      .split(`${file}: `)
      .join('')
      .split(file)
      .join('the clip')
      .replace(/ @ 0x[0-9a-f]+/gi, '')
      // Anything path-like that starts a word ("30000/1001" is a frame rate, not a path).
      .replace(/(?<=^|[\s('"=])(?:[A-Za-z]:)?(?:[\\/][^\s:'"()[\]]+)+/g, '<path>')
      .slice(0, 300)
  );
}

/** Every ffmpeg this process is running, so an interrupted run can stop them (killDecoders). */
const runningDecoders = new Set<ChildProcess>();

/**
 * Kills every running ffmpeg child (SIGKILL): for a process that is shutting down (local
 * mode's Ctrl-C). Each killed decode then fails, and its caller's `finally` removes its
 * temp files. Returns how many it killed.
 */
export function killDecoders(): number {
  let n = 0;
  // A child that has exited but whose pipes are still draining is no longer running: not counted.
  for (const child of runningDecoders)
    if (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')) n++;
  return n;
}

/** How many ffmpeg children are running (tests of the shutdown path). */
export function runningDecoderCount(): number {
  return runningDecoders.size;
}

function spawnFfmpeg(
  ffmpeg: string,
  args: string[],
  size: number,
  frameLimit: number,
  timeoutMs: number,
  sink?: (chunk: Buffer) => void,
): Promise<FfmpegResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    runningDecoders.add(child);
    const maxBytes = (size * size + 32) * frameLimit; // pixels plus each frame's PGM header
    const chunks: Buffer[] = [];
    let length = 0;
    let stderr = '';
    let timedOut = false;
    /** This code killed it (timeout, output limit): its own reasons, not an outside kill. */
    let killedHere = false;
    let sinkError: Error | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      killedHere = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      // -frames:v already bounds the output; this guards against an ffmpeg that ignores it.
      if (length < maxBytes) {
        length += c.length;
        if (!sink) chunks.push(c);
        else if (!sinkError) {
          try {
            sink(c);
          } catch (err) {
            // Malformed output (or a picture-size change): stop ffmpeg and report it when the run ends.
            sinkError = err as Error;
            killedHere = true;
            child.kill('SIGKILL');
          }
        }
      } else {
        killedHere = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      if (stderr.length > 64 * 1024) stderr = stderr.slice(-16 * 1024);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      runningDecoders.delete(child);
      // The binary is missing or not executable: a deployment problem, not a bad clip.
      reject(
        new DecodeError(
          'FFMPEG_UNAVAILABLE',
          `ffmpeg could not be started (${err.code ?? err.message}); set FFMPEG_PATH.`,
        ),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      runningDecoders.delete(child);
      if (sinkError) {
        reject(sinkError);
        return;
      }
      resolve({
        code,
        signal,
        stdout: sink ? Buffer.alloc(0) : Buffer.concat(chunks, length),
        stderr,
        timedOut,
        ...(signal && !killedHere ? { killedBy: signal } : {}),
      });
    });
  });
}

let cachedDefault: string | undefined;

/** $FFMPEG_PATH (the container's distribution ffmpeg), else the static binary from @ffmpeg-installer. */
export function defaultFfmpegPath(): string {
  const fromEnv = process.env[ENV.ffmpegPath];
  if (fromEnv) return fromEnv;
  if (cachedDefault === undefined) {
    try {
      // Required lazily: the container sets FFMPEG_PATH and need not ship this package's binary.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cachedDefault = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
    } catch {
      throw new DecodeError(
        'FFMPEG_UNAVAILABLE',
        'No ffmpeg found: set FFMPEG_PATH or install @ffmpeg-installer/ffmpeg.',
      );
    }
  }
  return cachedDefault;
}

async function fileSize(file: string): Promise<number> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new DecodeError('NOT_A_FILE', 'The clip path does not name a regular file.');
    return st.size;
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(
      'NOT_FOUND',
      `The clip file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}).`,
    );
  }
}

/** The format table row for the bytes, or a DecodeError in the sniffer's words. */
async function sniffRow(input: string | Buffer, inputSize: number): Promise<FormatRow> {
  let head: Buffer;
  if (typeof input === 'string') {
    const fh = await open(input, 'r');
    try {
      head = Buffer.alloc(Math.min(SNIFF_BYTES, inputSize));
      await fh.read(head, 0, head.length, 0);
    } finally {
      await fh.close();
    }
  } else {
    head = input.subarray(0, SNIFF_BYTES);
  }
  const sniffed = sniffContainer(head);
  if (isUnsupported(sniffed)) throw new DecodeError('UNSUPPORTED_FORMAT', sniffed.unsupported);
  const row = formatRow(sniffed) as FormatRow;
  const info = readHeaderInfo(sniffed, head, inputSize);
  if (info.noImage)
    throw new DecodeError('NO_FRAMES', `The ${row.name} file ends after its header: it holds no image.`);
  if (info.hasVideo === false) {
    throw new DecodeError(
      'NO_VIDEO_STREAM',
      `The ${row.name} file holds no video track (audio only?). Upload the ultrasound clip itself.`,
    );
  }
  return row;
}

/**
 * xray-1's intensity normalisation of one fitted picture (before padding, so black bars never count):
 * grey levels at XRAY_PERCENTILES (nearest rank over the histogram) → 0 and 255, linear between,
 * clipped outside. A picture whose two percentiles coincide (flat) is returned unchanged; the decoder's
 * BLANK check refuses a flat one anyway.
 */
export function normaliseXray(f: PgmFrame): PgmFrame {
  const hist = new Uint32Array(256);
  for (const v of f.data) hist[v]!++;
  const n = f.data.length;
  const level = (pct: number): number => {
    const rank = Math.min(n, Math.max(1, Math.ceil((pct / 100) * n)));
    let seen = 0;
    for (let v = 0; v < 256; v++) {
      seen += hist[v]!;
      if (seen >= rank) return v;
    }
    return 255;
  };
  const lo = level(XRAY_PERCENTILES[0]);
  const hi = level(XRAY_PERCENTILES[1]);
  if (hi <= lo) return f;
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.round(Math.min(1, Math.max(0, (v - lo) / (hi - lo))) * 255);
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = lut[f.data[i]!]!;
  return { width: f.width, height: f.height, data };
}

/** True when every frame's grey levels lie within BLANK_RANGE of each other (no picture at all). */
function isBlank(frames: readonly PgmFrame[]): boolean {
  for (const f of frames) {
    let lo = 255;
    let hi = 0;
    for (const v of f.data) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (hi - lo > BLANK_RANGE) return false;
  }
  return true;
}

function withoutBytes(c: DecodedClipBytes): Omit<DecodedClip, 'frames'> {
  return {
    count: c.count,
    size: c.size,
    decodedFrames: c.decodedFrames,
    frameIndices: c.frameIndices,
    ...(c.dicom ? { dicom: c.dicom } : {}),
  };
}

// ---------------------------------------------------------------------------
// DICOM: frames decoded by dicom.ts, scaled and padded by the same ffmpeg filter
// ---------------------------------------------------------------------------

/** Whether the input is DICOM Part 10 (`DICM` at byte 128): the DICOM reader's, not ffmpeg's. */
export async function startsAsDicom(input: string | Buffer): Promise<boolean> {
  if (typeof input !== 'string') return isDicomPart10(input);
  const handle = await open(input, 'r');
  try {
    const head = Buffer.alloc(132);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return isDicomPart10(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

type ResolvedOptions = Required<Omit<DecodeOptions, 'pseudonymSalt' | 'preprocessing'>> &
  Pick<DecodeOptions, 'pseudonymSalt'> & { readonly preprocessing: Preprocessing };

async function decodeDicomBytes(bytes: Uint8Array, opts: ResolvedOptions): Promise<DecodedClipBytes> {
  const dicom = await readDicomFrames(bytes, {
    maxFrames: opts.maxFrames,
    maxDecodedFrames: opts.maxDecodedFrames,
    // The one sampling policy: the same frames an ffmpeg decode of the same clip would keep.
    sample: uniformSampleIndices,
    ...(opts.pseudonymSalt ? { pseudonymSalt: opts.pseudonymSalt } : {}),
  });
  // Checked on the frames the file holds, not the sampled ones (sampling would keep one of a clip's).
  if (opts.preprocessing === 'xray-1' && dicom.decodedFrames > 1) {
    throw new DecodeError(
      'NOT_A_STILL',
      `An X-ray is one picture, but the DICOM file has ${dicom.decodedFrames} frames. Upload the radiograph (CR/DX) as a single-frame DICOM, or analyse a clip as ultrasound.`,
    );
  }
  const bytesOut = await scaleRawFrames(dicom.raw, opts);
  return {
    bytes: bytesOut,
    count: dicom.frameIndices.length,
    size: opts.size,
    decodedFrames: dicom.decodedFrames,
    frameIndices: dicom.frameIndices,
    dicom: dicom.info,
  };
}

/**
 * ffmpegArgs with a rawvideo input of known pixel format and size instead of a container:
 * the filter, bit-exact flags and PGM output stay exactly the ones every clip gets.
 */
export function rawVideoArgs(raw: Pick<RawFrames, 'pixFmt' | 'width' | 'height'>, filter?: string): typeof ffmpegArgs {
  return (file, size, frameLimit, timing) => {
    const args = ffmpegArgs(file, size, frameLimit, timing, undefined, filter);
    const wl = args.indexOf('-format_whitelist');
    if (wl >= 0) args[wl + 1] = 'rawvideo';
    const input = args.indexOf('-i');
    args.splice(input, 0, '-f', 'rawvideo', '-pix_fmt', raw.pixFmt, '-video_size', `${raw.width}x${raw.height}`);
    return args;
  };
}

/** Raw 8-bit frames → [count, size, size] grey bytes, through the same ffmpeg scale and padding as clips. */
export async function scaleRawFrames(
  raw: RawFrames,
  opts: {
    readonly size: number;
    readonly ffmpegPath: string;
    readonly timeoutMs: number;
    readonly preprocessing?: Preprocessing;
  },
): Promise<Uint8Array> {
  const tempDir = await mkdtemp(path.join(tmpdir(), 'sonomark-decode-'));
  const file = path.join(tempDir, 'clip');
  try {
    await writeFile(file, Buffer.concat(raw.frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength))), {
      mode: 0o600,
    });
    const count = raw.frames.length;
    if (opts.preprocessing === 'roi-1' || opts.preprocessing === 'trim-1') {
      // The frames are already the sampled ones: every one is kept.
      const clip = await decodeRoi(
        opts.ffmpegPath,
        file,
        formatRow('dicom') as FormatRow,
        {
          size: opts.size,
          maxFrames: count,
          maxDecoded: count,
          timeoutMs: opts.timeoutMs,
          preprocessing: opts.preprocessing,
        },
        (vf) => rawVideoArgs(raw, vf),
      );
      return clip.bytes;
    }
    const stream = await runFfmpeg(
      opts.ffmpegPath,
      file,
      opts.size,
      count,
      opts.timeoutMs,
      formatRow('dicom') as FormatRow,
      rawVideoArgs(raw),
    );
    const frames = parsePgmStream(stream);
    if (frames.length !== count) {
      throw new DecodeError(
        'DECODE_FAILED',
        `The clip could not be decoded: ${frames.length} of ${count} frames scaled.`,
      );
    }
    const frameBytes = opts.size * opts.size;
    const bytes = new Uint8Array(count * frameBytes);
    const picture = (f: PgmFrame) => (opts.preprocessing === 'xray-1' ? normaliseXray(f) : f);
    frames.forEach((f, i) => padInto(bytes, i * frameBytes, opts.size, picture(f)));
    return bytes;
  } finally {
    await rm(tempDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// roi-1: region of the ultrasound image, cropped, masked and normalised (roi.ts)
// trim-1: the picture's content box, cropped, nothing masked or normalised
// ---------------------------------------------------------------------------

/**
 * The two ffmpeg passes of `roi-1` and `trim-1` on `file`. `argsFor(filter)` makes the ffmpeg arguments
 * for the input (a container, or DICOM raw video) with that filter chain. Both place the cropped picture
 * against the top edge (the probe face), so a box one pixel taller moves only the bottom row.
 */
async function decodeRoi(
  ffmpeg: string,
  file: string,
  row: FormatRow,
  o: {
    size: number;
    maxFrames: number;
    maxDecoded: number;
    timeoutMs: number;
    preprocessing: 'roi-1' | 'trim-1';
  },
  argsFor: (filter: string) => typeof ffmpegArgs,
): Promise<DecodedClipBytes> {
  // Pass 1: every frame through the statistics; none kept.
  let stats: FrameStats | undefined;
  let decoded = 0;
  let parser: PgmStreamParser | undefined;
  const analysis = ROI_ANALYSIS_SIZE;
  await runFfmpeg(ffmpeg, file, analysis, o.maxDecoded + 1, o.timeoutMs, row, argsFor(fitFilter(analysis)), () => {
    stats = undefined;
    decoded = 0;
    const p = new PgmStreamParser((f) => {
      decoded++;
      if (decoded > o.maxDecoded) return;
      stats ??= new FrameStats(f.width, f.height, o.preprocessing === 'trim-1' ? 'max' : 'all');
      if (f.width !== stats.width || f.height !== stats.height) {
        throw new DecodeError('DECODE_FAILED', 'The clip could not be decoded: its picture size changes mid-clip.');
      }
      stats.add(f.data);
    });
    parser = p;
    return (chunk) => p.push(chunk);
  });
  parser?.end();
  if (decoded === 0 || !stats) {
    throw new DecodeError('NO_FRAMES', `The ${row.name} file contains no decodable video frames.`);
  }
  if (decoded > o.maxDecoded) {
    throw new DecodeError(
      'TOO_LONG',
      `The clip has more than ${o.maxDecoded} frames, over the limit; split it into shorter clips.`,
    );
  }
  const region = o.preprocessing === 'trim-1' ? findContentBox(stats) : findRegion(stats);
  const frameIndices = uniformSampleIndices(decoded, o.maxFrames);
  // Pass 2: only the sampled frames, cropped to the region in source pixels, fitted into the square.
  const filter = [selectFilter(frameIndices), cropFilter(cropFractions(region)), fitFilter(o.size)].join(',');
  const stream = await runFfmpeg(ffmpeg, file, o.size, frameIndices.length, o.timeoutMs, row, argsFor(filter));
  const frames = parsePgmStream(stream);
  if (frames.length !== frameIndices.length) {
    throw new DecodeError(
      'DECODE_FAILED',
      `The clip could not be decoded: ${frames.length} of ${frameIndices.length} sampled frames came back.`,
    );
  }
  if (isBlank(frames)) {
    throw new DecodeError(
      'BLANK',
      'Every sampled frame is a single flat grey level: the file holds no ultrasound image (a blank or 1×1 picture).',
    );
  }
  const frameBytes = o.size * o.size;
  const bytes = new Uint8Array(frames.length * frameBytes);
  frames.forEach((f, i) => padInto(bytes, i * frameBytes, o.size, f, true));
  if (o.preprocessing === 'roi-1') {
    const first = frames[0]!;
    maskAndNormalise(bytes, o.size, outputMask(region, o.size, first.width, first.height));
  }
  return { bytes, count: frames.length, size: o.size, decodedFrames: decoded, frameIndices };
}
