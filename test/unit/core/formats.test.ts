import {
  ACCEPTED_FORMAT_ROWS,
  ACCEPTED_FORMATS,
  FFMPEG_FORMAT_WHITELIST,
  FORMATS,
  MEDIA_EXTENSIONS,
  renderFormatTable,
} from '../../../core/formats';
import { DEFAULT_INPUT_LIMITS, parseInputLimits, renderLimitsTable } from '../../../core/limits';
import { sniffContainer } from '../../../core/media';
import { checkHeaderLimits, readHeaderInfo } from '../../../core/media-header';
import { MediaContainer } from '../../../core/schemas';
import { buildDicom } from '../../helpers/dicom';

describe('the format table drives the sniffer, the ffmpeg whitelist and directory mode', () => {
  it('has one accepted row per container id, and every accepted id is a MediaContainer', () => {
    // Assess
    const ids = ACCEPTED_FORMAT_ROWS.map((f) => f.id);
    expect([...ids].sort()).toEqual([...MediaContainer.options].sort());
    expect(new Set(FORMATS.map((f) => f.id)).size).toBe(FORMATS.length);
  });

  it('whitelists exactly the demuxers of the accepted rows, and each ffmpeg row names one', () => {
    // Prepare
    const whitelist = FFMPEG_FORMAT_WHITELIST.split(',');
    const demuxers = ACCEPTED_FORMAT_ROWS.filter((f) => f.reader === 'ffmpeg').map((f) => f.demuxer);

    // Assess
    expect(demuxers.every((d) => typeof d === 'string' && d.length > 0)).toBe(true);
    expect(new Set(whitelist)).toEqual(new Set(demuxers));
    // No playlist or image-sequence demuxer that could open other files.
    expect(whitelist).not.toEqual(expect.arrayContaining(['hls']));
    expect(whitelist.some((d) => /hls|concat|image2$|tee|http/.test(d))).toBe(false);
  });

  it('sniffs a row from its own magic bytes, and only that row, for every accepted row', () => {
    // Prepare: a minimal head per row
    const heads: Record<string, Buffer> = {
      mp4: Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom'), Buffer.alloc(12)]),
      mov: Buffer.concat([Buffer.from([0, 0, 0, 0x14]), Buffer.from('ftypqt  '), Buffer.alloc(8)]),
      avi: Buffer.from('RIFF\x10\x00\x00\x00AVI LIST', 'latin1'),
      mpeg: Buffer.from([0, 0, 1, 0xba, 0x44, 0, 4]),
      m2v: Buffer.from([0, 0, 1, 0xb3, 0x0a, 0, 0x78]),
      mpegts: Buffer.concat([0, 1, 2].map(() => Buffer.concat([Buffer.from([0x47]), Buffer.alloc(187)]))),
      gif: Buffer.from('GIF89a\x10\x00\x10\x00', 'latin1'),
      webm: Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x84, ...Buffer.from('webm')]),
      mkv: Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x88, ...Buffer.from('matroska')]),
      jpeg: Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
      png: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      bmp: Buffer.concat([Buffer.from('BM'), Buffer.alloc(12), Buffer.from([40, 0, 0, 0]), Buffer.alloc(16)]),
      dicom: Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.alloc(16)]),
    };

    // Act / Assess
    for (const row of ACCEPTED_FORMAT_ROWS) {
      const head = heads[row.id] as Buffer;
      expect({ id: row.id, sniffed: sniffContainer(head) }).toEqual({ id: row.id, sniffed: row.id });
      const alsoMatch = FORMATS.filter((f) => f.sniff(head)).map((f) => f.id);
      expect({ id: row.id, first: alsoMatch[0] }).toEqual({ id: row.id, first: row.id });
    }
  });

  it("takes every accepted row's extensions in directory mode, and names every row in messages", () => {
    expect([...MEDIA_EXTENSIONS].sort()).toEqual(ACCEPTED_FORMAT_ROWS.flatMap((f) => f.extensions).sort());
    for (const f of ACCEPTED_FORMAT_ROWS) expect(ACCEPTED_FORMATS).toContain(f.name.replace(/ still$/, ''));
  });

  it('routes DICOM to the DICOM reader, not to ffmpeg, by its magic bytes whatever the name', () => {
    const dicom = FORMATS.find((f) => f.id === 'dicom');
    expect(dicom).toMatchObject({ reader: 'dicom', extensions: ['.dcm'], accepted: true });
    expect(dicom?.demuxer).toBeUndefined();
    const head = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.alloc(16)]);
    expect(sniffContainer(head)).toBe('dicom');
  });

  it('renders the README tables: one line per row and per limit', () => {
    const table = renderFormatTable().trim().split('\n');
    expect(table).toHaveLength(FORMATS.length + 2);
    expect(table[0]).toMatch(/^\| format \|/);
    expect(table.find((l) => l.startsWith('| DICOM'))).toMatch(/the DICOM reader/);
    const limits = renderLimitsTable().trim().split('\n');
    expect(limits).toHaveLength(Object.keys(DEFAULT_INPUT_LIMITS).length + 3);
  });
});

