/**
 * Writes the deterministic FIXTURE models and their manifest into models/ (or the
 * directory given as the first argument). Fixtures are NOT trained; see
 * lib/onnx/fixture-models.ts. Byte-for-byte reproducible: running it twice gives
 * the same sha256s, and test/unit/onnx-fixtures.test.ts fails if the committed
 * files drift from this script.
 *
 *   npx tsx scripts/make-fixture-models.ts [outDir]
 */
import * as path from 'node:path';
import { writeFixtureModels } from '../lib/onnx/fixture-models';
import { DEFAULT_MODELS_DIR } from '../lib/paths';

const outDir = path.resolve(process.argv[2] ?? DEFAULT_MODELS_DIR);
const { manifest } = writeFixtureModels(outDir);
const entries = [manifest.extractor, ...manifest.experts];
for (const e of entries)
  console.log(`${e.sha256}  ${path.join(outDir, e.file)}  (${e.name}@${e.version}, ${e.card.status})`);
console.log(`wrote ${path.join(outDir, 'manifest.json')}`);
