/**
 * What a WebM/Matroska header says about the picture, for the limits Validate checks
 * before any GPU job: Segment Info (TimecodeScale, Duration) and Tracks (the video
 * track's PixelWidth/PixelHeight and DefaultDuration, hence the frame rate).
 *
 * EBML elements are read as numbers only: a size an element claims bounds a loop, it is
 * never allocated. Each step of every loop moves forward by at least one element
 * header, so any bytes end the walk; an unknown size (all ones, written by live
 * recorders) means "to the end of the parent" for the Segment and stops the walk at a
 * Cluster. Clusters are never entered: the frame count comes from Duration ÷
 * DefaultDuration, so block lacing does not matter here.
 *
 * Info and Tracks normally follow the EBML header within the first kilobytes. A muxer
 * may write them later (after the clusters); the SeekHead then says where, and
 * readMatroskaRanged fetches just those elements with ranged reads.
 */
import type { RangeReader } from './byte-range';

export const EBML_ID = {
  header: 0x1a45dfa3,
  segment: 0x18538067,
  seekHead: 0x114d9b74,
  seek: 0x4dbb,
  seekId: 0x53ab,
  seekPosition: 0x53ac,
  info: 0x1549a966,
  timecodeScale: 0x2ad7b1,
  duration: 0x4489,
  tracks: 0x1654ae6b,
  trackEntry: 0xae,
  trackType: 0x83,
  defaultDuration: 0x23e383,
  video: 0xe0,
  pixelWidth: 0xb0,
  pixelHeight: 0xba,
  cluster: 0x1f43b675,
} as const;

/** Largest Info or Tracks element fetched past the head (real ones are a few hundred bytes). */
export const MAX_MATROSKA_ELEMENT_BYTES = 1024 * 1024;
/** An element header: ID (≤ 4 bytes) and size (≤ 8 bytes). */
const ELEMENT_HEADER_BYTES = 12;
const TRACK_TYPE_VIDEO = 1;

export interface MatroskaInfo {
  readonly width?: number;
  readonly height?: number;
  readonly durationSeconds?: number;
  readonly frames?: number;
  /** false when the whole Tracks element was read and it has no video track. */
  readonly hasVideo?: boolean;
}

interface Element {
  readonly id: number;
  /** Absolute offset of the element's ID. */
  readonly pos: number;
  /** Absolute offsets of the payload; end undefined for an unknown size. */
  readonly start: number;
  readonly end: number | undefined;
}

interface Track {
  type?: number;
  video: boolean;
  width?: number;
  height?: number;
  defaultDurationNs?: number;
}

/** What the walk found so far; Info and Tracks may come from the head or from ranged reads. */
interface Scan {
  timecodeScale?: number;
  duration?: number;
  tracks?: Track[];
  infoComplete: boolean;
  tracksComplete: boolean;
  /**
   * Where Info and Tracks start (absolute offsets): seen in the head but cut off by its end,
   * or given by the SeekHead.
   */
  infoAt?: number;
  tracksAt?: number;
}

/** A window of the file: bytes[i] is the byte at absolute offset base + i. */
interface Window {
  readonly bytes: Uint8Array;
  readonly base: number;
}

const at = (w: Window, pos: number): number | undefined => w.bytes[pos - w.base];
const windowEnd = (w: Window): number => w.base + w.bytes.length;

/** An EBML variable-length integer at pos: its length and value (marker bit kept for IDs). */
function vint(
  w: Window,
  pos: number,
  keepMarker: boolean,
): { length: number; value: number; allOnes: boolean } | undefined {
  const first = at(w, pos);
  if (first === undefined || first === 0) return undefined;
  let length = 1;
  while ((first & (0x80 >> (length - 1))) === 0) length++;
  if (length > 8 || pos + length > windowEnd(w)) return undefined;
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let i = 1; i < length; i++) {
    const byte = at(w, pos + i) as number;
    value = value * 256 + byte;
    allOnes &&= byte === 0xff;
  }
  return { length, value, allOnes };
}

