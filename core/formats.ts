/**
 * THE format table: one row per accepted input. It drives
 * - the sniffer (core/media.ts): magic bytes, in row order, never the file extension;
 * - the decoder (gpu-tasks/feature-extractor/src/decode.ts): the ffmpeg demuxer it forces
 *   for the sniffed row, and the -format_whitelist (every row's demuxers, nothing more);
 * - directory mode (cli/inputs.ts): which file name endings a folder contributes;
 * - the documentation: renderFormatTable() prints the README's table.
 * So Validate and the GPU job cannot disagree about a format again (an MPEG transport
 * stream used to pass Validate and then fail in the paid GPU job).
 */
import type { MediaContainer } from './schemas';

export type FormatKind = 'clip' | 'still';

/** Who turns the bytes into frames. */
export type FormatReader = 'ffmpeg' | 'dicom';

export interface FormatRow {
  /** The container id stored on the scan (ScanRef.container). */
  readonly id: MediaContainer;
  /** What users call it. */
  readonly name: string;
  readonly kind: FormatKind;
  /** Lower-case file name endings directory mode picks up (with the dot); the bytes decide anyway. */
  readonly extensions: readonly string[];
  /** The magic bytes, for the documentation. */
  readonly magic: string;
  /** Whether the first bytes of a file are this format. */
  readonly sniff: (head: Uint8Array) => boolean;
  readonly reader: FormatReader;
  /** ffmpeg demuxer forced for this row (reader ffmpeg); it is also on the whitelist. */
  readonly demuxer?: string;
  /** What Validate reads from the header before any GPU job (see core/media-header.ts). */
  readonly header: string;
  /**
   * False while a row's reader is not in this build: the row is recognised (a clear
   * message), not accepted.
   */
  readonly accepted: boolean;
}

export const ascii = (head: Uint8Array, offset: number, length: number): string =>
  head.length >= offset + length ? Buffer.from(head.subarray(offset, offset + length)).toString('latin1') : '';

export const startsWith = (head: Uint8Array, bytes: readonly number[], offset = 0): boolean =>
  head.length >= offset + bytes.length && bytes.every((b, i) => head[offset + i] === b);

// QuickTime atoms that may open a file with no ftyp (old .mov files).
const QUICKTIME_ATOMS = new Set(['moov', 'mdat', 'wide', 'free', 'skip', 'pnot']);
// ISO brands of still images (HEIF/AVIF) that share MP4's ftyp box: refused, not decoded as video.
export const HEIF_BRANDS = /^(heic|heix|mif1|msf1|avif)$/;

const isFtyp = (h: Uint8Array): boolean => ascii(h, 4, 4) === 'ftyp';
const isEbml = (h: Uint8Array): boolean => startsWith(h, [0x1a, 0x45, 0xdf, 0xa3]);

/** The EBML DocType ("webm", "matroska") from the header element at the start of the file, if present. */
export function ebmlDocType(head: Uint8Array): string | undefined {
  if (!isEbml(head)) return undefined;
  // DocType element id 0x4282, a one-byte size (0x80 | n) and n bytes of ASCII, within the EBML header.
  const limit = Math.min(head.length - 3, 64);
  for (let i = 4; i < limit; i++) {
    if (head[i] === 0x42 && head[i + 1] === 0x82) {
      const len = (head[i + 2] as number) & 0x7f;
      if (((head[i + 2] as number) & 0x80) === 0 || len === 0 || i + 3 + len > head.length) return undefined;
      return ascii(head, i + 3, len);
    }
  }
  return undefined;
}

/** MPEG-TS: the sync byte 0x47 opens every 188-byte packet (checked over the packets the head covers, at least 2). */
export function isTransportStream(head: Uint8Array): boolean {
  const packets = Math.min(5, Math.floor(head.length / 188));
  if (packets < 2 && !(packets === 1 && head.length === 188)) return false;
  for (let i = 0; i < packets; i++) if (head[i * 188] !== 0x47) return false;
  return true;
}

/** BMP: "BM", reserved bytes zero, and a known DIB header size (the two letters alone open text files too). */
function isBmp(head: Uint8Array): boolean {
  if (ascii(head, 0, 2) !== 'BM' || head.length < 18) return false;
  const view = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  return view.readUInt32LE(6) === 0 && [12, 40, 52, 56, 64, 108, 124].includes(view.readUInt32LE(14));
}

