/**
 * The header limits past the head (core/media-header.ts readHeaderInfoRanged,
 * core/matroska-header.ts) on files the bundled ffmpeg writes: Matroska with three
 * codecs, WebM (libvpx), a live-written MKV (unknown sizes, no Duration), MP4 with the
 * index at the end, truncated and over the limits; and on hand-made files for what ffmpeg
 * does not write (Info/Tracks after a large Void, a lying size, an oversized index).
 * Every read is counted: a size the file claims never becomes a read or an allocation.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { bufferRangeReader, type RangeReader } from '../../../core/byte-range';
import { DEFAULT_INPUT_LIMITS } from '../../../core/limits';
import { MAX_MATROSKA_ELEMENT_BYTES } from '../../../core/matroska-header';
import { sniffContainer } from '../../../core/media';
import {
  checkHeaderLimits,
  MAX_INDEX_BYTES,
  MAX_TOP_LEVEL_BOXES,
  readHeaderInfo,
  readHeaderInfoRanged,
} from '../../../core/media-header';
import type { MediaContainer } from '../../../core/schemas';
import { defaultFfmpegPath } from '../../../gpu-tasks/feature-extractor/src/decode';
import { encodeLavfi } from '../../helpers/clips';
import { tempDir } from '../../helpers/temp';

jest.setTimeout(120_000);

/** Validate's head is larger; a small one here makes every generated file reach past it. */
const HEAD = 4096;

interface Counted extends RangeReader {
  readonly reads: { offset: number; length: number }[];
}
function counted(bytes: Uint8Array): Counted {
  const inner = bufferRangeReader(bytes);
  const reads: { offset: number; length: number }[] = [];
  return {
    reads,
    read: (offset, length) => {
      reads.push({ offset, length });
      return inner.read(offset, length);
    },
  };
}

async function ranged(bytes: Uint8Array, head = HEAD) {
  const container = sniffContainer(bytes.subarray(0, 65536)) as MediaContainer;
  const reader = counted(bytes);
  const info = await readHeaderInfoRanged(container, bytes.subarray(0, head), bytes.length, reader);
  return { container, info, reads: reader.reads };
}

const dir = tempDir();
const gen = (name: string, source: string, args: string[]) =>
  readFileSync(encodeLavfi(path.join(dir, name), source, args));
const SRC = 'testsrc=size=160x120:rate=10:duration=2';

const hasLibvpx = /libvpx/.test(
  spawnSync(defaultFfmpegPath(), ['-hide_banner', '-encoders'], { encoding: 'utf8' }).stdout ?? '',
);

