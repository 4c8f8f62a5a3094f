/**
 * What a container header says about the picture, read from the first bytes of a
 * file with no decoder: the limits Validate checks before any GPU job. Only
 * numbers are read; nothing is allocated from them, so a header that lies
 * (a PNG claiming 20000×20000) costs nothing. A field is absent when the bytes
 * at hand do not state it.
 *
 * readHeaderInfo reads the head only (the GPU job's guard). readHeaderInfoRanged, which
 * Validate uses, also reaches what lies past the head with a few small ranged reads: an
 * MP4/MOV index (moov) at the end of the file, found by walking the top-level boxes,
 * and Matroska/WebM Info and Tracks that the SeekHead places later.
 */
import type { RangeReader } from './byte-range';
import { checkDicomHead } from './dicom/header';
import { ascii } from './formats';
import { readMatroskaHead, readMatroskaRanged } from './matroska-header';
import type { InputLimits } from './limits';
import type { MediaContainer } from './schemas';

export interface HeaderInfo {
  readonly width?: number;
  readonly height?: number;
  readonly durationSeconds?: number;
  readonly frames?: number;
  /** false when the whole index was read and it has no video track (an audio-only MP4). */
  readonly hasVideo?: boolean;
  /** true when the file ends before its first image (a header-only GIF). */
  readonly noImage?: boolean;
  /** Why Validate could not read the limits it checks (the extractor checks them then); never names the file. */
  readonly unchecked?: string;
}

