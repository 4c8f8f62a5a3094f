/** NumPy .npy (format 1.0): the writer gives training the CLI's frames for `numpy.load`; the reader takes training's arrays back. */
export function toNpy(data: Uint8Array | Float32Array, shape: number[], dtype: 'u1' | '<f4'): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype === 'u1' ? '|u1' : '<f4'}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // The whole preamble (magic 6 + version 2 + length 2 + header + '\n') is padded to a multiple of 64.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}

/**
 * NumPy .npy reader for what training writes back: C-order `|u1` or `<f4` arrays, format 1.x
 * (`numpy.save` of a frame stack or of model outputs). Anything else is refused by name.
 */
export function fromNpy(buf: Buffer, source = 'npy'): { shape: number[]; data: Uint8Array | Float32Array } {
  if (buf.length < 10 || buf.subarray(0, 6).toString('latin1') !== '\x93NUMPY' || buf[6] !== 1) {
    throw new Error(`${source}: not a NumPy .npy file of format 1.x`);
  }
  const headerLen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (/'fortran_order':\s*True/.test(header) || shapeText === undefined || (descr !== '|u1' && descr !== '<f4')) {
    throw new Error(`${source}: expected a C-order |u1 or <f4 array, got header ${header.trim()}`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const body = buf.subarray(10 + headerLen);
  const bytes = count * (descr === '<f4' ? 4 : 1);
  if (body.length !== bytes)
    throw new Error(`${source}: shape (${shape.join(', ')}) needs ${bytes} bytes, has ${body.length}`);
  // Copy: a Float32Array view needs 4-byte alignment, which the Buffer's offset does not promise.
  const own = new Uint8Array(body);
  return { shape, data: descr === '<f4' ? new Float32Array(own.buffer) : own };
}
