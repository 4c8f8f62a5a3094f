import fc from 'fast-check';
import { DecodeError } from '../../../core/errors';
import {
  framePgm,
  lastLine,
  parsePgmStream,
  PgmStreamParser,
  toFloat01,
  toUint8Frames,
  uniformSampleIndices,
} from '../../../gpu-tasks/feature-extractor/src/decode';

describe('extractor sampling: uniformSampleIndices', () => {
  it('returns every frame when the clip has no more frames than the cap', () => {
    // Prepare
    const cases: [number, number][] = [
      [1, 64],
      [5, 64],
      [64, 64],
    ];

    // Act
    const results = cases.map(([n, k]) => uniformSampleIndices(n, k));

    // Assess
    expect(results).toEqual([[0], [0, 1, 2, 3, 4], Array.from({ length: 64 }, (_, i) => i)]);
  });

  it('matches round(i·(n−1)/(k−1)) and always keeps the first and last frame', () => {
    // Prepare
    const n = 401;
    const k = 64;

    // Act
    const idx = uniformSampleIndices(n, k);

    // Assess
    expect(idx).toHaveLength(k);
    expect(idx[0]).toBe(0);
    expect(idx[k - 1]).toBe(n - 1);
    idx.forEach((v, i) => expect(v).toBe(Math.round((i * (n - 1)) / (k - 1))));
  });

  it('is unique and strictly ascending for every n > k up to 2000', () => {
    // Prepare
    const k = 64;
    const bad: number[] = [];

    // Act
    for (let n = k + 1; n <= 2000; n++) {
      const idx = uniformSampleIndices(n, k);
      const ok = idx.length === k && idx.every((v, i) => v >= 0 && v < n && (i === 0 || v > (idx[i - 1] as number)));
      if (!ok) bad.push(n);
    }

    // Assess
    expect(bad).toEqual([]);
  });

  it('rounds halves up, in exact integer arithmetic', () => {
    // Prepare: n=4, k=3 → positions 0, 1.5, 3
    // Act
    const idx = uniformSampleIndices(4, 3);

    // Assess
    expect(idx).toEqual([0, 2, 3]);
  });

  it('takes the middle frame when only one frame is wanted, and nothing from an empty clip', () => {
    // Prepare / Act / Assess
    expect(uniformSampleIndices(9, 1)).toEqual([4]);
    expect(uniformSampleIndices(0, 64)).toEqual([]);
  });

  it('rejects non-integer or non-positive arguments', () => {
    // Prepare / Act / Assess
    expect(() => uniformSampleIndices(10, 0)).toThrow(RangeError);
    expect(() => uniformSampleIndices(-1, 4)).toThrow(RangeError);
    expect(() => uniformSampleIndices(2.5, 4)).toThrow(RangeError);
  });
});

describe('extractor sampling: pixel helpers', () => {
  it('toFloat01 and toUint8Frames round-trip every byte value', () => {
    // Prepare
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);

    // Act
    const floats = toFloat01(bytes);
    const back = toUint8Frames(floats);

    // Assess
    expect(floats[0]).toBe(0);
    expect(floats[255]).toBe(1);
    expect(Array.from(back)).toEqual(Array.from(bytes));
  });

  it('framePgm writes a P5 image that parsePgmStream reads back', () => {
    // Prepare
    const size = 4;
    const bytes = Uint8Array.from({ length: 2 * size * size }, (_, i) => i * 3);

    // Act
    const pgm = Buffer.concat([framePgm(bytes, size, 0), framePgm(bytes, size, 1)]);
    const frames = parsePgmStream(pgm);

    // Assess
    expect(pgm.subarray(0, 11).toString('ascii')).toBe('P5\n4 4\n255\n');
    expect(frames).toHaveLength(2);
    expect(frames[1]?.width).toBe(4);
    expect(Array.from(frames[1]?.data ?? [])).toEqual(Array.from(bytes.subarray(16, 32)));
  });

  it('PgmStreamParser gives the frames parsePgmStream does, however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ w: fc.integer({ min: 1, max: 40 }), h: fc.integer({ min: 1, max: 30 }), seed: fc.nat(255) }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 40 }),
        (shapes, cuts) => {
          // Prepare: frames of mixed sizes (the reused buffer must follow a size change)
          const pgm = Buffer.concat(
            shapes.map(({ w, h, seed }) =>
              Buffer.concat([
                Buffer.from(`P5\n${w} ${h}\n255\n`),
                Buffer.from(Uint8Array.from({ length: w * h }, (_, i) => (seed + i * 7) & 255)),
              ]),
            ),
          );
          const got: { width: number; height: number; data: number[] }[] = [];
          const parser = new PgmStreamParser((f) => got.push({ width: f.width, height: f.height, data: [...f.data] }));

          // Act: the stream in chunks of the drawn lengths, cycled
          for (let off = 0, i = 0; off < pgm.length; i++) {
            const n = cuts[i % cuts.length] as number;
            parser.push(pgm.subarray(off, off + n));
            off += n;
          }
          parser.end();

          // Assess
          const want = parsePgmStream(pgm).map((f) => ({ width: f.width, height: f.height, data: [...f.data] }));
          expect(got).toEqual(want);
        },
      ),
    );
  });

  it('PgmStreamParser refuses a stream cut inside a frame or a header, and bytes that are not PGM', () => {
    // Prepare
    const frame = Buffer.concat([Buffer.from('P5\n4 4\n255\n'), Buffer.alloc(16, 9)]);
    const feed =
      (...chunks: Buffer[]) =>
      () => {
        const p = new PgmStreamParser(() => undefined);
        for (const c of chunks) p.push(c);
        p.end();
      };

    // Act / Assess
    expect(feed(frame, frame.subarray(0, 20))).toThrow(DecodeError);
    expect(feed(frame, Buffer.from('P5\n4'))).toThrow(DecodeError);
    expect(feed(Buffer.from('GIF89a'))).toThrow(/malformed frame data/);
    expect(feed(Buffer.from('P5\n0 4\n255\n'))).toThrow(DecodeError);
    expect(feed(Buffer.from(`P5 ${'1'.repeat(70)}`))).toThrow(DecodeError);
    expect(feed(frame, frame)).not.toThrow();
  });

  it('parsePgmStream rejects a truncated frame as a DecodeError', () => {
    // Prepare
    const pgm = Buffer.concat([Buffer.from('P5\n4 4\n255\n'), Buffer.alloc(10)]);

    // Act / Assess
    expect(() => parsePgmStream(pgm)).toThrow(DecodeError);
  });
});

describe('extractor sampling: ffmpeg error lines', () => {
  it('names "the clip" instead of the path and drops addresses and other paths', () => {
    // Prepare
    const file = '/tmp/sonomark-decode-abc/clip';
    const stderr = [
      '[h264 @ 0x9f86680] Invalid NAL unit size (935 > 28).',
      `${file}: corrupt input packet in stream 1 (see /home/user/Patient_Doe.mp4)`,
      '',
    ].join('\n');

    // Act
    const line = lastLine(stderr, file);

    // Assess
    expect(line).toBe('corrupt input packet in stream 1 (see <path>)');
    expect(lastLine('[h264 @ 0x9f86680] Invalid NAL unit size', file)).toBe('[h264] Invalid NAL unit size');
    expect(lastLine('Invalid frame rate 30000/1001', file)).toBe('Invalid frame rate 30000/1001');
    expect(lastLine('\n\n', file)).toBeUndefined();
  });
});
