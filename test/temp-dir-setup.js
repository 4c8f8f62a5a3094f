/**
 * Every jest run gets its own temp dir: TMPDIR points into it for the tests, the
 * workers and every process they start, and test/temp-dir-teardown.js removes it,
 * failing the run if a test left anything behind.
 */
const { mkdtempSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

module.exports = async function setup() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sonomark-jest-'));
  process.env.SONOMARK_JEST_TMPDIR = dir;
  process.env.SONOMARK_JEST_ORIGINAL_TMPDIR = process.env.TMPDIR ?? '';
  process.env.TMPDIR = dir;
};
