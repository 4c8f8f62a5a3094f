/**
 * `sonomark train extractor|experts|evaluate`: reproduce the shipped models from ../shared/data/pocus
 * (training/pipeline.ts). The training code loads only when a train command runs: the rest of the CLI
 * never pays for it.
 *
 *   sonomark train extractor [--version X.Y.Z] [--name NAME] [--changes TEXT] [--ship-only] [common]
 *   sonomark train experts [--version X.Y.Z] [common]
 *   sonomark train evaluate [--training-dir DIR] [--models-dir DIR] [--dry-run]
 *   sonomark train xray [--cxr-data DIR] [--version X.Y.Z] [--name NAME] [--quick] [--skip-anchor] [--ship-only] [common]
 *   common: --data DIR --training-dir DIR --models-dir DIR --dry-run
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import { UsageError, type CliContext } from './context';
import { Preprocessing } from '../core/schemas';

interface CommonFlags {
  readonly trainingDir?: string;
  readonly modelsDir?: string;
  readonly dryRun?: boolean;
}
interface DataFlags extends CommonFlags {
  readonly data?: string;
  readonly bluesData?: string;
  readonly version?: string;
}
interface ExtractorFlags extends DataFlags {
  readonly name?: string;
  readonly changes?: string;
  readonly shipOnly?: boolean;
  readonly preprocessing?: string;
  readonly skipE2e?: boolean;
  readonly skipExperts?: boolean;
}

interface XrayFlags extends CommonFlags {
  readonly cxrData?: string;
  readonly version?: string;
  readonly name?: string;
  readonly changes?: string;
  readonly quick?: boolean;
  readonly skipAnchor?: boolean;
  readonly shipOnly?: boolean;
}

const VERSION = /^\d+\.\d+\.\d+$/;
const NAME = /^[a-z0-9][a-z0-9-]*$/;

function checkFlags(flags: ExtractorFlags): void {
  if (flags.version !== undefined && !VERSION.test(flags.version)) {
    throw new UsageError(`--version must look like 1.2.0, got "${flags.version}".`);
  }
  if (flags.name !== undefined && !NAME.test(flags.name)) {
    throw new UsageError(`--name must be lowercase letters, digits and "-", got "${flags.name}".`);
  }
  if (flags.preprocessing !== undefined && !Preprocessing.safeParse(flags.preprocessing).success) {
    throw new UsageError(
      `--preprocessing must be one of ${Preprocessing.options.join(', ')}, got "${flags.preprocessing}".`,
    );
  }
}

function withCommon(cmd: Command, data: boolean): Command {
  if (data) {
    cmd.option(
      '--data <dir>',
      'the POCUS collection (default: $POCUS_DATA, else ../shared/data/pocus beside the package)',
    );
    cmd.option(
      '--blues-data <dir>',
      'the COVID-BLUES collection (default: $BLUES_DATA, else ../shared/data/covid-blues beside the package when there)',
    );
  }
  return cmd
    .option(
      '--training-dir <dir>',
      'training outputs: training set, recipe output, features (default: $SONOMARK_TRAINING_DIR, else .sonomark/training in the package)',
    )
    .option('--models-dir <dir>', "the models directory to ship into (default: the package's models/)")
    .option('--dry-run', 'print the steps, with what each reads and writes, and run nothing');
}

/** Runs one train command: progress on err, the dry run's plan on out, failures as exit status 1. */
async function runTrain(
  ctx: CliContext,
  command: string,
  flags: ExtractorFlags,
  run: (
    pipeline: typeof import('../training/pipeline'),
    paths: { trainingDir: string; dataDir: string; bluesDir?: string; modelsDir: string; python: string },
    io: { dryRun: boolean; log: (line: string) => void; print: (line: string) => void },
  ) => Promise<void>,
): Promise<void> {
  checkFlags(flags);
  const pipeline = await import('../training/pipeline');
  const defaults = pipeline.trainingDefaults();
  const paths = {
    trainingDir: flags.trainingDir ? path.resolve(flags.trainingDir) : defaults.trainingDir,
    dataDir: flags.data ? path.resolve(flags.data) : defaults.dataDir,
    ...(flags.bluesData
      ? { bluesDir: path.resolve(flags.bluesData) }
      : defaults.bluesDir
        ? { bluesDir: defaults.bluesDir }
        : {}),
    modelsDir: flags.modelsDir ? path.resolve(flags.modelsDir) : defaults.modelsDir,
    python: defaults.python,
  };
  const io = {
    dryRun: flags.dryRun === true,
    log: (line: string) => ctx.err.write(`${line}\n`),
    print: (line: string) => ctx.out.write(`${line}\n`),
  };
  try {
    await run(pipeline, paths, io);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    ctx.err.write(`sonomark train ${command}: ${(e as Error).message}\n`);
    ctx.exit(1);
    return;
  }
  ctx.exit(0);
}

