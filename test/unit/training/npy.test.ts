import { fromNpy, toNpy } from '../../../training/npy';

function parseNpy(buf: Buffer): { major: number; minor: number; headerLen: number; header: string; body: Buffer } {
  const headerLen = buf.readUInt16LE(8);
  return {
    major: buf[6] as number,
    minor: buf[7] as number,
    headerLen,
    header: buf.subarray(10, 10 + headerLen).toString('latin1'),
    body: buf.subarray(10 + headerLen),
  };
}

describe('toNpy', () => {
  it('writes magic, version 1.0 and a header padded to a 64-byte preamble', () => {
    // Prepare
    const data = new Uint8Array([1, 2, 3, 4, 5, 6]);

    // Act
    const buf = toNpy(data, [2, 3], 'u1');
    const npy = parseNpy(buf);

    // Assess
    expect([...buf.subarray(0, 6)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
    expect(npy.major).toBe(1);
    expect(npy.minor).toBe(0);
    expect((10 + npy.headerLen) % 64).toBe(0);
    expect(npy.header.endsWith('\n')).toBe(true);
    expect(npy.header.trimEnd()).toBe("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }");
    expect([...npy.body]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(buf.length).toBe(10 + npy.headerLen + 6);
  });

  it('writes a one-dimensional shape with a trailing comma', () => {
    // Prepare
    const data = new Uint8Array([9, 8, 7]);

    // Act
    const npy = parseNpy(toNpy(data, [3], 'u1'));

    // Assess
    expect(npy.header).toContain("'shape': (3,)");
    expect([...npy.body]).toEqual([9, 8, 7]);
  });

  it('writes little-endian float32 bodies with descr <f4', () => {
    // Prepare
    const data = new Float32Array([0.5, -2, 1e-3, 3]);

    // Act
    const npy = parseNpy(toNpy(data, [2, 2], '<f4'));

    // Assess
    expect(npy.header).toContain("'descr': '<f4'");
    expect(npy.header).toContain("'shape': (2, 2)");
    expect((10 + npy.headerLen) % 64).toBe(0);
    expect(npy.body.length).toBe(16);
    expect([0, 1, 2, 3].map((i) => npy.body.readFloatLE(i * 4))).toEqual([0.5, -2, Math.fround(1e-3), 3]);
  });

  it('writes only the viewed bytes of a subarray', () => {
    // Prepare
    const backing = new Uint8Array([0, 1, 2, 3, 4, 5]);
    const view = backing.subarray(2, 5);

    // Act
    const npy = parseNpy(toNpy(view, [3], 'u1'));

    // Assess
    expect([...npy.body]).toEqual([2, 3, 4]);
  });

  it('keeps the preamble a multiple of 64 for a header that is long', () => {
    // Prepare
    const shape = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const data = new Uint8Array(0);

    // Act
    const npy = parseNpy(toNpy(data, shape, 'u1'));

    // Assess
    expect((10 + npy.headerLen) % 64).toBe(0);
    expect(npy.header).toContain(`'shape': (${shape.join(', ')})`);
    expect(npy.body.length).toBe(0);
  });
});

describe('fromNpy', () => {
  it('reads back what toNpy writes, uint8 and float32, whatever the buffer offset', () => {
    const frames = new Uint8Array([0, 1, 254, 255, 7, 9]);
    const back = fromNpy(toNpy(frames, [3, 1, 2], 'u1'));
    expect(back.shape).toEqual([3, 1, 2]);
    expect(back.data).toBeInstanceOf(Uint8Array);
    expect([...back.data]).toEqual([...frames]);

    const values = new Float32Array([0.5, -1.25, 3e-7]);
    const shifted = Buffer.concat([Buffer.from([0]), toNpy(values, [3], '<f4')]).subarray(1);
    const f = fromNpy(shifted);
    expect(f.shape).toEqual([3]);
    expect(f.data).toBeInstanceOf(Float32Array);
    expect([...f.data]).toEqual([...values]);
  });

  it('refuses other files, dtypes and truncated bodies by name', () => {
    expect(() => fromNpy(Buffer.from('not numpy at all'), 'x.npy')).toThrow('x.npy: not a NumPy .npy file');
    const f64 = toNpy(new Uint8Array(8), [1], 'u1');
    const header = f64.toString('latin1').replace("'|u1'", "'<f8'");
    expect(() => fromNpy(Buffer.from(header, 'latin1'), 'y.npy')).toThrow(
      /y\.npy: expected a C-order \|u1 or <f4 array/,
    );
    const full = toNpy(new Float32Array(4), [4], '<f4');
    expect(() => fromNpy(full.subarray(0, full.length - 2), 'z.npy')).toThrow(
      'z.npy: shape (4) needs 16 bytes, has 14',
    );
  });
});