describe('Matroska and WebM header limits', () => {
  it.each([
    ['ffv1', ['-c:v', 'ffv1']],
    ['mjpeg', ['-c:v', 'mjpeg']],
    ['mpeg4', ['-c:v', 'mpeg4']],
  ])('reads size, duration and frame count of an MKV (%s) from the head', async (codec, args) => {
    // Prepare
    const bytes = gen(`clip-${codec}.mkv`, SRC, args);
    // Act
    const { container, info, reads } = await ranged(bytes);
    // Assess
    expect(container).toBe('mkv');
    expect(info).toEqual({ width: 160, height: 120, durationSeconds: 2, frames: 20 });
    expect(reads).toEqual([]);
    expect(readHeaderInfo('mkv', bytes.subarray(0, HEAD), bytes.length)).toEqual(info);
  });

  (hasLibvpx ? it : it.skip)('reads a WebM (VP8) header', async () => {
    const bytes = gen('clip.webm', SRC, ['-c:v', 'libvpx', '-b:v', '200k']);
    const { container, info } = await ranged(bytes);
    expect(container).toBe('webm');
    expect(info).toEqual({ width: 160, height: 120, durationSeconds: 2, frames: 20 });
  });

  it('reads the size of a live-written MKV (unknown Segment and Cluster sizes, no Duration) and nothing else', async () => {
    // Prepare: written to a pipe, so the muxer cannot go back to fill in sizes or the duration.
    const r = spawnSync(
      defaultFfmpegPath(),
      ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', SRC, '-c:v', 'mjpeg', '-f', 'matroska', 'pipe:1'],
      { maxBuffer: 64 * 1024 ** 2 },
    );
    const bytes = r.stdout;
    // the Segment's size is all ones (unknown): 0x01 then seven 0xFF bytes
    const seg = bytes.indexOf(Buffer.from([0x18, 0x53, 0x80, 0x67]));
    expect([...bytes.subarray(seg + 4, seg + 12)]).toEqual([1, 255, 255, 255, 255, 255, 255, 255]);
    // Act
    const { info } = await ranged(bytes);
    // Assess
    expect(info).toEqual({ width: 160, height: 120 });
  });

  it('refuses an MKV over the duration limit, a WebM-size picture over the size limit, and a 1×1 clip', async () => {
    const long = (await ranged(gen('long.mkv', 'testsrc=size=64x64:rate=1:duration=601', ['-c:v', 'mpeg4']))).info;
    expect(checkHeaderLimits(long, DEFAULT_INPUT_LIMITS)).toEqual({
      code: 'TOO_LONG',
      message: expect.stringMatching(/lasts 601 s, over the 600 s limit/),
    });
    const wide = (await ranged(gen('wide.mkv', 'testsrc=size=4112x32:rate=1:duration=1', ['-c:v', 'ffv1']))).info;
    expect(checkHeaderLimits(wide, DEFAULT_INPUT_LIMITS)?.code).toBe('TOO_LARGE_PICTURE');
    const tiny = (await ranged(gen('tiny.mkv', 'testsrc=size=1x1:rate=10:duration=1', ['-c:v', 'ffv1']))).info;
    expect(checkHeaderLimits(tiny, DEFAULT_INPUT_LIMITS)?.code).toBe('TOO_SMALL');
  });

  it('says an audio-only Matroska file has no video track once the whole Tracks element is read', async () => {
    const bytes = gen('audio.mka', 'sine=frequency=440:duration=1', ['-c:a', 'pcm_s16le', '-f', 'matroska']);
    expect((await ranged(bytes)).info).toMatchObject({ hasVideo: false });
  });

  it('follows the SeekHead to Info and Tracks written after the head, with bounded ranged reads', async () => {
    // Prepare: what a muxer may write (Info and Tracks after 300 KiB), which ffmpeg does not.
    const bytes = lateMatroska(300 * 1024);
    // Act
    const { info, reads } = await ranged(bytes);
    // Assess
    expect(info).toEqual({ width: 640, height: 480, durationSeconds: 700, frames: 17500 });
    expect(checkHeaderLimits(info, DEFAULT_INPUT_LIMITS)?.code).toBe('TOO_LONG');
    expect(reads.length).toBe(4); // a header and a payload for each element
    for (const r of reads) expect(r.length).toBeLessThanOrEqual(MAX_MATROSKA_ELEMENT_BYTES);
  });

  it('never reads an element whose claimed size is over the bound (a lying size)', async () => {
    // Prepare: Tracks claims 2^50 bytes.
    const bytes = lateMatroska(300 * 1024, 2 ** 50);
    // Act
    const { info, reads } = await ranged(bytes);
    // Assess
    expect(info).toEqual({ durationSeconds: 700 });
    expect(Math.max(...reads.map((r) => r.length))).toBeLessThanOrEqual(MAX_MATROSKA_ELEMENT_BYTES);
  });
});

