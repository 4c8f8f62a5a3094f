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
 */
import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ENV } from '../../../core/contract';
import { DecodeError } from '../../../core/errors';
import { isDicomPart10 } from '../../../core/dicom/header';
import { readDicomFrames, type DicomClipInfo, type RawFrames } from './dicom';

export const DEFAULT_FRAME_SIZE = 128;
export const DEFAULT_MAX_FRAMES = 64;
/** Clips with more decoded frames than this are rejected (TOO_LONG) rather than silently truncated. */
export const MAX_DECODED_FRAMES = 5000;
/** Wall-clock limit for one ffmpeg run; a decompression bomb or a pathological file is killed. */
export const DEFAULT_DECODE_TIMEOUT_MS = 120_000;

/**
 * Demuxers ffmpeg may use. Everything the Validate step accepts (MediaContainer), nothing
 * more: no playlists (hls, concat) that could make ffmpeg open other files or URLs.
 */
const FORMAT_WHITELIST = 'mov,mp4,m4a,3gp,3g2,mj2,avi,gif,mpeg,mpegvideo,image2,jpeg_pipe,png_pipe';

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

  const inputSize = typeof input === 'string' ? await fileSize(input) : input.length;
  if (inputSize === 0) throw new DecodeError('EMPTY_INPUT', 'The clip is empty (0 bytes).');
  // DICOM is decoded by dicom.ts; its frames then take the same scaling and padding below.
  if (await startsAsDicom(input)) {
    return decodeDicomBytes(typeof input === 'string' ? await readFile(input) : input, {
      ...opts,
      size,
      maxFrames,
      maxDecodedFrames: maxDecoded,
      ffmpegPath: ffmpeg,
      timeoutMs,
    });
  }

  // ffmpeg always reads a file named "clip" in a private temp dir: the caller's file name
  // (which can identify a patient) never reaches ffmpeg or its messages, and a name with
  // "%d" or "proto:" in it cannot be taken for an image sequence or a protocol.
  const tempDir = await mkdtemp(path.join(tmpdir(), 'sonomark-decode-'));
  const file = path.join(tempDir, 'clip');
  try {
    if (typeof input === 'string') await symlink(path.resolve(input), file);
    // A file, not a stdin pipe: MP4/MOV with the index (moov) at the end need a seekable input.
    else await writeFile(file, input, { mode: 0o600 });
    const stream = await runFfmpeg(ffmpeg, file, size, maxDecoded + 1, timeoutMs);
    const frames = parsePgmStream(stream);
    const decoded = frames.length;
    if (decoded === 0) throw new DecodeError('NO_FRAMES', 'The clip contains no decodable video frames.');
    if (decoded > maxDecoded) {
      throw new DecodeError('TOO_LONG', `The clip has more than ${maxDecoded} frames; split it into shorter clips.`);
    }
    const frameIndices = uniformSampleIndices(decoded, maxFrames);
    const frameBytes = size * size;
    const bytes = new Uint8Array(frameIndices.length * frameBytes);
    frameIndices.forEach((src, dst) => padInto(bytes, dst * frameBytes, size, frames[src] as PgmFrame));
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
 */
export function ffmpegArgs(file: string, size: number, frameLimit: number, timing: 'vsync' | 'fps_mode'): string[] {
  const s = String(size);
  const filter = `scale=${s}:${s}:force_original_aspect_ratio=decrease:flags=area+accurate_rnd+bitexact:out_range=full,format=gray`;
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-xerror',
    '-protocol_whitelist',
    'file',
    '-format_whitelist',
    FORMAT_WHITELIST,
    '-threads',
    '1',
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

interface PgmFrame {
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
      throw new DecodeError('DECODE_FAILED', 'The clip could not be decoded: ffmpeg produced malformed frame data.');
    }
    frames.push({ width, height, data: buf.subarray(pos, pos + width * height) });
    pos += width * height;
  }
  return frames;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Copies a frame (at most size×size) into the centre of a black size×size canvas at `offset`. */
function padInto(out: Uint8Array, offset: number, size: number, f: PgmFrame): void {
  if (f.width > size || f.height > size) {
    throw new DecodeError(
      'DECODE_FAILED',
      `The clip could not be decoded: ffmpeg produced a ${f.width}×${f.height} frame for ${size}×${size}.`,
    );
  }
  const x0 = Math.floor((size - f.width) / 2);
  const y0 = Math.floor((size - f.height) / 2);
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
  argsFor: typeof ffmpegArgs = ffmpegArgs,
): Promise<Buffer> {
  const known = timingOption.get(ffmpeg);
  const first = await spawnFfmpeg(
    ffmpeg,
    argsFor(file, size, frameLimit, known ?? 'fps_mode'),
    size,
    frameLimit,
    timeoutMs,
  );
  if (known === undefined && first.code !== 0 && /Unrecognized option 'fps_mode'/.test(first.stderr)) {
    timingOption.set(ffmpeg, 'vsync');
    return checked(
      await spawnFfmpeg(ffmpeg, argsFor(file, size, frameLimit, 'vsync'), size, frameLimit, timeoutMs),
      file,
    );
  }
  if (known === undefined && first.code === 0) timingOption.set(ffmpeg, 'fps_mode');
  return checked(first, file);
}

interface FfmpegResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly timedOut: boolean;
}

