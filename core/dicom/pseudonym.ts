/**
 * The one link sonomark keeps to a DICOM study and series: a keyed, one-way pseudonym of
 * StudyInstanceUID and SeriesInstanceUID (HMAC-SHA256 with a deployment secret). Scans of
 * one study share a pseudonym, so results can be grouped; without the salt nobody can test
 * a guessed UID against it (UIDs embed dates and device roots and are guessable).
 */
import { createHmac } from 'node:crypto';
import { ENV } from '../contract';
import { ConfigError } from '../errors';

/** Shorter salts are refused: the salt is the only secret in the pseudonym. */
export const MIN_SALT_LENGTH = 16;

export interface DicomPseudonyms {
  /** 32 hex characters: HMAC-SHA256(salt, "study" + StudyInstanceUID), truncated to 128 bits. */
  readonly study: string | undefined;
  readonly series: string | undefined;
}

export function checkPseudonymSalt(salt: string): string {
  if (salt.length < MIN_SALT_LENGTH) {
    throw new ConfigError(
      `Environment variable ${ENV.dicomPseudonymSalt} must be at least ${MIN_SALT_LENGTH} characters (a random secret).`,
    );
  }
  return salt;
}

export function pseudonym(salt: string, kind: 'study' | 'series', uid: string): string {
  return createHmac('sha256', checkPseudonymSalt(salt))
    .update(`sonomark/dicom/${kind}/v1\0${uid.replace(/\0/g, '').trim()}`)
    .digest('hex')
    .slice(0, 32);
}

export function dicomPseudonyms(
  salt: string,
  uids: { readonly study: unknown; readonly series: unknown },
): DicomPseudonyms {
  const uid = (v: unknown) => {
    const x = Array.isArray(v) ? (v[0] as unknown) : v;
    return typeof x === 'string' && x.trim() !== '' ? x : undefined;
  };
  const study = uid(uids.study);
  const series = uid(uids.series);
  return {
    study: study === undefined ? undefined : pseudonym(salt, 'study', study),
    series: series === undefined ? undefined : pseudonym(salt, 'series', series),
  };
}
