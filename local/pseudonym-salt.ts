/**
 * The DICOM pseudonym salt of local mode. Local mode runs the cloud's code path: the extractor
 * reads (or creates) the salt object in the local artifacts bucket (core/dicom/salt-object.ts),
 * whose s3rver store lives in the data dir, so there is one salt per data dir. With
 * `--data-dir` the pseudonyms are stable across runs on that dir (and only there); without
 * it each run's temp dir gets a fresh salt, so they link scans within a run.
 *
 * Two local-only inputs remain: $DICOM_PSEUDONYM_SALT, a fixed salt used instead of the
 * object; and the salt file earlier versions kept in the data dir (`dicom-pseudonym-salt`),
 * which becomes the object's content when the bucket has none, so a data dir keeps its pseudonyms.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ENV } from '../core/contract';
import { checkPseudonymSalt } from '../core/dicom/pseudonym';
import { parseSaltObject, type SaltObjectOptions } from '../core/dicom/salt-object';

/** The salt file of earlier versions, read only to seed the salt object. */
export const LEGACY_SALT_FILE = 'dicom-pseudonym-salt';

/** A fixed salt ($DICOM_PSEUDONYM_SALT, checked now), or how to create the salt object when the bucket has none. */
export function localPseudonymSalt(
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
): { readonly fixed: string } | { readonly object: SaltObjectOptions } {
  const fromEnv = env[ENV.dicomPseudonymSalt];
  if (fromEnv) return { fixed: checkPseudonymSalt(fromEnv) };
  const legacy = path.join(dataDir, LEGACY_SALT_FILE);
  return {
    object: existsSync(legacy) ? { create: () => parseSaltObject(readFileSync(legacy, 'utf8'), legacy) } : {},
  };
}