export function readHeaderInfo(container: MediaContainer, head: Uint8Array, fileSize: number): HeaderInfo {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  try {
    switch (container) {
      case 'png':
        // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
        return ascii(b, 12, 4) === 'IHDR' && b.length >= 24
          ? { width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
          : {};
      case 'gif':
        return gifInfo(b, fileSize);
      case 'bmp':
        return bmpInfo(b);
      case 'jpeg':
        return jpegInfo(b);
      case 'avi':
        return aviInfo(b);
      case 'mp4':
      case 'mov':
        return isoInfo(b, fileSize);
      case 'webm':
      case 'mkv':
        return readMatroskaHead(b, fileSize);
      case 'mpeg':
      case 'm2v':
      case 'mpegts':
        return mpegSequenceInfo(b);
      case 'dicom':
        return dicomInfo(b, fileSize);
      default:
        return {};
    }
  } catch {
    // A header too short or malformed to read states nothing; the decoder decides then.
    return {};
  }
}

/** Largest MP4/MOV index (moov) Validate reads past the head; a bigger one is left to the extractor. */
export const MAX_INDEX_BYTES = 8 * 1024 * 1024;
/** Most top-level boxes walked with ranged reads before the index is given up (each is one request). */
export const MAX_TOP_LEVEL_BOXES = 64;
/** A top-level box header: size (4), type (4), 64-bit size (8). */
const BOX_HEADER_BYTES = 16;

/**
 * readHeaderInfo, plus what lies past the head: for MP4/MOV, the top-level boxes are
 * walked with one 16-byte ranged read each (at most MAX_TOP_LEVEL_BOXES) until moov,
 * which is then read whole when it is at most MAX_INDEX_BYTES; for WebM/MKV, the Info
 * and Tracks elements the SeekHead points to. Sizes read from the file only bound reads;
 * every read is bounded by a constant here. Reader errors propagate (Validate lets
 * Step Functions retry them); malformed bytes only leave fields absent.
 */
export async function readHeaderInfoRanged(
  container: MediaContainer,
  head: Uint8Array,
  fileSize: number,
  reader: RangeReader,
): Promise<HeaderInfo> {
  const fromHead = readHeaderInfo(container, head, fileSize);
  if (head.length >= fileSize) return fromHead;
  if (container === 'webm' || container === 'mkv') {
    if (fromHead.durationSeconds !== undefined && fromHead.width !== undefined) return fromHead;
    return readMatroskaRanged(head, fileSize, reader);
  }
  if (container !== 'mp4' && container !== 'mov') return fromHead;
  const moov = await findTopLevelBox(head, fileSize, reader, 'moov');
  if (moov.kind === 'in-head' || moov.kind === 'absent') return fromHead;
  if (moov.kind === 'gave-up') {
    return {
      ...fromHead,
      unchecked: `the index (moov) is not within the first ${MAX_TOP_LEVEL_BOXES} top-level boxes; the extractor checks the limits`,
    };
  }
  if (moov.size > MAX_INDEX_BYTES) {
    return {
      ...fromHead,
      unchecked: `the index (moov) is ${(moov.size / 1024 ** 2).toFixed(1)} MiB, over the ${MAX_INDEX_BYTES / 1024 ** 2} MiB Validate reads; the extractor checks the limits`,
    };
  }
  const bytes = (await reader.read(moov.offset, moov.size)).subarray(0, moov.size);
  // The index alone, as if it opened a file of its own size: complete when every byte arrived.
  return { ...fromHead, ...readHeaderInfo(container, bytes, moov.size) };
}

type FoundBox =
  { kind: 'in-head' } | { kind: 'absent' } | { kind: 'gave-up' } | { kind: 'found'; offset: number; size: number };

/** Walks the top-level boxes from the start of the file to the one of `type`, reading 16 bytes per box past the head. */
async function findTopLevelBox(
  head: Uint8Array,
  fileSize: number,
  reader: RangeReader,
  type: string,
): Promise<FoundBox> {
  let pos = 0;
  for (let n = 0; n < MAX_TOP_LEVEL_BOXES; n++) {
    if (pos + 8 > fileSize) return { kind: 'absent' };
    const h =
      pos + BOX_HEADER_BYTES <= head.length
        ? head.subarray(pos, pos + BOX_HEADER_BYTES)
        : (await reader.read(pos, BOX_HEADER_BYTES)).subarray(0, BOX_HEADER_BYTES);
    if (h.length < 8) return { kind: 'absent' };
    const v = Buffer.from(h.buffer, h.byteOffset, h.byteLength);
    let size = v.readUInt32BE(0);
    const boxType = ascii(v, 4, 4);
    if (size === 1) {
      if (v.length < 16) return { kind: 'absent' };
      size = Number(v.readBigUInt64BE(8));
      if (size < 16) return { kind: 'absent' };
    } else if (size === 0) {
      size = fileSize - pos; // to the end of the file
    } else if (size < 8) {
      return { kind: 'absent' };
    }
    if (boxType === type) {
      if (pos + size <= head.length) return { kind: 'in-head' };
      // A truncated file: the index ends past the last byte, so it cannot be read whole.
      if (pos + size > fileSize) return { kind: 'absent' };
      return { kind: 'found', offset: pos, size };
    }
    pos += size;
  }
  return { kind: 'gave-up' };
}

/** The first limit the header breaks, as a refusal in the project's words; undefined when none. */
export function checkHeaderLimits(
  info: HeaderInfo,
  limits: InputLimits,
): { code: string; message: string } | undefined {
  if (info.noImage) {
    return { code: 'NO_FRAMES', message: 'The file ends after its header: it holds no image.' };
  }
  if (info.hasVideo === false) {
    return {
      code: 'NO_VIDEO_STREAM',
      message: 'The file holds no video track (audio only?). Upload the ultrasound clip itself.',
    };
  }
  const { width, height } = info;
  if (width !== undefined && height !== undefined) {
    if (width > limits.maxWidth || height > limits.maxHeight) {
      return {
        code: 'TOO_LARGE_PICTURE',
        message: `The picture is ${width}×${height} pixels, over the ${limits.maxWidth}×${limits.maxHeight} limit. Export it at a lower resolution.`,
      };
    }
    if (width < limits.minWidth || height < limits.minHeight) {
      return {
        code: 'TOO_SMALL',
        message: `The picture is ${width}×${height} pixels, too small to hold an ultrasound image (at least ${limits.minWidth}×${limits.minHeight}).`,
      };
    }
  }
  if (info.durationSeconds !== undefined && info.durationSeconds > limits.maxDurationSeconds) {
    return {
      code: 'TOO_LONG',
      message: `The clip lasts ${Math.round(info.durationSeconds)} s, over the ${limits.maxDurationSeconds} s limit. Split it into shorter clips.`,
    };
  }
  if (info.frames !== undefined && info.frames > limits.maxFrames) {
    return {
      code: 'TOO_LONG',
      message: `The clip has ${info.frames} frames, over the ${limits.maxFrames}-frame limit. Split it into shorter clips.`,
    };
  }
  return undefined;
}

function gifInfo(b: Buffer, fileSize: number): HeaderInfo {
  const width = b.readUInt16LE(6);
  const height = b.readUInt16LE(8);
  const packed = b[10] as number;
  // Header (6) + logical screen (7) + global colour table; the first block must follow.
  const firstBlock = 13 + ((packed & 0x80) !== 0 ? 3 * 2 ** ((packed & 0x07) + 1) : 0);
  return { width, height, ...(fileSize <= firstBlock + 1 ? { noImage: true } : {}) };
}

function bmpInfo(b: Buffer): HeaderInfo {
  const dib = b.readUInt32LE(14);
  if (dib === 12) return { width: b.readUInt16LE(18), height: b.readUInt16LE(20) };
  // Height is negative for a top-down bitmap.
  return { width: Math.abs(b.readInt32LE(18)), height: Math.abs(b.readInt32LE(22)) };
}

function jpegInfo(b: Buffer): HeaderInfo {
  let pos = 2;
  while (pos + 9 < b.length) {
    if (b[pos] !== 0xff) return {};
    const marker = b[pos + 1] as number;
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC): precision (1), height (2), width (2).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: b.readUInt16BE(pos + 5), width: b.readUInt16BE(pos + 7) };
    }
    if (marker === 0xd9 || marker === 0xda) return {};
    pos += 2 + b.readUInt16BE(pos + 2);
  }
  return {};
}

