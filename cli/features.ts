/** `sonomark features FILE|DIR...`: the manifest's extractor over clips, cached per clip content and extractor. */
import { closeSync, openSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import type { ExecutionProviderChoice, ExtractorSession } from '../gpu-tasks/feature-extractor/src';
import type { CliContext } from './context';
import { existingDir, describeSkipped, expandInputs } from './inputs';

/** training/experts/features-cache DEFAULT_CACHE_DIR, repeated here so --help loads no training code. */
const DEFAULT_CACHE_DIR = '.sonomark';

interface FeaturesOptions {
  cache?: string;
  modelsDir?: string;
  out?: string;
  executionProvider: ExecutionProviderChoice;
}

export function registerFeatures(program: Command, ctx: CliContext): void {
  program
    .command('features')
    .summary("extract features with the manifest's extractor, cached")
    .description(
      "Extract features with the manifest's extractor through the GPU task's own code (decode → ONNX → aggregate), " +
        'cached per clip content and extractor. Writes JSONL {file, name, sha256, cached, features} to stdout or ' +
        '--out; a clip that fails gets a FAILED line on stderr and the others still run.',
    )
    .argument('<FILE|DIR...>', 'clips, or directories searched for clips')
    .option(
      '--cache <DIR>',
      `cache root; documents go to DIR/features/<extractor>-<version>/<sha256>.json (default: ./${DEFAULT_CACHE_DIR})`,
    )
    .option('--models-dir <DIR>', "manifest whose extractor to run (default: the package's models/)")
    .option('--out <FILE>', 'write the JSONL here instead of stdout')
    .addOption(
      new Option('--execution-provider <EP>', 'onnxruntime execution provider; auto: CUDA when installed, else CPU')
        .choices(['auto', 'cpu', 'cuda'] satisfies ExecutionProviderChoice[])
        .default('auto'),
    )
    .addHelpText(
      'after',
      `
Example:
  $ sonomark features --out .sonomark/pocus-features.jsonl ../shared/data/pocus

Exit status: 0 when every clip has features, 1 when any failed, 2 on a usage error.`,
    )
    .action(async (inputs: string[], opts: FeaturesOptions) => ctx.exit(await features(inputs, opts, ctx)));
}

async function features(inputs: string[], opts: FeaturesOptions, { out, err }: CliContext): Promise<number> {
  const files = expandInputs(inputs, (skipped) => err.write(`${describeSkipped(skipped)}\n`));
  const modelsDir = existingDir(opts.modelsDir, '--models-dir');
  if (opts.out) existingDir(path.dirname(path.resolve(opts.out)), `--out ${opts.out}: directory`);
  const [{ loadManifest, extractorFor }, { clipFeatures, featuresCacheDir }, { createExtractorSession }] =
    await Promise.all([
      import('../core/manifest'),
      import('../training/experts/features-cache'),
      import('../gpu-tasks/feature-extractor/src'),
    ]);
  const loaded = loadManifest(modelsDir ? path.resolve(modelsDir) : undefined);
  const entry = extractorFor(loaded.manifest, 'ultrasound');
  const cacheDir = path.resolve(opts.cache ?? DEFAULT_CACHE_DIR);
  err.write(
    `Extractor ${entry.name}@${entry.version} (sha256 ${entry.sha256.slice(0, 16)}…, ${entry.card.status})\n` +
      `Cache     ${featuresCacheDir(cacheDir, entry)}\n`,
  );
  let session: Promise<ExtractorSession> | undefined;
  const fd = opts.out ? openSync(opts.out, 'w') : undefined;
  const write = (line: string) => (fd === undefined ? out.write(line) : writeSync(fd, line));
  let failed = 0;
  let cached = 0;
  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i] as string;
      const t0 = performance.now();
      try {
        const record = await clipFeatures(file, {
          cacheDir,
          entry,
          session: () =>
            (session ??= createExtractorSession(loaded.dir, entry, {
              executionProvider: opts.executionProvider,
              warn: (line) => err.write(line + '\n'),
            })),
          warn: (line) => err.write(`  ${line}\n`),
        });
        if (record.cached) cached++;
        write(JSON.stringify(record) + '\n');
        err.write(
          `[${i + 1}/${files.length}] ${(record.cached ? 'cached' : 'extracted').padEnd(9)} ${Math.round(performance.now() - t0)} ms  ${file}\n`,
        );
      } catch (e) {
        failed++;
        const code = (e as { code?: string }).code;
        // Inputs are checked up front; ENOENT here is a file that went away during the run.
        const why = code === 'ENOENT' ? 'No such file.' : ((e as Error).message ?? String(e));
        err.write(
          `[${i + 1}/${files.length}] FAILED    ${file}: ${code && code !== 'ENOENT' ? `${code}: ` : ''}${why}\n`,
        );
      }
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
    if (session) await (await session.catch(() => undefined))?.release();
  }
  err.write(
    `${files.length - failed} with features (${cached} cached, ${files.length - failed - cached} extracted), ${failed} failed\n`,
  );
  return failed > 0 ? 1 : 0;
}
