import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../../core/errors';
import { LEGACY_SALT_FILE, localPseudonymSalt } from '../../../local/pseudonym-salt';
import { tempDir } from '../../helpers/temp';

describe('local mode: the DICOM pseudonym salt', () => {
  it('is the artifacts bucket salt object, created with a new random salt, in a fresh data dir', () => {
    const salt = localPseudonymSalt(tempDir(), {});
    expect(salt).toEqual({ object: {} });
  });

  it('seeds the object from the salt file an earlier version kept in the data dir, so its pseudonyms stay', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, LEGACY_SALT_FILE), `${'c'.repeat(64)}\n`, { mode: 0o600 });
    const salt = localPseudonymSalt(dir, {});
    expect('object' in salt && salt.object.create?.()).toBe('c'.repeat(64));
  });

  it('refuses a malformed earlier salt file when it would seed the object', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, LEGACY_SALT_FILE), 'short\n', { mode: 0o600 });
    const salt = localPseudonymSalt(dir, {});
    expect(() => 'object' in salt && salt.object.create?.()).toThrow(/malformed .*expected 64 lowercase hex/);
  });

  it('DICOM_PSEUDONYM_SALT overrides it; a short one is a ConfigError', () => {
    const dir = tempDir();
    expect(localPseudonymSalt(dir, { DICOM_PSEUDONYM_SALT: 'a-site-wide-secret-salt' })).toEqual({
      fixed: 'a-site-wide-secret-salt',
    });
    expect(() => localPseudonymSalt(dir, { DICOM_PSEUDONYM_SALT: 'short' })).toThrow(ConfigError);
  });
});
