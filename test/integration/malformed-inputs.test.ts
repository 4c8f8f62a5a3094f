/**
 * The malformed-input corpus, generated here (nothing from ../shared), through
 * `sonomark analyze --json DIR` in one process: every bad file becomes a FAILED
 * record whose message says what was wrong (and, for a format problem, what is
 * accepted) in the project's words; the good files of the new formats complete;
 * directory mode says what it skipped and follows a symlinked folder; no ffmpeg
 * child is left running (temp files are checked by the jest teardown).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { encodeLavfi, GENERATED_FORMATS, makeLavfiClip } from '../helpers/clips';
import { runCli } from '../helpers/cli';
import { buildDicom } from '../helpers/dicom';
import { tempDir } from './helpers';

jest.setTimeout(300_000);

const be32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** name → the code its FAILED record must carry. */
const BAD: Record<string, string> = {
  'zero-bytes.mp4': 'EMPTY_FILE',
  'truncated.mp4': 'DECODE_FAILED',
  'random.mp4': 'UNSUPPORTED_FORMAT',
  'page.mp4': 'UNSUPPORTED_FORMAT',
  'paper.avi': 'UNSUPPORTED_FORMAT',
  'data.mov': 'UNSUPPORTED_FORMAT',
  'archive.gif': 'UNSUPPORTED_FORMAT',
  'audio-only.mp4': 'NO_VIDEO_STREAM',
  'audio-only-indexed.mp4': 'NO_VIDEO_STREAM',
  'one-pixel.mp4': 'TOO_SMALL',
  'one-pixel.mkv': 'TOO_SMALL',
  'blank.mp4': 'BLANK',
  'header-only.gif': 'NO_FRAMES',
  'huge.png': 'TOO_LARGE_PICTURE',
  'too-long.mp4': 'TOO_LONG',
  'too-long.mkv': 'TOO_LONG',
  'too-long.webm': 'TOO_LONG',
  'too-many-frames.mp4': 'TOO_LONG',
  'no-pixels.dcm': 'DICOM_NO_PIXEL_DATA',
  'unknown-syntax.dcm': 'DICOM_UNSUPPORTED_TRANSFER_SYNTAX',
  'notes.dcm': 'UNSUPPORTED_FORMAT',
};
const GOOD = ['webm', 'mkv', 'mpegts', 'bmp'];

