/**
 * Step 1 of `npm run train:extractor`: decode the POCUS collection with the
 * extractor's own decoder into a training-set directory (frames .npy,
 * dataset.json, labels.csv).
 *
 *   npx tsx training/export-training-set.ts [--data ../shared/data/pocus] [--out .sonomark/training/pocus]
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { exportPocusTrainingSet } from './datasets/export';
import { DEFAULT_FOLDS } from './datasets/pocus';
import { loadManifest } from '../core/manifest';
import { PACKAGE_ROOT } from '../core/paths';

async function run(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string', default: path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus') },
      out: { type: 'string', default: path.join(PACKAGE_ROOT, '.sonomark', 'training', 'pocus') },
      folds: { type: 'string', default: String(DEFAULT_FOLDS) },
    },
  });
  const { input } = loadManifest().manifest.extractor;
  const started = Date.now();
  const set = await exportPocusTrainingSet(values.data!, values.out!, {
    size: input.size,
    maxFrames: input.maxFrames,
    folds: Number(values.folds),
    log: (l) => process.stderr.write(l + '\n'),
  });
  const frames = set.items.reduce((s, i) => s + i.frames, 0);
  process.stderr.write(
    `${set.items.length} items, ${frames} frames → ${values.out} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
}

run().catch((e: unknown) => {
  process.stderr.write(`export-training-set: ${(e as Error).message}\n`);
  process.exit(1);
});
