/**
 * Writes the deterministic FIXTURE models and their manifest into the directory
 * given as the first argument (never models/ by default: that holds the trained set). Fixtures are NOT trained; see
 * training/onnx/fixture-models.ts. Byte-for-byte reproducible: running it twice gives
 * the same sha256s, and test/unit/onnx-fixtures.test.ts fails if the committed
 * files drift from this script.
 *
 *   npx tsx training/make-fixture-models.ts OUT_DIR
 */
import * as path from 'node:path';
import { writeFixtureModels } from './onnx/fixture-models';
import { manifestExtractors } from '../core/manifest';

if (!process.argv[2]) {
  console.error('usage: npx tsx training/make-fixture-models.ts OUT_DIR (tests and load tests point MODELS_DIR at it)');
  process.exit(2);
}
const outDir = path.resolve(process.argv[2]);
const { manifest } = writeFixtureModels(outDir);
const entries = [...manifestExtractors(manifest), ...manifest.experts];
for (const e of entries)
  console.log(`${e.sha256}  ${path.join(outDir, e.file)}  (${e.name}@${e.version}, ${e.card.status})`);
console.log(`wrote ${path.join(outDir, 'manifest.json')}`);