function aviInfo(b: Buffer): HeaderInfo {
  // RIFF AVI, LIST hdrl, avih (MainAVIHeader) at 32.
  if (ascii(b, 12, 4) !== 'LIST' || ascii(b, 20, 4) !== 'hdrl' || ascii(b, 24, 4) !== 'avih') return {};
  const usPerFrame = b.readUInt32LE(32);
  const frames = b.readUInt32LE(48);
  const width = b.readUInt32LE(64);
  const height = b.readUInt32LE(68);
  return {
    ...(width > 0 && height > 0 ? { width, height } : {}),
    ...(frames > 0 ? { frames } : {}),
    ...(frames > 0 && usPerFrame > 0 ? { durationSeconds: (frames * usPerFrame) / 1e6 } : {}),
  };
}

interface Box {
  readonly type: string;
  /** Payload start and end (end may lie past the bytes at hand). */
  readonly start: number;
  readonly end: number;
}

function* boxes(b: Buffer, start: number, end: number): Generator<Box> {
  let pos = start;
  while (pos + 8 <= Math.min(end, b.length)) {
    let size = b.readUInt32BE(pos);
    const type = ascii(b, pos + 4, 4);
    let header = 8;
    if (size === 1) {
      if (pos + 16 > b.length) return;
      size = Number(b.readBigUInt64BE(pos + 8));
      header = 16;
    } else if (size === 0) {
      size = end - pos; // to the end of the enclosing box (or file)
    }
    if (size < header) return;
    yield { type, start: pos + header, end: pos + size };
    pos += size;
  }
}

