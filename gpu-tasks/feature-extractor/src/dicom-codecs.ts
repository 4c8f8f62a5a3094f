/**
 * Codecs for encapsulated DICOM pixel data: maintained WASM builds for JPEG baseline
 * (@cornerstonejs/codec-libjpeg-turbo-8bit) and JPEG 2000 (@cornerstonejs/codec-openjpeg),
 * and RLE Lossless (PS3.5 Annex G) here: it is PackBits over at most 15 byte planes, and
 * no maintained npm package decodes it outside a browser viewer bundle.
 */
import { DecodeError } from '../../../core/errors';

/** A decoded frame: samples pixel-interleaved, 8- or 16-bit (16-bit little endian in a Uint16Array). */
export interface CodecFrame {
  readonly width: number;
  readonly height: number;
  readonly components: number;
  readonly samples: Uint8Array | Uint16Array;
}

interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean };
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
interface WasmModule {
  JPEGDecoder?: new () => WasmDecoder;
  J2KDecoder?: new () => WasmDecoder;
}
type Factory = (opts: { print: (s: string) => void; printErr: (s: string) => void }) => Promise<WasmModule>;

const modules = new Map<string, Promise<WasmModule>>();

function wasm(name: 'jpeg' | 'j2k'): Promise<WasmModule> {
  let m = modules.get(name);
  if (!m) {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const factory = (
      name === 'jpeg'
        ? require('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs')
        : require('@cornerstonejs/codec-openjpeg/decodewasmjs')
    ) as Factory;
    /* eslint-enable @typescript-eslint/no-require-imports */
    // OpenJPEG prints progress to stdout, which local mode keeps for results: silence it.
    m = factory({ print: () => {}, printErr: () => {} });
    modules.set(name, m);
  }
  return m;
}

async function decodeWasm(name: 'jpeg' | 'j2k', encoded: Uint8Array): Promise<CodecFrame> {
  const mod = await wasm(name);
  const Decoder = name === 'jpeg' ? mod.JPEGDecoder : mod.J2KDecoder;
  if (!Decoder) throw new DecodeError('DICOM_CODEC_UNAVAILABLE', `The ${name.toUpperCase()} codec did not load.`);
  const decoder = new Decoder();
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded);
    try {
      decoder.decode();
    } catch {
      throw new DecodeError(
        'DICOM_PIXEL_DATA_CORRUPT',
        `The DICOM ${name === 'jpeg' ? 'JPEG' : 'JPEG 2000'} pixel data could not be decoded (damaged or truncated).`,
      );
    }
    const info = decoder.getFrameInfo();
    const decoded = decoder.getDecodedBuffer();
    // Copy out of the WASM heap: the next decode reuses it.
    const samples =
      info.bitsPerSample > 8
        ? new Uint16Array(decoded.buffer.slice(decoded.byteOffset, decoded.byteOffset + decoded.byteLength))
        : Uint8Array.from(decoded);
    return { width: info.width, height: info.height, components: info.componentCount, samples };
  } finally {
    decoder.delete();
  }
}

export function decodeJpegBaseline(encoded: Uint8Array): Promise<CodecFrame> {
  return decodeWasm('jpeg', encoded);
}

export function decodeJpeg2000(encoded: Uint8Array): Promise<CodecFrame> {
  return decodeWasm('j2k', encoded);
}

/**
 * RLE Lossless (PS3.5 Annex G): a 64-byte header (segment count, then 15 offsets), each
 * segment one byte plane PackBits-coded (n ≥ 0: copy n+1 literal bytes; −127 ≤ n ≤ −1:
 * repeat the next byte 1−n times; −128: no-op). Segments run sample by sample, most
 * significant byte first; the result is pixel-interleaved like the other codecs'.
 */
export function decodeRle(
  frame: Uint8Array,
  width: number,
  height: number,
  components: number,
  bytesPerSample: 1 | 2,
): CodecFrame {
  const corrupt = (why: string) =>
    new DecodeError('DICOM_PIXEL_DATA_CORRUPT', `The DICOM RLE pixel data is damaged (${why}).`);
  if (frame.length < 64) throw corrupt('the segment header is truncated');
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  if (segments !== components * bytesPerSample) {
    throw corrupt(`${segments} segments for ${components} sample(s) of ${bytesPerSample} byte(s)`);
  }
  const offsets = Array.from({ length: segments }, (_, i) => view.getUint32(4 + 4 * i, true));
  const pixels = width * height;
  const planes = new Uint8Array(pixels * segments);
  for (let s = 0; s < segments; s++) {
    const start = offsets[s] as number;
    const end = s + 1 < segments ? (offsets[s + 1] as number) : frame.length;
    if (start < 64 || end > frame.length || end < start) throw corrupt('a segment offset is out of range');
    const plane = planes.subarray(s * pixels, (s + 1) * pixels);
    let out = 0;
    let i = start;
    while (i < end && out < pixels) {
      const n = ((frame[i++] as number) << 24) >> 24; // signed byte
      if (n >= 0) {
        const len = Math.min(n + 1, pixels - out, end - i);
        plane.set(frame.subarray(i, i + len), out);
        out += len;
        i += n + 1;
      } else if (n !== -128) {
        const len = Math.min(1 - n, pixels - out);
        plane.fill(frame[i++] as number, out, out + len);
        out += len;
      }
    }
    if (out < pixels) throw corrupt('a segment ends before the frame is complete');
  }
  if (bytesPerSample === 1) {
    if (components === 1) return { width, height, components, samples: planes };
    const samples = new Uint8Array(pixels * components);
    for (let p = 0; p < pixels; p++)
      for (let c = 0; c < components; c++) samples[p * components + c] = planes[c * pixels + p] as number;
    return { width, height, components, samples };
  }
  const samples = new Uint16Array(pixels * components);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < components; c++) {
      const hi = planes[2 * c * pixels + p] as number;
      const lo = planes[(2 * c + 1) * pixels + p] as number;
      samples[p * components + c] = (hi << 8) | lo;
    }
  }
  return { width, height, components, samples };
}
