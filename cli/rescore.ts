/** `sonomark rescore`: every stored scan's features scored again by expert versions, no decode, no extractor. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { UsageError, type CliContext } from './context';
import { existingDir } from './inputs';
import { integerAtLeast, list } from './options';

interface RescoreOptions {
  dataDir: string;
  experts?: string[];
  modelsDir?: string;
  concurrency?: number;
  json?: boolean;
}

export const DEFAULT_DATA_DIR = '.sonomark/local';

export function registerRescore(program: Command, ctx: CliContext): void {
  program
    .command('rescore')
    .summary('re-score stored features with expert versions (no GPU, no decode)')
    .description(
      "Score every stored scan's features document again with the manifest's experts (or the NAME@VERSION " +
        'given), through the Score step’s own code. The new version’s result is stored beside the earlier ' +
        'ones and becomes the current one; no frame is decoded and no extractor runs.',
    )
    .option('--data-dir <DIR>', `data directory that "sonomark analyze --data-dir" filled`, DEFAULT_DATA_DIR)
    .option('--experts <LIST>', 'NAME@VERSION,... (default: every expert of the manifest, at its version)', list)
    .option(
      '--models-dir <DIR>',
      "manifest to read the experts from (default: DIR/models when it exists, else the package's models/)",
    )
    .option('--concurrency <N>', 'scans scored at once (default: 8)', integerAtLeast(1))
    .option('--json', 'print the summary as one JSON object on stdout')
    .addHelpText(
      'after',
      `
A scan whose current result is already that version is left alone, so a second
run changes nothing. "sonomark experts publish" or "sonomark experts train
--data-dir DIR --version X.Y.Z" put a new version into DIR/models first.

Examples:
  $ sonomark rescore --data-dir .sonomark/local
  $ sonomark rescore --data-dir .sonomark/local --experts diagnosis@1.2.0

Exit status: 0 when no scan failed, 1 when any did, 2 on a usage error.`,
    )
    .action(async (opts: RescoreOptions) => ctx.exit(await rescore(opts, ctx)));
}

async function rescore(opts: RescoreOptions, { out, err }: CliContext): Promise<number> {
  existingDir(opts.modelsDir, '--models-dir');
  const nothingYet = `Nothing has been analysed into ${opts.dataDir} yet: run "sonomark analyze --data-dir ${opts.dataDir} FILE..." first.`;
  if (!existsSync(path.join(opts.dataDir, 'dynamodb'))) throw new UsageError(nothingYet);
  const [{ loadManifest }, { ModelError }, models, rescoreMod, { startLocalServices }, names] = await Promise.all([
    import('../core/manifest'),
    import('../core/errors'),
    import('../local/models'),
    import('../local/rescore'),
    import('../local/services'),
    import('../local/names'),
  ]);
  const loaded = loadManifest(models.resolveModelsDir(opts));
  let experts;
  try {
    experts = rescoreMod.selectExperts(loaded.manifest, opts.experts);
  } catch (e) {
    if (e instanceof ModelError) throw new UsageError(e.message);
    throw e;
  }
  if (experts.length === 0) throw new UsageError(`The manifest in ${loaded.dir} has no experts to score with.`);
  err.write(`Re-scoring with ${experts.map((e) => `${e.name}@${e.version}`).join(', ')} (models: ${loaded.dir})\n`);
  const services = await startLocalServices(opts.dataDir);
  try {
    const store = {
      s3: services.s3,
      doc: services.doc,
      table: names.LOCAL_TABLE,
      artifactsBucket: names.LOCAL_ARTIFACTS_BUCKET,
    };
    let summary;
    try {
      summary = await rescoreMod.rescoreStoredScans(store, loaded, experts, {
        concurrency: opts.concurrency,
        onScan: (o) => {
          if (o.status === 'failed' || o.status === 'skipped') err.write(`${o.status} ${o.scanId}: ${o.reason}\n`);
        },
      });
    } catch (e) {
      if ((e as { name?: string }).name === 'ResourceNotFoundException') throw new UsageError(nothingYet);
      throw e;
    }
    const rate = summary.seconds > 0 ? summary.scans / summary.seconds : 0;
    if (opts.json) {
      const { outcomes, ...rest } = summary;
      out.write(JSON.stringify({ ...rest, clipsPerS: rate, outcomes }) + '\n');
    } else {
      out.write(
        `${summary.scans} stored scans: ${summary.rescored} re-scored, ${summary.unchanged} already current, ` +
          `${summary.skipped} skipped, ${summary.failed} failed (${summary.seconds.toFixed(2)} s, ${rate.toFixed(0)} scans/s; no frame decoded)\n`,
      );
    }
    return summary.failed > 0 ? 1 : 0;
  } finally {
    await services.close();
  }
}
