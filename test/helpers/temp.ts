/**
 * Temp dirs for tests that are removed with the test file: importing this module
 * registers one afterAll (in each test file that imports it, since jest gives every
 * test file its own modules) that removes every dir `tempDir` made there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory under the temp dir, removed after the last test of the file. */
export function tempDir(prefix = 'sonomark-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}
