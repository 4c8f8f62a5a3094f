/**
 * The sidecar local mode uploads beside a file (`{key}.meta.json`, read by Validate): the user's own
 * `FILE.meta.json`, when there is one, with the modality hint of `sonomark analyze --modality` merged
 * in. An explicitly given `--modality` is the sidecar's `modality` (an explicit hint, which a contrary
 * DICOM header refuses); the default, given by nobody, is its `defaultModality` (which never
 * conflicts). core/modality-detect.ts says how Validate weighs them.
 */
import type { Modality } from '../core/modality';

/** The hint a local run gives: the modality, and whether the user named it. null: no hint at all (as a bare upload). */
export type ModalityHint = { readonly modality: Modality; readonly explicit: boolean } | null;

export type LocalSidecar =
  /** The text to upload, or undefined when there is nothing to say (no sidecar object). */
  | { readonly text: string | undefined }
  /** The user's sidecar names another modality than the one given explicitly. */
  | { readonly conflict: string };

/**
 * Merges the hint into the user's sidecar text (undefined: none). A user sidecar that is not a JSON
 * object is uploaded as it is, without the hint: Validate refuses it with the reason (INVALID_SIDECAR),
 * exactly as it would refuse that upload in the cloud.
 */
export function localSidecar(userText: string | undefined, hint: ModalityHint): LocalSidecar {
  let base: Record<string, unknown> = {};
  if (userText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(userText);
    } catch {
      return { text: userText };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { text: userText };
    base = parsed as Record<string, unknown>;
  }
  if (hint?.explicit) {
    if (base.modality !== undefined && base.modality !== hint.modality) {
      return {
        // The user's value is not echoed: a sidecar is free text until Validate has checked it.
        conflict: `its sidecar's "modality" is not ${hint.modality}, but --modality ${hint.modality} was given`,
      };
    }
    base = { ...base, modality: hint.modality };
  } else if (hint && base.defaultModality === undefined) {
    base = { ...base, defaultModality: hint.modality };
  }
  return { text: Object.keys(base).length > 0 || userText !== undefined ? JSON.stringify(base) : undefined };
}