describe('sonomark analyze over a malformed-input corpus', () => {
  it('fails each bad file with a reason in the project words, completes the rest, reports what it skipped', async () => {
    // Prepare
    const dir = tempDir();
    const corpus = path.join(dir, 'corpus');
    const linked = path.join(dir, 'elsewhere');
    mkdirSync(corpus);
    mkdirSync(linked);
    const put = (name: string, data: Buffer | string) => writeFileSync(path.join(corpus, name), data);
    const gen = (name: string, source: string, args: string[]) => encodeLavfi(path.join(corpus, name), source, args);
    const pattern = 'testsrc=size=160x120:rate=10:duration=1';

    put('zero-bytes.mp4', Buffer.alloc(0));
    const whole = readFileSync(makeLavfiClip(path.join(dir, 'whole.mp4'), pattern));
    put('truncated.mp4', whole.subarray(0, Math.floor(whole.length / 2)));
    put('random.mp4', randomBytes(8192));
    put('page.mp4', '<!DOCTYPE html>\n<html><body>Not a clip</body></html>\n');
    put('paper.avi', '%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n');
    put('data.mov', '{"patient": "x", "frames": []}\n');
    put('archive.gif', Buffer.concat([Buffer.from('PK\x03\x04\x14\x00', 'latin1'), randomBytes(200)]));
    gen('audio-only.mp4', 'sine=frequency=440:duration=1', ['-c:a', 'aac']);
    gen('audio-only-indexed.mp4', 'sine=frequency=440:duration=1', ['-c:a', 'aac', '-movflags', '+faststart']);
    gen('one-pixel.mp4', 'testsrc=size=1x1:rate=10:duration=1', ['-c:v', 'mpeg4', '-movflags', '+faststart']);
    gen('one-pixel.mkv', 'testsrc=size=1x1:rate=10:duration=1', ['-c:v', 'ffv1']); // Validate reads Tracks
    gen('blank.mp4', 'color=c=black:size=160x120:rate=10:duration=1', ['-c:v', 'mpeg4']);
    put('header-only.gif', Buffer.from('GIF89a\xa0\x00\x78\x00\x00\x00\x00', 'latin1'));
    put(
      'huge.png',
      Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        be32(13),
        Buffer.from('IHDR'),
        be32(20000),
        be32(20000),
        Buffer.from([8, 0, 0, 0, 0]),
        be32(0),
        randomBytes(64),
      ]),
    );
    // 601 s at 1 fps, index first so Validate reads the duration before any GPU job.
    gen('too-long.mp4', 'testsrc=size=64x64:rate=1:duration=601', ['-c:v', 'mpeg4', '-movflags', '+faststart']);
    // The same limits from a Matroska/WebM header, and from an MP4 index at the end (5010 frames in
    // 501 s, about 1 MB, so the index lies past the bytes Validate keeps and is read with ranged reads).
    gen('too-long.mkv', 'testsrc=size=64x64:rate=1:duration=601', ['-c:v', 'mpeg4']);
    gen('too-long.webm', 'testsrc=size=64x64:rate=1:duration=601', ['-c:v', 'libvpx', '-b:v', '20k']);
    gen('too-many-frames.mp4', 'testsrc=size=32x32:rate=10:duration=501', ['-c:v', 'mpeg4']);
    for (const id of GOOD) {
      const g = GENERATED_FORMATS[id] as { ext: string; args: string[] };
      gen(`good-${id}.${g.ext}`, pattern, g.args);
    }
    // DICOM without pixel data, with a transfer syntax no one registered, and a text file named .dcm.
    put('no-pixels.dcm', buildDicom({ rows: 64, columns: 64 }));
    put(
      'unknown-syntax.dcm',
      buildDicom({
        rows: 64,
        columns: 64,
        transferSyntax: '1.2.826.0.1.3680043.8.498.99',
        frames: [new Uint8Array(8)],
      }),
    );
    put('notes.dcm', 'Patient notes, not an image.\n');
    put('notes.txt', 'the files the site sent');
    put('report.docx', 'PK');
    // A clip inside a symlinked folder is found.
    makeLavfiClip(path.join(linked, 'linked-clip.mp4'), pattern);
    symlinkSync(linked, path.join(corpus, 'linked-folder'));

    // Act
    const r = await runCli(['analyze', '--json', corpus]);

    // Assess
    type Row = { file: string; status: string; error?: { code: string; message: string } };
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Row);
    const byName = new Map(rows.map((row) => [path.basename(row.file), row]));
    expect(r.code).toBe(1);
    expect(rows).toHaveLength(Object.keys(BAD).length + GOOD.length + 1);
    for (const [name, code] of Object.entries(BAD)) {
      const row = byName.get(name);
      expect({ name, status: row?.status, code: row?.error?.code }).toEqual({ name, status: 'failed', code });
      const message = row?.error?.message ?? '';
      // The project's words: no ffmpeg text, no paths, no file names. The quoted first bytes
      // (`hex …, text "…"`) are the file's own content, random for the noise file, so a `/`
      // there is no path: they are left out of this check.
      const ownWords = message.replace(/\(hex [0-9a-f ]+, text ".{0,8}"\)/, '(first bytes)');
      expect({ name, message: ownWords }).toEqual({
        name,
        message: expect.not.stringMatching(/ffmpeg|trailing '\?'|corrupt input packet|moov atom|\/|@ 0x/),
      });
      expect({ name, message }).toEqual({ name, message: expect.not.stringContaining(name) });
      if (code === 'UNSUPPORTED_FORMAT' || code === 'DECODE_FAILED') {
        expect({ name, message }).toEqual({
          name,
          message: expect.stringMatching(/[Aa]ccepted: MP4 \(M4V\), QuickTime MOV/),
        });
      }
    }
    expect(byName.get('page.mp4')?.error?.message).toMatch(/^The file is an HTML page/);
    expect(byName.get('paper.avi')?.error?.message).toMatch(/^The file is a PDF document/);
    expect(byName.get('data.mov')?.error?.message).toMatch(/^The file is a JSON document/);
    expect(byName.get('archive.gif')?.error?.message).toMatch(/^The file is a ZIP archive/);
    expect(byName.get('huge.png')?.error?.message).toMatch(/20000×20000 pixels, over the 4096×4096 limit/);
    // Validate's words (the GPU job would say "more than 5000 frames" or BLANK): refused before any GPU job.
    expect(byName.get('too-long.mp4')?.error?.message).toMatch(/lasts 601 s, over the 600 s limit/);
    expect(byName.get('too-long.mkv')?.error?.message).toMatch(/lasts 601 s, over the 600 s limit/);
    expect(byName.get('too-long.webm')?.error?.message).toMatch(/lasts 601 s, over the 600 s limit/);
    expect(byName.get('too-many-frames.mp4')?.error?.message).toMatch(/5010 frames, over the 5000-frame limit/);
    expect(byName.get('one-pixel.mkv')?.error?.message).toMatch(/1×1 pixels, too small/);
    expect(byName.get('unknown-syntax.dcm')?.error?.message).toMatch(/Accepted encodings: /);
    for (const id of GOOD) {
      const row = rows.find((x) => path.basename(x.file).startsWith(`good-${id}.`));
      expect({ id, status: row?.status, error: row?.error }).toEqual({ id, status: 'completed', error: undefined });
    }
    expect(byName.get('linked-clip.mp4')?.status).toBe('completed');
    expect(r.stderr).toMatch(
      /Skipped 2 files in the given directories \(1 \.docx, 1 \.txt\): not an accepted format's extension \(\.mp4 /,
    );
    // No ffmpeg (or other child) left behind.
    const children = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => /ffmpeg/.test(l));
    expect(children).toEqual([]);
  });
});