/** The accepted inputs, in sniffing order (the first row whose `sniff` matches wins). */
export const FORMATS: readonly FormatRow[] = [
  {
    id: 'mp4',
    name: 'MP4 (M4V)',
    kind: 'clip',
    extensions: ['.mp4', '.m4v'],
    magic: '`ftyp` box at byte 4 (any brand but `qt  ` and HEIF/AVIF)',
    sniff: (h) => isFtyp(h) && ascii(h, 8, 4) !== 'qt  ' && !HEIF_BRANDS.test(ascii(h, 8, 4)),
    reader: 'ffmpeg',
    demuxer: 'mov',
    header:
      'duration (mvhd), size (tkhd), frame count (stsz), video track present; an index at the end is found with ranged reads (up to 8 MiB)',
    accepted: true,
  },
  {
    id: 'mov',
    name: 'QuickTime MOV',
    kind: 'clip',
    extensions: ['.mov', '.qt'],
    magic: '`ftyp` box with brand `qt  `, or a `moov`/`mdat`/`wide`/`free` atom first',
    sniff: (h) => (isFtyp(h) && ascii(h, 8, 4) === 'qt  ') || (!isFtyp(h) && QUICKTIME_ATOMS.has(ascii(h, 4, 4))),
    reader: 'ffmpeg',
    demuxer: 'mov',
    header:
      'duration (mvhd), size (tkhd), frame count (stsz), video track present; an index at the end is found with ranged reads (up to 8 MiB)',
    accepted: true,
  },
  {
    id: 'avi',
    name: 'AVI',
    kind: 'clip',
    extensions: ['.avi'],
    magic: '`RIFF` … `AVI `',
    sniff: (h) => ascii(h, 0, 4) === 'RIFF' && ascii(h, 8, 4) === 'AVI ',
    reader: 'ffmpeg',
    demuxer: 'avi',
    header: 'frame count, duration and size (avih)',
    accepted: true,
  },
  {
    id: 'mpeg',
    name: 'MPEG program stream',
    kind: 'clip',
    extensions: ['.mpeg', '.mpg'],
    magic: '`00 00 01 BA` (pack header)',
    sniff: (h) => startsWith(h, [0x00, 0x00, 0x01, 0xba]),
    reader: 'ffmpeg',
    demuxer: 'mpeg',
    header: 'size (MPEG-1/2 sequence header, when in the first bytes)',
    accepted: true,
  },
  {
    id: 'm2v',
    name: 'MPEG-1 or MPEG-2 video stream',
    kind: 'clip',
    extensions: ['.m1v', '.m2v'],
    magic: '`00 00 01 B3` (sequence header)',
    sniff: (h) => startsWith(h, [0x00, 0x00, 0x01, 0xb3]),
    reader: 'ffmpeg',
    demuxer: 'mpegvideo',
    header: 'size (sequence header)',
    accepted: true,
  },
  {
    id: 'mpegts',
    name: 'MPEG transport stream',
    kind: 'clip',
    extensions: ['.ts', '.mts'],
    magic: '`47` every 188 bytes',
    sniff: isTransportStream,
    reader: 'ffmpeg',
    demuxer: 'mpegts',
    header: 'size (MPEG-2 sequence header, when in the first bytes)',
    accepted: true,
  },
  {
    id: 'gif',
    name: 'GIF (animated)',
    kind: 'clip',
    extensions: ['.gif'],
    magic: '`GIF87a` / `GIF89a`',
    sniff: (h) => ['GIF87a', 'GIF89a'].includes(ascii(h, 0, 6)),
    reader: 'ffmpeg',
    demuxer: 'gif',
    header: 'size (logical screen); a file that ends after the header has no image',
    accepted: true,
  },
  {
    id: 'webm',
    name: 'WebM',
    kind: 'clip',
    extensions: ['.webm'],
    magic: 'EBML `1A 45 DF A3`, DocType `webm`',
    sniff: (h) => ebmlDocType(h) === 'webm',
    reader: 'ffmpeg',
    demuxer: 'matroska',
    header:
      'duration (Info), size and frame rate (Tracks), video track present; Info/Tracks past the head via the SeekHead',
    accepted: true,
  },
  {
    id: 'mkv',
    name: 'Matroska MKV',
    kind: 'clip',
    extensions: ['.mkv'],
    magic: 'EBML `1A 45 DF A3`, DocType `matroska`',
    sniff: (h) => ebmlDocType(h) === 'matroska',
    reader: 'ffmpeg',
    demuxer: 'matroska',
    header:
      'duration (Info), size and frame rate (Tracks), video track present; Info/Tracks past the head via the SeekHead',
    accepted: true,
  },
  {
    id: 'jpeg',
    name: 'JPEG still',
    kind: 'still',
    extensions: ['.jpg', '.jpeg'],
    magic: '`FF D8 FF`',
    sniff: (h) => startsWith(h, [0xff, 0xd8, 0xff]),
    reader: 'ffmpeg',
    demuxer: 'jpeg_pipe',
    header: 'size (SOF marker)',
    accepted: true,
  },
  {
    id: 'png',
    name: 'PNG still',
    kind: 'still',
    extensions: ['.png'],
    magic: '`89 50 4E 47 0D 0A 1A 0A`',
    sniff: (h) => startsWith(h, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    reader: 'ffmpeg',
    demuxer: 'png_pipe',
    header: 'size (IHDR)',
    accepted: true,
  },
  {
    id: 'bmp',
    name: 'BMP still',
    kind: 'still',
    extensions: ['.bmp'],
    magic: '`BM`, reserved zero, DIB header size',
    sniff: isBmp,
    reader: 'ffmpeg',
    demuxer: 'bmp_pipe',
    header: 'size (DIB header)',
    accepted: true,
  },
  {
    // Handled by the DICOM reader (core/dicom/, gpu-tasks/feature-extractor/src/dicom.ts), not by ffmpeg.
    id: 'dicom',
    name: 'DICOM Part 10',
    kind: 'clip',
    extensions: ['.dcm'],
    magic: '`DICM` at byte 128',
    sniff: (h) => ascii(h, 128, 4) === 'DICM',
    reader: 'dicom',
    header: 'modality, rows, columns, frames, transfer syntax, pixel data (core/dicom)',
    accepted: true,
  },
];

/** Rows accepted in this build. */
export const ACCEPTED_FORMAT_ROWS: readonly FormatRow[] = FORMATS.filter((f) => f.accepted);

/** "MP4 / M4V, QuickTime MOV, … video, or a JPEG, PNG or BMP still": the accepted list in every message. */
export const ACCEPTED_FORMATS: string = (() => {
  const names = (kind: FormatKind) =>
    ACCEPTED_FORMAT_ROWS.filter((f) => f.kind === kind).map((f) => f.name.replace(/ still$/, ''));
  const list = (xs: string[]) => (xs.length <= 1 ? xs.join('') : `${xs.slice(0, -1).join(', ')} or ${xs.at(-1)}`);
  return `${names('clip').join(', ')} video, or a ${list(names('still'))} still`;
})();

/** The ffmpeg -format_whitelist: every accepted row's demuxer and nothing more (no playlists). */
export const FFMPEG_FORMAT_WHITELIST: string = [
  ...new Set(ACCEPTED_FORMAT_ROWS.flatMap((f) => (f.reader === 'ffmpeg' && f.demuxer ? [f.demuxer] : []))),
].join(',');

/** File name endings directory mode takes (every row's, DICOM included once its reader lands). */
export const MEDIA_EXTENSIONS: ReadonlySet<string> = new Set(ACCEPTED_FORMAT_ROWS.flatMap((f) => f.extensions));

export function formatRow(id: string): FormatRow | undefined {
  return FORMATS.find((f) => f.id === id);
}

/** The README table of accepted inputs, rendered from FORMATS. */
export function renderFormatTable(): string {
  const rows = FORMATS.map((f) => [
    f.name,
    f.kind === 'still' ? 'still (one frame)' : 'clip',
    f.extensions.map((e) => `\`${e}\``).join(' ') + (f.accepted ? '' : ' (once its reader is in the build)'),
    f.magic,
    f.reader === 'dicom' ? 'the DICOM reader' : `ffmpeg \`${f.demuxer ?? ''}\``,
    f.header,
  ]);
  const head = [
    'format',
    'kind',
    'directory mode picks',
    'recognised by (bytes, never the name)',
    'decoded by',
    'checked in Validate',
  ];
  return markdownTable(head, rows);
}

export function markdownTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}