describe('MP4 with the index (moov) at the end', () => {
  it('walks the top-level boxes with 16-byte reads and reads the index whole', async () => {
    // Prepare: no +faststart, so moov follows mdat.
    const bytes = gen('late.mp4', SRC, ['-c:v', 'mpeg4', '-q:v', '1']);
    const moovAt = bytes.lastIndexOf(Buffer.from('moov')) - 4;
    expect(moovAt).toBeGreaterThan(HEAD);
    // Act
    const { info, reads } = await ranged(bytes);
    // Assess
    expect(readHeaderInfo('mp4', bytes.subarray(0, HEAD), bytes.length)).toEqual({});
    expect(info).toEqual({ width: 160, height: 120, durationSeconds: 2, frames: 20 });
    expect(reads.at(-1)).toEqual({ offset: moovAt, length: bytes.length - moovAt });
    for (const r of reads.slice(0, -1)) expect(r.length).toBe(16);
  });

  it('refuses an index-at-end MP4 over the frame limit, and one without a video track', async () => {
    const many = await ranged(gen('many.mp4', 'testsrc=size=32x32:rate=10:duration=501', ['-c:v', 'mpeg4']));
    expect(many.info.frames).toBe(5010);
    expect(checkHeaderLimits(many.info, DEFAULT_INPUT_LIMITS)).toEqual({
      code: 'TOO_LONG',
      message: expect.stringMatching(/5010 frames, over the 5000-frame limit/),
    });
    const audio = await ranged(gen('audio.mp4', 'sine=frequency=440:duration=3', ['-c:a', 'aac']), 64);
    expect(checkHeaderLimits(audio.info, DEFAULT_INPUT_LIMITS)?.code).toBe('NO_VIDEO_STREAM');
  });

  it('states nothing for a truncated file (the index is cut off) and reads no more than box headers', async () => {
    const whole = gen('whole.mp4', SRC, ['-c:v', 'mpeg4', '-q:v', '1']);
    const { info, reads } = await ranged(whole.subarray(0, Math.floor(whole.length * 0.9)));
    expect(info).toEqual({});
    for (const r of reads) expect(r.length).toBe(16);
  });

  it('leaves an index over MAX_INDEX_BYTES to the extractor, saying so, without reading it', async () => {
    // Prepare: ftyp, a small mdat, then a moov of MAX_INDEX_BYTES + 1.
    const bytes = Buffer.concat([
      box('ftyp', Buffer.from('isom\0\0\0\0isom')),
      box('mdat', Buffer.alloc(8192)),
      box('moov', Buffer.alloc(MAX_INDEX_BYTES - 7)),
    ]);
    // Act
    const { info, reads } = await ranged(bytes);
    // Assess
    expect(info.unchecked).toMatch(
      /index \(moov\) is 8\.0 MiB, over the 8 MiB Validate reads; the extractor checks the limits/,
    );
    for (const r of reads) expect(r.length).toBe(16);
  });

  it('gives up after MAX_TOP_LEVEL_BOXES boxes, and never reads a 64-bit size that lies', async () => {
    const many = Buffer.concat([
      box('ftyp', Buffer.from('isom\0\0\0\0isom')),
      ...Array.from({ length: 200 }, () => box('free', Buffer.alloc(4096))),
    ]);
    const gaveUp = await ranged(many);
    expect(gaveUp.info.unchecked).toMatch(/not within the first 64 top-level boxes/);
    expect(gaveUp.reads.length).toBeLessThanOrEqual(MAX_TOP_LEVEL_BOXES);
    const lying = Buffer.concat([
      box('ftyp', Buffer.from('isom\0\0\0\0isom')),
      box('free', Buffer.alloc(8192)),
      largeBox('moov', 2n ** 60n),
    ]);
    const l = await ranged(lying);
    expect(l.info).toEqual({});
    for (const r of l.reads) expect(r.length).toBe(16);
  });
});

function box(type: string, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(8 + payload.length);
  h.write(type, 4, 'latin1');
  return Buffer.concat([h, payload]);
}
function largeBox(type: string, size: bigint): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(1);
  h.write(type, 4, 'latin1');
  h.writeBigUInt64BE(size, 8);
  return Buffer.concat([h, Buffer.alloc(64)]);
}

// A minimal EBML writer: ID bytes as written, sizes as 1-byte VINTs when small, else 8-byte ones.
function el(id: number, payload: Buffer, size = payload.length): Buffer {
  const idBytes: number[] = [];
  for (let v = id; v > 0; v = Math.floor(v / 256)) idBytes.unshift(v % 256);
  let s = Buffer.from([0x80 | size]);
  if (size >= 0x7f) {
    s = Buffer.alloc(8);
    s.writeBigUInt64BE(BigInt(size));
    s[0] = 0x01; // length 8 marker; sizes here are below 2^56
  }
  return Buffer.concat([Buffer.from(idBytes), s, payload]);
}
const u = (id: number, v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return el(id, b);
};
const f64 = (id: number, v: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  return el(id, b);
};

/** EBML header, Segment { SeekHead → Info, Tracks; Void of `gap` bytes; Info; Tracks }. */
function lateMatroska(gap: number, tracksClaims?: number): Buffer {
  const header = el(0x1a45dfa3, Buffer.concat([el(0x4282, Buffer.from('matroska'))]));
  const info = el(0x1549a966, Buffer.concat([u(0x2ad7b1, 1_000_000), f64(0x4489, 700_000)]));
  const video = el(0xe0, Buffer.concat([u(0xb0, 640), u(0xba, 480)]));
  const tracksPayload = el(0xae, Buffer.concat([u(0x83, 1), u(0x23e383, 40_000_000), video]));
  const tracks = el(0x1654ae6b, tracksPayload, tracksClaims);
  const seek = (id: number, pos: number) => el(0x4dbb, Buffer.concat([u(0x53ab, id), u(0x53ac, pos)]));
  const seekHeadLength = el(0x114d9b74, Buffer.concat([seek(0x1549a966, 0), seek(0x1654ae6b, 0)])).length;
  const voidEl = el(0xec, Buffer.alloc(gap));
  const infoPos = seekHeadLength + voidEl.length;
  const seekHead = el(0x114d9b74, Buffer.concat([seek(0x1549a966, infoPos), seek(0x1654ae6b, infoPos + info.length)]));
  const segment = el(0x18538067, Buffer.concat([seekHead, voidEl, info, tracks]));
  return Buffer.concat([header, segment]);
}