export function registerTrain(program: Command, ctx: CliContext): void {
  const train = program
    .command('train')
    .description('reproduce the shipped models from the POCUS collection (training/; PyTorch for the extractor)');

  withCommon(
    train
      .command('extractor')
      .description(
        'export the training set with the extractor decoder, run the Python recipe (then --loso), ship the extractor, ' +
          'then train the experts on its features (about 2 h on 2 CPU cores: the seven fits of 1.3.0 took 11-20 min each). The recipe runs with $PYTHON, else ' +
          '/usr/bin/python3 (apt-get install python3-torch python3-onnx)',
      ),
    true,
  )
    .option(
      '--version <x.y.z>',
      "version to ship the extractor (and the experts) under (default: the manifest's extractor version, which re-ships the shipped model)",
    )
    .option('--name <name>', "extractor name (default: the manifest's extractor name)")
    .option('--changes <text>', 'what changed since the previous version, for the model card and metrics')
    .option('--ship-only', 'ship the recipe output already in the training folder: no export, no Python')
    .option(
      '--preprocessing <name>',
      "the decoder's preprocessing for the training set and the shipped model: letterbox, roi-1 or trim-1 (default: the manifest's)",
    )
    .option('--skip-e2e', 'leave out the end-to-end baseline (saves a third of the recipe on a CPU)')
    .option(
      '--skip-experts',
      'ship the extractor without training the experts on it (train them later: sonomark train experts)',
    )
    .action((flags: ExtractorFlags) =>
      runTrain(ctx, 'extractor', flags, (p, paths, io) =>
        p.trainExtractor(
          {
            ...paths,
            name: flags.name,
            version: flags.version,
            changes: flags.changes,
            shipOnly: flags.shipOnly,
            ...(flags.preprocessing ? { preprocessing: flags.preprocessing as Preprocessing } : {}),
            skipE2e: flags.skipE2e,
            skipExperts: flags.skipExperts,
            log: io.log,
          },
          io,
        ),
      ),
    );

  withCommon(
    train
      .command('experts')
      .description(
        "train the diagnosis, severity and triage experts (and their biomarkers-only ablations) on the manifest's " +
          'extractor, with per-fold and per-source held-out features, then write models/EVALUATION.md',
      ),
    true,
  )
    .option(
      '--version <x.y.z>',
      "version of the experts (default: the manifest's extractor version, whose features they read)",
    )
    .action((flags: DataFlags) =>
      runTrain(ctx, 'experts', flags, (p, paths, io) =>
        p.trainExperts({ ...paths, version: flags.version, log: io.log }, io),
      ),
    );

  train
    .command('xray-experts')
    .description(
      'train the chest X-ray experts (xray-pneumonia, xray-bacterial-viral, xray-covid) on the X-ray extractor of the ' +
        "manifest: labels from the CXR loader, features of every image through the extractor's serving path " +
        '(cached), then `sonomark experts train` per task with the source check and a Markdown card',
    )
    .option(
      '--cxr-data <dir>',
      'the chest X-ray collection (default: $CXR_DATA, else ../shared/data/cxr beside the package)',
    )
    .option(
      '--training-dir <dir>',
      'training outputs: xray/labels.csv, xray/features.jsonl, xray/cache (default: $SONOMARK_TRAINING_DIR, else .sonomark/training in the package)',
    )
    .option('--models-dir <dir>', "the models directory to ship into (default: the package's models/)")
    .option('--version <x.y.z>', 'version of the experts (default: 1.0.0)')
    .option('--report-only', 'train and write the reports into the training folder, but ship no model')
    .option('--dry-run', 'print the steps, with what each reads and writes, and run nothing')
    .action((flags: CommonFlags & { cxrData?: string; version?: string; reportOnly?: boolean }) =>
      runTrain(ctx, 'xray-experts', flags, async (_p, paths, io) => {
        const x = await import('../training/xray-experts');
        await x.trainXrayExperts(
          {
            cxrDir: flags.cxrData ? path.resolve(flags.cxrData) : x.defaultCxrDir(),
            trainingDir: paths.trainingDir,
            modelsDir: paths.modelsDir,
            ...(flags.version ? { version: flags.version } : {}),
            reportOnly: flags.reportOnly === true,
            log: io.log,
          },
          io,
        );
      }),
    );

  withCommon(
    train
      .command('xray')
      .description(
        'the chest X-ray extractor: export ../shared/data/cxr through the decoder (xray-1), group-masked self-supervised ' +
          'pretraining, frozen-encoder finding heads, the 1%/10%/100% anchor comparison, parity, ship as extractors.xray ' +
          '(about 40 min on 2 CPU cores)',
      ),
    false,
  )
    .option(
      '--cxr-data <dir>',
      'the chest X-ray collection (default: $CXR_DATA, else ../shared/data/cxr beside the package)',
    )
    .option('--version <x.y.z>', "version to ship (default: the manifest's X-ray extractor version, if it has one)")
    .option('--name <name>', "extractor name (default: the manifest's X-ray extractor name, else sonomark-cxr-ssl)")
    .option('--changes <text>', 'what changed since the previous version, for the card and metrics')
    .option('--quick', 'a short recipe (fewer pretraining steps, one seed per anchor fraction): an early model')
    .option('--skip-anchor', 'leave out the 1%/10%/100% anchor comparison')
    .option('--ship-only', 'ship the recipe output already in the training folder: no export, no Python')
    .action((flags: XrayFlags) =>
      runTrain(ctx, 'xray', flags, (p, paths, io) =>
        p.trainXray(
          {
            trainingDir: paths.trainingDir,
            modelsDir: paths.modelsDir,
            python: paths.python,
            cxrDir: flags.cxrData
              ? path.resolve(flags.cxrData)
              : path.resolve(process.env.CXR_DATA || path.join(paths.dataDir, '..', 'cxr')),
            ...(flags.name ? { name: flags.name } : {}),
            ...(flags.version ? { version: flags.version } : {}),
            ...(flags.changes ? { changes: flags.changes } : {}),
            quick: flags.quick === true,
            skipAnchor: flags.skipAnchor === true,
            shipOnly: flags.shipOnly === true,
            log: io.log,
          },
          io,
        ),
      ),
    );

  withCommon(
    train
      .command('evaluate')
      .description(
        "render models/EVALUATION.md from the manifest's experts' reports and the training folder's extractor report, " +
          'out-of-fold predictions and ablation reports',
      ),
    false,
  ).action((flags: CommonFlags) =>
    runTrain(ctx, 'evaluate', flags, (p, paths, io) => p.evaluateTraining({ ...paths, log: io.log }, io)),
  );
}
