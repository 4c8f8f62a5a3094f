/**
 * Container sniffing from magic bytes, driven by the format table (core/formats.ts).
 * The file extension is never trusted: a site's export tool may name an AVI ".mp4",
 * and a renamed DICOM is still DICOM.
 */
import { ACCEPTED_FORMATS, ascii, FORMATS, HEIF_BRANDS, startsWith } from './formats';
import type { MediaContainer } from './schemas';

export { ACCEPTED_FORMATS } from './formats';

export interface UnsupportedMedia {
  /** Human-readable reason, naming what the bytes look like and what is accepted. */
  readonly unsupported: string;
}

/**
 * Bytes Validate keeps from the start of a file: enough to sniff (the DICOM preamble is
 * 132) and to read the container header (an MP4 index at the start, a JPEG's EXIF before
 * its SOF) for the limits checked before any GPU job.
 */
export const SNIFF_BYTES = 64 * 1024;

export function isUnsupported(result: MediaContainer | UnsupportedMedia): result is UnsupportedMedia {
  return typeof result === 'object';
}

/** Files people upload by mistake, named so the message says what the file is. */
const NOT_MEDIA: readonly { readonly what: string; readonly test: (head: Uint8Array, text: string) => boolean }[] = [
  { what: 'a PDF document', test: (_h, t) => t.startsWith('%PDF-') },
  { what: 'a ZIP archive (or an Office document)', test: (h) => startsWith(h, [0x50, 0x4b, 0x03, 0x04]) },
  { what: 'an HTML page', test: (_h, t) => /^<(!doctype html|html|head|body)\b/i.test(t) },
  { what: 'an XML document', test: (_h, t) => t.startsWith('<?xml') },
  { what: 'a JSON document', test: (_h, t) => /^[{[]\s*["{[\]}0-9tfn-]/.test(t) || t === '{}' || t === '[]' },
  { what: 'a WAV audio file', test: (h) => ascii(h, 0, 4) === 'RIFF' && ascii(h, 8, 4) === 'WAVE' },
  { what: 'an MP3 audio file', test: (h) => ascii(h, 0, 3) === 'ID3' },
  { what: 'a gzip archive', test: (h) => startsWith(h, [0x1f, 0x8b]) },
];

/** Identifies the container from the first bytes of a file. */
export function sniffContainer(head: Uint8Array): MediaContainer | UnsupportedMedia {
  if (head.length === 0) return { unsupported: `The file is empty (0 bytes). Upload a clip as ${ACCEPTED_FORMATS}.` };

  if (ascii(head, 4, 4) === 'ftyp' && HEIF_BRANDS.test(ascii(head, 8, 4))) {
    return {
      unsupported: `The file is a HEIF/AVIF image (brand "${ascii(head, 8, 4).trim()}"), which is not accepted. Accepted: ${ACCEPTED_FORMATS}.`,
    };
  }
  for (const row of FORMATS) {
    if (!row.sniff(head)) continue;
    if (row.accepted) return row.id as MediaContainer;
    // A recognised row whose reader is not in this build (DICOM until its reader lands).
    const short = row.name.split(' ')[0] as string;
    return {
      unsupported: `${short} is not supported yet; export the clip as MP4 (or another accepted format: ${ACCEPTED_FORMATS}).`,
    };
  }

  if (ascii(head, 0, 4) === 'RIFF' && ascii(head, 8, 4) !== 'WAVE') {
    const form = ascii(head, 8, 4);
    return {
      unsupported: `The file is a RIFF "${form.trim() || '?'}" file, not an AVI video. Accepted: ${ACCEPTED_FORMATS}.`,
    };
  }
  if (startsWith(head, [0x1a, 0x45, 0xdf, 0xa3])) {
    return {
      unsupported: `The file is an EBML file that is neither WebM nor Matroska. Accepted: ${ACCEPTED_FORMATS}.`,
    };
  }
  const text = Buffer.from(head.subarray(0, 256))
    .toString('latin1')
    .replace(/^\ufeff|^\xef\xbb\xbf/, '')
    .trimStart();
  const known = NOT_MEDIA.find((k) => k.test(head, text));
  if (known) {
    return {
      unsupported: `The file is ${known.what}, not a clip or image (whatever its name says). Accepted: ${ACCEPTED_FORMATS}.`,
    };
  }
  return {
    unsupported: `The file's first bytes (${describe(head)}) match no accepted format. Accepted: ${ACCEPTED_FORMATS}; the file extension is not used to decide.`,
  };
}

function describe(head: Uint8Array): string {
  const hex = Buffer.from(head.subarray(0, 8)).toString('hex').replace(/(..)/g, '$1 ').trim();
  const text = ascii(head, 0, Math.min(8, head.length)).replace(/[^\x20-\x7e]/g, '.');
  return `hex ${hex}, text "${text}"`;
}
