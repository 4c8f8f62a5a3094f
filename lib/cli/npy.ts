/** NumPy .npy (format 1.0) writer, so training reads the CLI's frames with `numpy.load`. */
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
