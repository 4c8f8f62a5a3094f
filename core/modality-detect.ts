/**
 * Which modality an upload is: the one definition Validate applies (and the tests walk).
 *
 * Precedence, exactly (issue 21's contract):
 * 1. A DICOM Modality that sonomark reads (US, CR, DX: DICOM_MODALITIES) decides. An *explicit*
 *    contrary hint (the sidecar's `modality`, the upload key's folder, which is also where an
 *    explicitly given `--modality` arrives) is refused as MODALITY_CONFLICT: one of the two is wrong,
 *    and guessing which would analyse the scan with the wrong extractor.
 * 2. Else the sidecar's `modality`.
 * 3. Else the upload key's folder: `uploads/{site}/{study}/xray/...` or `.../ultrasound/...`
 *    (the first path segment below the study).
 * 4. Else a hint given without being asked for (the sidecar's `defaultModality`: the CLI's default
 *    `--modality ultrasound`), which never conflicts with anything.
 * 5. Else a video is ultrasound (every clip sonomark analysed before X-rays).
 * 6. Else (a still image) the upload is refused as MODALITY_REQUIRED: a still is never guessed
 *    into a modality.
 * Other DICOM Modality values (OT, SC, MR, ...) decide nothing: the hints apply as for any file.
 *
 * An X-ray is one image: a video given the X-ray modality is refused (UNSUPPORTED_MODALITY)
 * rather than reduced to one of its frames.
 */
import { DICOM_MODALITIES, MODALITIES, MODALITY_LABELS, type Modality } from './modality';
import { formatRow } from './formats';
import type { MediaContainer, ProblemDetail, SidecarMetadata } from './schemas';

/** Where a modality came from, in precedence order (kept on logs, never a file name). */
export type ModalitySource = 'dicom' | 'sidecar' | 'key' | 'default' | 'video';

export interface ModalityEvidence {
  /** DICOM uploads only: the header's Modality (0008,0060) code string, absent when the header has none. */
  readonly dicomModality?: string;
  /** The sidecar's explicit `modality`. */
  readonly sidecarModality?: Modality;
  /** A hint that is only a default (the sidecar's `defaultModality`): used when nothing else decides. */
  readonly defaultModality?: Modality;
  /** The path below the study (UploadKey.fileName): its first folder may name the modality. */
  readonly fileName: string;
  /** `video`: more than one frame can be in it (a clip format, a multi-frame DICOM); `still`: one image. */
  readonly kind: 'video' | 'still';
  /** What the file is, for messages ("PNG still", "DICOM"): a format's name, never the file's. */
  readonly formatName: string;
}

export type ModalityDecision =
  | { readonly ok: true; readonly modality: Modality; readonly source: ModalitySource }
  | { readonly ok: false; readonly problem: ProblemDetail };

/** Each modality as people write it. */
export const MODALITY_NAMES: Readonly<Record<Modality, string>> = { ultrasound: 'ultrasound', xray: 'X-ray' };
const NAMES = MODALITY_NAMES;

/** The modality the key's folder names: the first segment below the study, when more follows it. */
export function keyFolderModality(fileName: string): Modality | undefined {
  const slash = fileName.indexOf('/');
  if (slash <= 0) return undefined;
  const folder = fileName.slice(0, slash);
  return (MODALITIES as readonly string[]).includes(folder) ? (folder as Modality) : undefined;
}

/** How an uploader gives the modality: said in every refusal. */
export const HOW_TO_GIVE_MODALITY =
  `Give it as "modality": "${MODALITIES.join('" or "')}" in the sidecar {file}.meta.json, ` +
  `or upload the file under uploads/{site}/{study}/${MODALITIES.join('/ or .../')}/, ` +
  `or with the CLI: sonomark analyze --modality ${MODALITIES.join('|')}.`;

