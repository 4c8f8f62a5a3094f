import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../../core/errors';
import { LOCAL_SALT_FILE, localPseudonymSalt } from '../../../local/pseudonym-salt';
import { tempDir } from '../../helpers/temp';

describe('local mode: the DICOM pseudonym salt', () => {
  it('is made once per data dir (0600) and reused from there', () => {
    const dir = tempDir();
    const salt = localPseudonymSalt(dir, {});
    expect(salt).toMatch(/^[0-9a-f]{64}$/);
    expect(localPseudonymSalt(dir, {})).toBe(salt);
    const file = path.join(dir, LOCAL_SALT_FILE);
    expect(readFileSync(file, 'utf8').trim()).toBe(salt);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('DICOM_PSEUDONYM_SALT overrides it; a short one is a ConfigError', () => {
    const dir = tempDir();
    expect(localPseudonymSalt(dir, { DICOM_PSEUDONYM_SALT: 'a-site-wide-secret-salt' })).toBe(
      'a-site-wide-secret-salt',
    );
    expect(() => localPseudonymSalt(dir, { DICOM_PSEUDONYM_SALT: 'short' })).toThrow(ConfigError);
  });
});