describe('container headers read before any GPU job', () => {
  const be32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const box = (type: string, ...payload: Buffer[]) => {
    const body = Buffer.concat(payload);
    return Buffer.concat([be32(body.length + 8), Buffer.from(type, 'latin1'), body]);
  };

  it('refuses a PNG whose IHDR claims 20000×20000 without allocating it', () => {
    // Prepare: the signature and IHDR only
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      be32(13),
      Buffer.from('IHDR'),
      be32(20000),
      be32(20000),
      Buffer.from([8, 0, 0, 0, 0]),
    ]);

    // Act
    const info = readHeaderInfo('png', png, png.length);

    // Assess
    expect(info).toEqual({ width: 20000, height: 20000 });
    expect(checkHeaderLimits(info, DEFAULT_INPUT_LIMITS)).toEqual({
      code: 'TOO_LARGE_PICTURE',
      message: expect.stringMatching(/20000×20000 pixels, over the 4096×4096 limit/),
    });
  });

  it('reads JPEG SOF, BMP, GIF and AVI sizes; a header-only GIF has no image', () => {
    // Prepare
    const jpeg = Buffer.from([
      0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0x01, 0xe0, 0x02, 0x80, 1, 1, 0x11, 0,
    ]);
    const bmp = Buffer.alloc(54);
    bmp.write('BM');
    bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(640, 18);
    bmp.writeInt32LE(-480, 22);
    const gif = Buffer.from('GIF89a\x40\x01\xf0\x00\x00\x00\x00', 'latin1');
    const avi = Buffer.alloc(80);
    avi.write('RIFF');
    avi.write('AVI LIST', 8, 'latin1');
    avi.write('hdrl', 20);
    avi.write('avih', 24);
    avi.writeUInt32LE(40_000, 32); // 25 fps
    avi.writeUInt32LE(20_000, 48); // frames
    avi.writeUInt32LE(350, 64);
    avi.writeUInt32LE(350, 68);

    // Act / Assess
    expect(readHeaderInfo('jpeg', jpeg, 1000)).toEqual({ width: 640, height: 480 });
    expect(readHeaderInfo('bmp', bmp, 1000)).toEqual({ width: 640, height: 480 });
    expect(readHeaderInfo('gif', gif, gif.length)).toEqual({ width: 320, height: 240, noImage: true });
    expect(checkHeaderLimits(readHeaderInfo('gif', gif, gif.length), DEFAULT_INPUT_LIMITS)?.code).toBe('NO_FRAMES');
    expect(readHeaderInfo('avi', avi, 1e6)).toEqual({ width: 350, height: 350, frames: 20000, durationSeconds: 800 });
    expect(checkHeaderLimits(readHeaderInfo('avi', avi, 1e6), DEFAULT_INPUT_LIMITS)).toMatchObject({
      code: 'TOO_LONG',
      message: expect.stringMatching(/lasts 800 s, over the 600 s limit/),
    });
  });

  it('reads an MP4 index at the start: duration, video size, and an audio-only file has no video track', () => {
    // Prepare: ftyp + moov(mvhd v0: 90000 ticks at 1000/s; one trak per case)
    const mvhd = Buffer.alloc(100);
    mvhd.writeUInt32BE(1000, 12);
    mvhd.writeUInt32BE(90_000, 16);
    const tkhd = (w: number, h: number) => {
      const b = Buffer.alloc(84);
      b.writeUInt32BE(w * 65536, 76);
      b.writeUInt32BE(h * 65536, 80);
      return box('tkhd', b);
    };
    const hdlr = (type: string) => box('mdia', box('hdlr', Buffer.alloc(8), Buffer.from(type), Buffer.alloc(13)));
    const ftyp = box('ftyp', Buffer.from('isom'), Buffer.alloc(4));
    const video = Buffer.concat([ftyp, box('moov', box('mvhd', mvhd), box('trak', tkhd(1, 1), hdlr('vide')))]);
    const audio = Buffer.concat([ftyp, box('moov', box('mvhd', mvhd), box('trak', tkhd(0, 0), hdlr('soun')))]);

    // Act / Assess
    expect(readHeaderInfo('mp4', video, video.length + 100)).toEqual({ durationSeconds: 90, width: 1, height: 1 });
    expect(checkHeaderLimits(readHeaderInfo('mp4', video, video.length), DEFAULT_INPUT_LIMITS)).toMatchObject({
      code: 'TOO_SMALL',
      message: expect.stringMatching(/1×1 pixels, too small to hold an ultrasound image/),
    });
    expect(readHeaderInfo('mp4', audio, audio.length)).toEqual({ durationSeconds: 90, hasVideo: false });
    // The index at the end (not in the bytes at hand): nothing is claimed.
    expect(readHeaderInfo('mp4', Buffer.concat([ftyp, box('mdat', Buffer.alloc(64))]), 1e6)).toEqual({});
  });

  it('parses limits from the environment, keeping defaults for keys left out and naming bad ones', () => {
    expect(parseInputLimits(undefined, 'INPUT_LIMITS')).toEqual(DEFAULT_INPUT_LIMITS);
    expect(parseInputLimits('{"maxDurationSeconds": 30}', 'INPUT_LIMITS')).toEqual({
      ...DEFAULT_INPUT_LIMITS,
      maxDurationSeconds: 30,
    });
    expect(() => parseInputLimits('{"maxWidth": -1}', 'INPUT_LIMITS')).toThrow(/INPUT_LIMITS is invalid: maxWidth/);
    expect(() => parseInputLimits('{"maxPixels": 1}', 'INPUT_LIMITS')).toThrow(/INPUT_LIMITS is invalid/);
  });
});

describe('DICOM limits from its header, before any GPU job', () => {
  it('reads rows, columns, frames and the duration from Frame Time', () => {
    // Prepare: 30 frames of 96×128 at 100 ms a frame (3 s)
    const frames = Array.from({ length: 30 }, () => new Uint8Array(96 * 128).fill(90));
    const bytes = buildDicom({ rows: 96, columns: 128, frames, extra: { NumberOfFrames: 30, FrameTime: 100 } });

    // Act
    const info = readHeaderInfo('dicom', bytes, bytes.length);

    // Assess
    expect(info).toEqual({ width: 128, height: 96, frames: 30, durationSeconds: 3 });
    expect(checkHeaderLimits(info, { ...DEFAULT_INPUT_LIMITS, maxDurationSeconds: 2 })?.code).toBe('TOO_LONG');
  });
});