export function detectModality(e: ModalityEvidence): ModalityDecision {
  const fromKey = keyFolderModality(e.fileName);
  const fromDicom = e.dicomModality !== undefined ? DICOM_MODALITIES[e.dicomModality] : undefined;

  let decided: { modality: Modality; source: ModalitySource } | undefined;
  if (fromDicom && e.dicomModality !== undefined) {
    const contrary = [
      e.sidecarModality !== undefined && e.sidecarModality !== fromDicom
        ? `the sidecar's "modality" says ${e.sidecarModality}`
        : undefined,
      fromKey !== undefined && fromKey !== fromDicom ? `the upload folder says ${fromKey}` : undefined,
    ].filter((x): x is string => x !== undefined);
    if (contrary.length > 0) {
      return refuse(
        'MODALITY_CONFLICT',
        `The DICOM header's Modality is ${e.dicomModality} (${NAMES[fromDicom]}), but ${contrary.join(' and ')}. ` +
          'The DICOM Modality decides: remove or correct the contrary hint (the sidecar\'s "modality", ' +
          'the upload folder, or --modality).',
      );
    }
    decided = { modality: fromDicom, source: 'dicom' };
  } else if (e.sidecarModality !== undefined) decided = { modality: e.sidecarModality, source: 'sidecar' };
  else if (fromKey !== undefined) decided = { modality: fromKey, source: 'key' };
  else if (e.defaultModality !== undefined) decided = { modality: e.defaultModality, source: 'default' };
  else if (e.kind === 'video') decided = { modality: 'ultrasound', source: 'video' };

  if (!decided) {
    const dicomNote =
      e.dicomModality !== undefined
        ? ` Its DICOM Modality ${e.dicomModality} is not one that decides (${Object.keys(DICOM_MODALITIES).join(', ')}).`
        : '';
    return refuse(
      'MODALITY_REQUIRED',
      `This ${e.formatName} is a still image with no modality given, and a still image is never guessed into one ` +
        `(sonomark reads ${MODALITIES.map((m) => NAMES[m]).join(' and ')}).${dicomNote} ${HOW_TO_GIVE_MODALITY}`,
    );
  }
  if (decided.modality === 'xray' && e.kind === 'video') {
    return refuse(
      'UNSUPPORTED_MODALITY',
      `The ${modalityHintName(decided.source)} says X-ray, but this ${e.formatName} is a video: an X-ray is one image ` +
        `(its extractor reads one frame and its outputs are ${MODALITY_LABELS.xray.join(', ')}). ` +
        'Upload the radiograph as a PNG, JPEG or single-frame DICOM file, or give the clip the ultrasound modality.',
    );
  }
  return { ok: true, ...decided };
}

function modalityHintName(source: ModalitySource): string {
  switch (source) {
    case 'dicom':
      return 'DICOM Modality';
    case 'sidecar':
      return 'sidecar\'s "modality"';
    case 'key':
      return 'upload folder';
    case 'default':
      return 'default modality';
    case 'video':
      return 'clip';
  }
}

function refuse(code: string, message: string): ModalityDecision {
  return { ok: false, problem: { code, message } };
}

/** What an upload's first bytes, sidecar and key say about its modality (Validate and the cohort plan). */
export interface UploadModalityEvidence {
  readonly container: MediaContainer;
  /** DICOM only: what its header says (core/dicom/header.ts readDicomHead). */
  readonly dicom?: { readonly modality?: string | undefined; readonly numberOfFrames?: number | undefined };
  /** The valid sidecar's hints, if any. */
  readonly sidecar?: Pick<SidecarMetadata, 'modality' | 'defaultModality'>;
  /** The path below the study (UploadKey.fileName). */
  readonly fileName: string;
}

/** detectModality on an upload: its kind from the format table, or from a DICOM header's Number of Frames. */
export function decideUploadModality(u: UploadModalityEvidence): ModalityDecision {
  const row = formatRow(u.container);
  const video = u.container === 'dicom' ? (u.dicom?.numberOfFrames ?? 1) > 1 : row?.kind !== 'still';
  return detectModality({
    ...(u.dicom?.modality !== undefined ? { dicomModality: u.dicom.modality } : {}),
    ...(u.sidecar?.modality ? { sidecarModality: u.sidecar.modality } : {}),
    ...(u.sidecar?.defaultModality ? { defaultModality: u.sidecar.defaultModality } : {}),
    fileName: u.fileName,
    kind: video ? 'video' : 'still',
    formatName: row?.name ?? u.container,
  });
}
