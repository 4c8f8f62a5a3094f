import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { isUnsupported, sniffContainer } from '../../../core/media';
import { PACKAGE_ROOT } from '../../../core/paths';

const POCUS = path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

function head(file: string, n = 4096): Buffer {
  const buf = readFileSync(file);
  return buf.subarray(0, n);
}

const EXPECTED: Record<string, string> = {
  mp4: 'mp4',
  mov: 'mov',
  avi: 'avi',
  gif: 'gif',
  mpeg: 'mpeg',
  mpg: 'mpeg',
  jpg: 'jpeg',
  jpeg: 'jpeg',
  png: 'png',
};

describe('sniffContainer on the real POCUS files', () => {
  const files = walk(POCUS).filter((f) => EXPECTED[path.extname(f).slice(1).toLowerCase()] !== undefined);

  it('finds the data set', () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it('identifies every clip and still by its bytes', () => {
    // Prepare / Act
    const results = files.map((f) => ({
      file: path.basename(f),
      got: sniffContainer(head(f)),
      ext: path.extname(f).slice(1).toLowerCase(),
    }));
    // Assess: mp4 files may carry a QuickTime brand and vice versa; some northumbria ".avi" files are really
    // MP4 (ftyp isom) — exactly why the extension is never trusted. Everything else matches its extension.
    const misnamed = results.filter((r) => r.ext === 'avi' && r.got === 'mp4').map((r) => r.file);
    for (const r of results) {
      expect({ file: r.file, unsupported: isUnsupported(r.got) }).toEqual({ file: r.file, unsupported: false });
      const want = EXPECTED[r.ext] as string;
      if (want === 'mp4' || want === 'mov') expect(['mp4', 'mov']).toContain(r.got);
      else if (!misnamed.includes(r.file)) expect({ file: r.file, got: r.got }).toEqual({ file: r.file, got: want });
    }
    expect(misnamed.length).toBeGreaterThan(0);
    for (const f of misnamed) {
      const file = files.find((p) => path.basename(p) === f) as string;
      expect(head(file).subarray(4, 12).toString('latin1')).toBe('ftypisom');
    }
  });
});

describe('sniffContainer on synthetic headers', () => {
  const bytes = (...parts: (string | number[])[]): Buffer =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

  it.each([
    ['mp4 (isom brand)', bytes([0, 0, 0, 0x18], 'ftypisom', [0, 0, 2, 0]), 'mp4'],
    ['mov (qt brand)', bytes([0, 0, 0, 0x14], 'ftypqt  ', [0, 0, 2, 0]), 'mov'],
    ['mov without ftyp (moov atom)', bytes([0, 0, 0, 8], 'moov'), 'mov'],
    ['mov without ftyp (mdat atom)', bytes([0, 0, 0, 8], 'mdat'), 'mov'],
    ['mov without ftyp (wide atom)', bytes([0, 0, 0, 8], 'wide'), 'mov'],
    ['mov without ftyp (free atom)', bytes([0, 0, 0, 8], 'free'), 'mov'],
    ['avi', bytes('RIFF', [0x10, 0, 0, 0], 'AVI LIST'), 'avi'],
    ['gif87a', bytes('GIF87a', [1, 0, 1, 0]), 'gif'],
    ['gif89a', bytes('GIF89a', [1, 0, 1, 0]), 'gif'],
    ['mpeg program stream', bytes([0, 0, 1, 0xba, 0x44]), 'mpeg'],
    ['mpeg elementary stream', bytes([0, 0, 1, 0xb3, 0x14]), 'm2v'],
    ['jpeg', bytes([0xff, 0xd8, 0xff, 0xe0]), 'jpeg'],
    ['png', bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), 'png'],
  ])('%s', (_what, head, want) => {
    expect(sniffContainer(head)).toBe(want);
  });

  it('recognises an MPEG transport stream by its sync byte every 188 bytes', () => {
    const ts = Buffer.alloc(188 * 4);
    for (let i = 0; i < 4; i++) ts[i * 188] = 0x47;
    expect(sniffContainer(ts)).toBe('mpegts');
    ts[188 * 2] = 0;
    expect(isUnsupported(sniffContainer(ts))).toBe(true);
  });

  it('accepts DICOM Part 10 by its DICM marker (its header is checked by core/dicom)', () => {
    const dicom = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.alloc(64)]);
    expect(sniffContainer(dicom)).toBe('dicom');
  });

  it('rejects unknown bytes, never trusting an extension, and lists what is accepted', () => {
    const got = sniffContainer(Buffer.from('%PDF-1.7\n'));
    expect(isUnsupported(got)).toBe(true);
    expect((got as { unsupported: string }).unsupported).toMatch(/^The file is a PDF document, not a clip or image/);
    expect((got as { unsupported: string }).unsupported).toMatch(/Accepted: MP4 \(M4V\), QuickTime MOV, AVI/);
    const unknown = sniffContainer(Buffer.from([0x13, 0x37, 0, 1, 2, 3, 4, 5, 6]));
    expect((unknown as { unsupported: string }).unsupported).toMatch(/hex 13 37 00 01/);
  });

  it('rejects a RIFF that is not AVI (e.g. WAV) and an empty head', () => {
    expect(isUnsupported(sniffContainer(Buffer.from('RIFF\x10\x00\x00\x00WAVEfmt ', 'latin1')))).toBe(true);
    expect(isUnsupported(sniffContainer(Buffer.alloc(0)))).toBe(true);
  });
});