/** MP4/MOV: mvhd duration; every trak's handler and tkhd size; only when moov is within the bytes at hand. */
function isoInfo(b: Buffer, fileSize: number): HeaderInfo {
  const moov = [...boxes(b, 0, fileSize)].find((x) => x.type === 'moov');
  if (!moov) return {};
  const complete = moov.end <= b.length;
  let durationSeconds: number | undefined;
  let width = 0;
  let height = 0;
  let video = false;
  let frames = 0;
  for (const box of boxes(b, moov.start, moov.end)) {
    if (box.type === 'mvhd' && box.start + 32 <= b.length) {
      const v1 = b[box.start] === 1;
      const timescale = b.readUInt32BE(box.start + (v1 ? 20 : 12));
      const duration = v1 ? Number(b.readBigUInt64BE(box.start + 24)) : b.readUInt32BE(box.start + 16);
      if (timescale > 0 && duration > 0 && duration !== 0xffffffff) durationSeconds = duration / timescale;
    }
    if (box.type === 'trak') {
      let handler: string | undefined;
      let w = 0;
      let h = 0;
      let samples = 0;
      for (const t of boxes(b, box.start, box.end)) {
        if (t.type === 'tkhd' && t.start + 96 <= b.length) {
          const off = b[t.start] === 1 ? 88 : 76;
          w = Math.round(b.readUInt32BE(t.start + off) / 65536);
          h = Math.round(b.readUInt32BE(t.start + off + 4) / 65536);
        }
        if (t.type === 'mdia') {
          for (const m of boxes(b, t.start, t.end)) {
            if (m.type === 'hdlr') handler = ascii(b, m.start + 8, 4);
            if (m.type === 'minf') samples = sampleCount(b, m) ?? samples;
          }
        }
      }
      if (handler === 'vide' || (handler === undefined && w > 0 && h > 0)) {
        video = true;
        if (w * h > width * height) [width, height] = [w, h];
        // Every sample of the video track is a frame the decoder counts (no frame-rate cap).
        frames = Math.max(frames, samples);
      }
    }
  }
  return {
    ...(durationSeconds !== undefined ? { durationSeconds } : {}),
    ...(width > 0 && height > 0 ? { width, height } : {}),
    ...(frames > 0 ? { frames } : {}),
    ...(complete && !video ? { hasVideo: false } : {}),
  };
}

/** minf → stbl → stsz/stz2: the track's sample count (version/flags 4, sample size or field size 4, count 4). */
function sampleCount(b: Buffer, minf: Box): number | undefined {
  for (const s of boxes(b, minf.start, minf.end)) {
    if (s.type !== 'stbl') continue;
    for (const z of boxes(b, s.start, s.end)) {
      if ((z.type === 'stsz' || z.type === 'stz2') && z.start + 12 <= b.length) return b.readUInt32BE(z.start + 8);
    }
  }
  return undefined;
}

/** MPEG-1/2 sequence header (00 00 01 B3): 12-bit width and height. */
function mpegSequenceInfo(b: Buffer): HeaderInfo {
  const at = b.indexOf(Buffer.from([0x00, 0x00, 0x01, 0xb3]));
  if (at < 0 || at + 7 > b.length) return {};
  const width = ((b[at + 4] as number) << 4) | ((b[at + 5] as number) >> 4);
  const height = (((b[at + 5] as number) & 0x0f) << 8) | (b[at + 6] as number);
  return width > 0 && height > 0 ? { width, height } : {};
}

/** The DICOM header's picture: rows, columns, frames and, with a frame rate, the duration. */
function dicomInfo(b: Buffer, fileSize: number): HeaderInfo {
  const check = checkDicomHead(b, b.length >= fileSize);
  if (check.kind !== 'ok') return {};
  const h = check.header;
  return {
    width: h.columns,
    height: h.rows,
    frames: h.numberOfFrames,
    ...(h.frameRate ? { durationSeconds: h.numberOfFrames / h.frameRate.hz } : {}),
  };
}
