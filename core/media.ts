/**
 * Container sniffing from magic bytes. The file extension is never trusted: a
 * site's export tool may name an AVI ".mp4", and a renamed DICOM is still DICOM.
 */
import type { MediaContainer } from './schemas';

export interface UnsupportedMedia {
  /** Human-readable reason, naming what the bytes look like and what is accepted. */
  readonly unsupported: string;
}

export const ACCEPTED_FORMATS =
  'MP4, MOV, AVI, GIF, MPEG (program or transport stream) video, a JPEG/PNG still, or a DICOM Part 10 image or cine loop';

/** Bytes sniffContainer needs to decide; the DICOM preamble is the longest (132). */
export const SNIFF_BYTES = 4096;

const ascii = (head: Uint8Array, offset: number, length: number): string =>
  head.length >= offset + length ? Buffer.from(head.subarray(offset, offset + length)).toString('latin1') : '';

const startsWith = (head: Uint8Array, bytes: readonly number[], offset = 0): boolean =>
  head.length >= offset + bytes.length && bytes.every((b, i) => head[offset + i] === b);

// QuickTime atoms that may open a file with no ftyp (old .mov files).
const QUICKTIME_ATOMS = new Set(['moov', 'mdat', 'wide', 'free', 'skip', 'pnot']);

export function isUnsupported(result: MediaContainer | UnsupportedMedia): result is UnsupportedMedia {
  return typeof result === 'object';
}

/** Identifies the container from the first bytes of a file. */
export function sniffContainer(head: Uint8Array): MediaContainer | UnsupportedMedia {
  if (head.length === 0) return { unsupported: `The file is empty. Upload a clip as ${ACCEPTED_FORMATS}.` };

  // ISO base media (MP4) and QuickTime: [size:4]['ftyp'][major brand:4]
  if (ascii(head, 4, 4) === 'ftyp') {
    const brand = ascii(head, 8, 4);
    if (brand === 'qt  ') return 'mov';
    if (/^(heic|heix|mif1|msf1|avif)$/.test(brand)) {
      return {
        unsupported: `The file is a HEIF/AVIF image (brand "${brand.trim()}"), which is not supported. Accepted: ${ACCEPTED_FORMATS}.`,
      };
    }
    return 'mp4';
  }
  if (QUICKTIME_ATOMS.has(ascii(head, 4, 4))) return 'mov';

  if (ascii(head, 0, 4) === 'RIFF') {
    const form = ascii(head, 8, 4);
    if (form === 'AVI ') return 'avi';
    return {
      unsupported: `The file is a RIFF "${form.trim() || '?'}" file, not an AVI video. Accepted: ${ACCEPTED_FORMATS}.`,
    };
  }

  const gif = ascii(head, 0, 6);
  if (gif === 'GIF87a' || gif === 'GIF89a') return 'gif';

  // MPEG-1/2 program stream pack header, or a bare video elementary stream sequence header.
  if (startsWith(head, [0x00, 0x00, 0x01, 0xba]) || startsWith(head, [0x00, 0x00, 0x01, 0xb3])) return 'mpeg';
  if (isTransportStream(head)) return 'mpeg';

  if (startsWith(head, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';

  // DICOM Part 10: 128-byte preamble, then "DICM" (its header is checked by core/dicom).
  if (ascii(head, 128, 4) === 'DICM') return 'dicom';

  return {
    unsupported: `The file's first bytes (${describe(head)}) match no supported format. Accepted: ${ACCEPTED_FORMATS}; the file extension is not used to decide.`,
  };
}

/** MPEG-TS: the sync byte 0x47 opens every 188-byte packet (checked over the packets the head covers, at least 2). */
function isTransportStream(head: Uint8Array): boolean {
  const packets = Math.min(5, Math.floor(head.length / 188));
  if (packets < 2 && !(packets === 1 && head.length === 188)) return false;
  for (let i = 0; i < packets; i++) if (head[i * 188] !== 0x47) return false;
  return true;
}

function describe(head: Uint8Array): string {
  const hex = Buffer.from(head.subarray(0, 8)).toString('hex').replace(/(..)/g, '$1 ').trim();
  const text = ascii(head, 0, Math.min(8, head.length)).replace(/[^\x20-\x7e]/g, '.');
  return `hex ${hex}, text "${text}"`;
}
