/** Removes the run's temp dir (test/temp-dir-setup.js); fails the run if a test left something in it. */
const { readdirSync, rmSync } = require('node:fs');

// What tools keep there on their own, whoever runs them: onnxruntime's telemetry (.ses,
// mat-debug-<pid>.log, on every session), npm's compile cache (npx) and tsx's cache (cdk.json's app).
const TOOLS_OWN = /^(\.ses|mat-debug-\d+\.log|node-compile-cache|tsx-\d+)$/;

module.exports = async function teardown() {
  const dir = process.env.SONOMARK_JEST_TMPDIR;
  if (!dir) return;
  const original = process.env.SONOMARK_JEST_ORIGINAL_TMPDIR;
  if (original) process.env.TMPDIR = original;
  else delete process.env.TMPDIR;
  const left = readdirSync(dir).filter((name) => !TOOLS_OWN.test(name));
  rmSync(dir, { recursive: true, force: true });
  if (left.length > 0) {
    throw new Error(
      `Tests left ${left.length === 1 ? 'this' : `these ${left.length}`} in the temp dir (now removed): ${left.join(', ')}. ` +
        'Each test removes what it creates (test/helpers/temp.ts makes dirs removed after the file).',
    );
  }
};