function checked(r: FfmpegResult, file: string): Buffer {
  if (r.timedOut) throw new DecodeError('DECODE_TIMEOUT', 'Decoding the clip took too long and was stopped.');
  if (r.code !== 0) {
    const why =
      lastLine(r.stderr, file) ?? (r.signal ? `ffmpeg was killed by ${r.signal}` : `ffmpeg exited with code ${r.code}`);
    throw new DecodeError('DECODE_FAILED', `The clip could not be decoded: ${why}`);
  }
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

function spawnFfmpeg(
  ffmpeg: string,
  args: string[],
  size: number,
  frameLimit: number,
  timeoutMs: number,
): Promise<FfmpegResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    const maxBytes = (size * size + 32) * frameLimit; // pixels plus each frame's PGM header
    const chunks: Buffer[] = [];
    let length = 0;
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      // -frames:v already bounds the output; this guards against an ffmpeg that ignores it.
      if (length < maxBytes) {
        chunks.push(c);
        length += c.length;
      } else {
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      if (stderr.length > 64 * 1024) stderr = stderr.slice(-16 * 1024);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
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
      resolve({ code, signal, stdout: Buffer.concat(chunks, length), stderr, timedOut });
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

async function startsAsDicom(input: string | Buffer): Promise<boolean> {
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

type ResolvedOptions = Required<Omit<DecodeOptions, 'pseudonymSalt'>> & Pick<DecodeOptions, 'pseudonymSalt'>;

async function decodeDicomBytes(bytes: Uint8Array, opts: ResolvedOptions): Promise<DecodedClipBytes> {
  const dicom = await readDicomFrames(bytes, {
    maxFrames: opts.maxFrames,
    maxDecodedFrames: opts.maxDecodedFrames,
    // The one sampling policy: the same frames an ffmpeg decode of the same clip would keep.
    sample: uniformSampleIndices,
    ...(opts.pseudonymSalt ? { pseudonymSalt: opts.pseudonymSalt } : {}),
  });
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
export function rawVideoArgs(raw: Pick<RawFrames, 'pixFmt' | 'width' | 'height'>): typeof ffmpegArgs {
  return (file, size, frameLimit, timing) => {
    const args = ffmpegArgs(file, size, frameLimit, timing);
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
  opts: { readonly size: number; readonly ffmpegPath: string; readonly timeoutMs: number },
): Promise<Uint8Array> {
  const tempDir = await mkdtemp(path.join(tmpdir(), 'sonomark-decode-'));
  const file = path.join(tempDir, 'clip');
  try {
    await writeFile(file, Buffer.concat(raw.frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength))), {
      mode: 0o600,
    });
    const count = raw.frames.length;
    const stream = await runFfmpeg(opts.ffmpegPath, file, opts.size, count, opts.timeoutMs, rawVideoArgs(raw));
    const frames = parsePgmStream(stream);
    if (frames.length !== count) {
      throw new DecodeError(
        'DECODE_FAILED',
        `The clip could not be decoded: ${frames.length} of ${count} frames scaled.`,
      );
    }
    const frameBytes = opts.size * opts.size;
    const bytes = new Uint8Array(count * frameBytes);
    frames.forEach((f, i) => padInto(bytes, i * frameBytes, opts.size, f));
    return bytes;
  } finally {
    await rm(tempDir, { recursive: true, force: true });
  }
}