function elementAt(w: Window, pos: number): Element | undefined {
  const id = vint(w, pos, true);
  if (!id || id.length > 4) return undefined;
  const size = vint(w, pos + id.length, false);
  if (!size) return undefined;
  const start = pos + id.length + size.length;
  return { id: id.value, pos, start, end: size.allOnes ? undefined : start + size.value };
}

/** The children of [start, end) that lie (at least their headers) within the window; stops at an unreadable header. */
function* children(w: Window, start: number, end: number): Generator<Element> {
  let pos = start;
  const stop = Math.min(end, windowEnd(w));
  while (pos < stop) {
    const el = elementAt(w, pos);
    if (!el) return;
    yield el;
    // An unknown-size child extends to its parent's end: nothing readable follows it.
    if (el.end === undefined) return;
    pos = el.end;
  }
}

function uint(w: Window, el: Element): number | undefined {
  if (el.end === undefined || el.end - el.start > 8 || el.end > windowEnd(w)) return undefined;
  let v = 0;
  for (let p = el.start; p < el.end; p++) v = v * 256 + (at(w, p) as number);
  return v;
}

function float(w: Window, el: Element): number | undefined {
  if (el.end === undefined || el.end > windowEnd(w)) return undefined;
  const b = Buffer.from(w.bytes.buffer, w.bytes.byteOffset + (el.start - w.base), el.end - el.start);
  if (b.length === 4) return b.readFloatBE(0);
  if (b.length === 8) return b.readDoubleBE(0);
  return undefined;
}

function readInfo(w: Window, el: Element, scan: Scan): void {
  scan.infoAt = el.pos;
  scan.infoComplete = el.end !== undefined && el.end <= windowEnd(w);
  for (const c of children(w, el.start, el.end ?? windowEnd(w))) {
    if (c.id === EBML_ID.timecodeScale) scan.timecodeScale = uint(w, c);
    if (c.id === EBML_ID.duration) scan.duration = float(w, c);
  }
}

function readTracks(w: Window, el: Element, scan: Scan): void {
  const tracks: Track[] = [];
  for (const entry of children(w, el.start, el.end ?? windowEnd(w))) {
    if (entry.id !== EBML_ID.trackEntry) continue;
    const track: Track = { video: false };
    for (const c of children(w, entry.start, entry.end ?? windowEnd(w))) {
      if (c.id === EBML_ID.trackType) track.type = uint(w, c);
      if (c.id === EBML_ID.defaultDuration) track.defaultDurationNs = uint(w, c);
      if (c.id === EBML_ID.video) {
        track.video = true;
        for (const v of children(w, c.start, c.end ?? windowEnd(w))) {
          if (v.id === EBML_ID.pixelWidth) track.width = uint(w, v);
          if (v.id === EBML_ID.pixelHeight) track.height = uint(w, v);
        }
      }
    }
    tracks.push(track);
  }
  scan.tracks = tracks;
  scan.tracksAt = el.pos;
  scan.tracksComplete = el.end !== undefined && el.end <= windowEnd(w);
}

function readSeekHead(w: Window, el: Element, segmentStart: number, scan: Scan): void {
  for (const seek of children(w, el.start, el.end ?? windowEnd(w))) {
    if (seek.id !== EBML_ID.seek) continue;
    let target: number | undefined;
    let position: number | undefined;
    for (const c of children(w, seek.start, seek.end ?? windowEnd(w))) {
      if (c.id === EBML_ID.seekId) target = uint(w, c);
      if (c.id === EBML_ID.seekPosition) position = uint(w, c);
    }
    if (position === undefined) continue;
    // SeekPosition counts from the first byte of the Segment's payload.
    if (target === EBML_ID.info) scan.infoAt ??= segmentStart + position;
    if (target === EBML_ID.tracks) scan.tracksAt ??= segmentStart + position;
  }
}

