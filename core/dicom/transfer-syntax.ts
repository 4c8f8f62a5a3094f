/**
 * The DICOM transfer syntaxes sonomark decodes, and the words it uses for the ones it does not.
 * One table: Validate rejects what is not here, the decoder dispatches on `codec`, and the
 * README lists the same names.
 */

/** How the pixel data of a transfer syntax is decoded. */
export type DicomCodec = 'native' | 'rle' | 'jpeg-baseline' | 'jpeg2000';

export interface TransferSyntax {
  readonly uid: string;
  readonly name: string;
  readonly codec: DicomCodec;
}

export const SUPPORTED_TRANSFER_SYNTAXES: readonly TransferSyntax[] = [
  { uid: '1.2.840.10008.1.2', name: 'Implicit VR Little Endian', codec: 'native' },
  { uid: '1.2.840.10008.1.2.1', name: 'Explicit VR Little Endian', codec: 'native' },
  // Retired, but archives still hold it (one of the shared GDCM ultrasound samples).
  { uid: '1.2.840.10008.1.2.2', name: 'Explicit VR Big Endian', codec: 'native' },
  { uid: '1.2.840.10008.1.2.1.99', name: 'Deflated Explicit VR Little Endian', codec: 'native' },
  { uid: '1.2.840.10008.1.2.5', name: 'RLE Lossless', codec: 'rle' },
  { uid: '1.2.840.10008.1.2.4.50', name: 'JPEG Baseline (8-bit)', codec: 'jpeg-baseline' },
  { uid: '1.2.840.10008.1.2.4.90', name: 'JPEG 2000 (lossless only)', codec: 'jpeg2000' },
  { uid: '1.2.840.10008.1.2.4.91', name: 'JPEG 2000', codec: 'jpeg2000' },
];

/** Names of encodings a scanner may send that sonomark does not decode, for a clear message. */
const KNOWN_UNSUPPORTED: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (12-bit)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.100': 'MPEG-2 Main Profile',
  '1.2.840.10008.1.2.4.101': 'MPEG-2 Main Profile High Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD-compatible',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 (RPCL) Lossless',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
};

const BY_UID = new Map(SUPPORTED_TRANSFER_SYNTAXES.map((t) => [t.uid, t]));

export function transferSyntax(uid: string): TransferSyntax | undefined {
  return BY_UID.get(uid.trim());
}

/** "RLE Lossless, JPEG Baseline (8-bit), ...": what the error messages say is accepted. */
export const ACCEPTED_TRANSFER_SYNTAXES = [...new Set(SUPPORTED_TRANSFER_SYNTAXES.map((t) => t.name))].join(', ');

/** A transfer syntax UID is a public constant, never an identifier, so naming it in a message is safe. */
export function describeTransferSyntax(uid: string): string {
  const name = KNOWN_UNSUPPORTED[uid] ?? transferSyntax(uid)?.name;
  // A UID is digits and dots; anything else is not echoed (it could be any text).
  const shown = /^[0-9.]{1,64}$/.test(uid) ? uid : 'an unreadable value';
  return name ? `${name} (${shown})` : `an unknown transfer syntax (${shown})`;
}
