/**
 * The DICOM pseudonym salt of local mode: $DICOM_PSEUDONYM_SALT when set; otherwise a random
 * 256-bit secret kept in the data dir (`dicom-pseudonym-salt`, mode 0600), made on first use.
 * With `--data-dir` the pseudonyms are therefore stable across runs on that dir (and only
 * there); without it each run's temp dir gets a fresh salt, so they link scans within a run.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ENV } from '../core/contract';
import { checkPseudonymSalt } from '../core/dicom/pseudonym';

export const LOCAL_SALT_FILE = 'dicom-pseudonym-salt';

export function localPseudonymSalt(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[ENV.dicomPseudonymSalt];
  if (fromEnv) return checkPseudonymSalt(fromEnv);
  const file = path.join(dataDir, LOCAL_SALT_FILE);
  if (existsSync(file)) return checkPseudonymSalt(readFileSync(file, 'utf8').trim());
  const salt = randomBytes(32).toString('hex');
  writeFileSync(file, `${salt}\n`, { mode: 0o600, flag: 'wx' });
  return salt;
}