/** Walks the head: EBML header, then the Segment's children up to the first Cluster. */
function scanHead(head: Uint8Array, fileSize: number): Scan {
  const w: Window = { bytes: head, base: 0 };
  const scan: Scan = { infoComplete: false, tracksComplete: false };
  const top = elementAt(w, 0);
  if (!top || top.id !== EBML_ID.header || top.end === undefined) return scan;
  // Anything between the EBML header and the Segment (Void, CRC) is skipped by its size.
  for (const el of children(w, top.end, fileSize)) {
    if (el.id !== EBML_ID.segment) continue;
    const segmentEnd = Math.min(el.end ?? fileSize, fileSize);
    for (const c of children(w, el.start, segmentEnd)) {
      if (c.id === EBML_ID.cluster) break;
      if (c.id === EBML_ID.seekHead) readSeekHead(w, c, el.start, scan);
      if (c.id === EBML_ID.info) readInfo(w, c, scan);
      if (c.id === EBML_ID.tracks) readTracks(w, c, scan);
    }
    break;
  }
  return scan;
}

function summarize(scan: Scan): MatroskaInfo {
  const video = (scan.tracks ?? []).filter((t) => t.type === TRACK_TYPE_VIDEO || (t.type === undefined && t.video));
  // The largest picture decides the size limits, as for MP4 tracks.
  let best: Track | undefined;
  for (const t of video) {
    if (t.width && t.height && (!best || t.width * t.height > (best.width ?? 0) * (best.height ?? 0))) best = t;
  }
  const scale = scan.timecodeScale ?? 1_000_000; // the spec's default: milliseconds
  const durationNs =
    scan.duration !== undefined && Number.isFinite(scan.duration) && scan.duration > 0 && scale > 0
      ? scan.duration * scale
      : undefined;
  const dd = (best ?? video[0])?.defaultDurationNs;
  // Floor, not round: a header estimate must never refuse a clip the decoder would count under the limit.
  const frames = durationNs !== undefined && dd !== undefined && dd > 0 ? Math.floor(durationNs / dd) : undefined;
  return {
    ...(best?.width && best.height ? { width: best.width, height: best.height } : {}),
    ...(durationNs !== undefined && Number.isFinite(durationNs) ? { durationSeconds: durationNs / 1e9 } : {}),
    ...(frames !== undefined && Number.isFinite(frames) && frames > 0 ? { frames } : {}),
    ...(scan.tracks !== undefined && scan.tracksComplete && video.length === 0 ? { hasVideo: false } : {}),
  };
}

/** From the head alone (the GPU job's guard, and Validate when Info and Tracks are at the start). */
export function readMatroskaHead(head: Uint8Array, fileSize: number): MatroskaInfo {
  return summarize(scanHead(head, fileSize));
}

/**
 * From the head, then, for Info or Tracks the head does not hold, the positions the
 * SeekHead gives, each fetched with one small ranged read of its header and one of its
 * payload (at most MAX_MATROSKA_ELEMENT_BYTES).
 */
export async function readMatroskaRanged(
  head: Uint8Array,
  fileSize: number,
  reader: RangeReader,
): Promise<MatroskaInfo> {
  const scan = scanHead(head, fileSize);
  const fetch = async (position: number, id: number): Promise<Window | undefined> => {
    if (position < 0 || position >= fileSize) return undefined;
    const hw: Window = { bytes: await reader.read(position, ELEMENT_HEADER_BYTES), base: position };
    const el = elementAt(hw, position);
    if (!el || el.id !== id || el.end === undefined) return undefined;
    const length = el.end - position;
    if (length > MAX_MATROSKA_ELEMENT_BYTES || el.end > fileSize) return undefined;
    const bytes = await reader.read(position, length);
    return { bytes: bytes.subarray(0, length), base: position };
  };
  const infoAt = scan.infoAt;
  if (!scan.infoComplete && infoAt !== undefined) {
    const w = await fetch(infoAt, EBML_ID.info);
    const el = w && elementAt(w, infoAt);
    if (w && el) readInfo(w, el, scan);
  }
  const tracksAt = scan.tracksAt;
  if (!scan.tracksComplete && tracksAt !== undefined) {
    const w = await fetch(tracksAt, EBML_ID.tracks);
    const el = w && elementAt(w, tracksAt);
    if (w && el) readTracks(w, el, scan);
  }
  return summarize(scan);
}
