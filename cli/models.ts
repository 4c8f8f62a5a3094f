/** `sonomark models`: the models in the manifest, with name, version, sha256 and card status. */
import * as path from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from './context';
import { modelsBanner } from './format';
import { existingDir } from './inputs';

export function registerModels(program: Command, ctx: CliContext): void {
  program
    .command('models')
    .summary('list the models in the manifest')
    .description('List the extractor and the experts in the manifest: name, version, sha256 prefix, card status.')
    .option('--models-dir <DIR>', "model directory with manifest.json (default: the package's models/)")
    .action(async (opts: { modelsDir?: string }) => {
      const modelsDir = existingDir(opts.modelsDir, '--models-dir');
      const { loadManifest } = await import('../core/manifest');
      ctx.out.write(modelsBanner(loadManifest(modelsDir ? path.resolve(modelsDir) : undefined).manifest) + '\n');
      ctx.exit(0);
    });
}
