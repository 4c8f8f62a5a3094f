/** `sonomark experts train`: an expert fitted on cached features, exported to ONNX, verified, added to the manifest. */
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import type { TaskKind } from '../core/schemas';
import type { TrainOptions } from '../training/experts/train-command';
import { UsageError, type CliContext } from './context';
import { existingDir, existingPath } from './inputs';
import { integerAtLeast, list } from './options';

interface ExpertsTrainOptions {
  features?: string;
  labels?: string;
  target?: string;
  kind?: TaskKind;
  name?: string;
  key?: TrainOptions['key'];
  classes?: string;
  positive?: string;
  groupColumn?: string;
  foldColumn?: string;
  sourceColumn?: string;
  blocks?: string[];
  cvFeatures?: string;
  losoFeatures?: string;
  modelsDir?: string;
  dataDir?: string;
  version?: string;
  report?: string;
  seed?: number;
  folds?: number;
  hidden?: number;
  candidates?: string[];
  bootstrap?: number;
  skipMissingFeatures?: boolean;
  dryRun?: boolean;
  description?: string;
  intendedUse?: string;
  markdownCard?: boolean;
  labelFreeFeatures?: boolean;
}

const REQUIRED = ['features', 'labels', 'target', 'kind', 'name'] as const;

export function registerExperts(program: Command, ctx: CliContext): void {
  const experts = program
    .command('experts')
    .summary('train expert models on cached features')
    .description('Expert models: small heads on the extractor features, one per clinical task.');
  experts
    .command('train')
    .summary('train an expert and add it to the manifest')
    .description(
      'Train an expert on cached features: a class-weighted linear model and a one-hidden-layer MLP compared by ' +
        'grouped CV, exported to ONNX, verified against onnxruntime, and added to the manifest.',
    )
    .usage('--features F --labels CSV --target COL --kind K --name NAME [options]')
    .option('--features <F>', 'JSONL from sonomark features, or a directory of them or of cached documents (required)')
    .option('--labels <CSV>', 'labels file, e.g. .sonomark/training/pocus/labels.csv (required)')
    .option('--target <COL>', 'label column; rows with an empty cell are skipped (required)')
    .addOption(
      new Option('--kind <K>', 'task kind (required)').choices([
        'classification',
        'ordinal',
        'binary',
      ] satisfies TaskKind[]),
    )
    .option('--name <NAME>', 'expert name: the manifest entry and the result key (required)')
    .addOption(
      new Option('--key <COL>', 'column matching the features (default: sha256)').choices(['sha256', 'file', 'name']),
    )
    .option('--classes <LIST>', 'output labels in order: "a,b,c", or "value=label,…" (e.g. 0=healthy,1=abnormal)')
    .option('--positive <LABEL>', 'binary: the label whose probability is reported (default: the last class)')
    .option('--group-column <COL>', 'patient/series groups that must not straddle folds')
    .option('--fold-column <COL>', 'use these folds for CV (e.g. fold); else grouped folds are dealt from the groups')
    .option(
      '--source-column <COL>',
      'also report per-source and leave-one-source-out metrics, and check that the expert does not read the source',
    )
    .option('--blocks <LIST>', 'input blocks (default: biomarker-stats,embedding-mean,embedding-max)', list)
    .option(
      '--cv-features <F>',
      'features for the CV only: out-of-fold features, or a path with {fold} for per-fold sets',
    )
    .option(
      '--loso-features <F>',
      'path with {source}: the leave-one-source-out fit for source s trains and tests on the features from ' +
        'the extractor trained without s (needs --source-column)',
    )
    .option('--models-dir <DIR>', "manifest to add the expert to (default: the package's models/)")
    .option(
      '--data-dir <DIR>',
      "add the expert to this local data directory's models (DIR/models, copied from the package's on first use), " +
        'which analyze, rescore and cohort run read',
    )
    .option('--version <X.Y.Z>', "expert version (default: the existing entry's patch + 1; required for a new expert)")
    .option('--report <FILE>', 'write the full JSON report here')
    .option('--candidates <LIST>', 'model families to compare (default: linear,mlp)', list)
    .option('--seed <N>', 'random seed (default: 1)', integerAtLeast(0))
    .option('--folds <N>', 'CV folds when dealt from the groups (default: 5)', integerAtLeast(0))
    .option('--hidden <N>', 'MLP hidden units (default: 16)', integerAtLeast(0))
    .option(
      '--bootstrap <N>',
      'bootstrap resamples for the 95% intervals, 0 for none (default: 1000)',
      integerAtLeast(0),
    )
    .option('--skip-missing-features', 'leave out label rows that have no features instead of failing')
    .option('--dry-run', 'train, evaluate and report, but write no model and leave the manifest alone')
    .option('--description <TEXT>', "free text for the card's training data (default: generated)")
    .option('--intended-use <TEXT>', "free text for the card's intended use (default: generated from the target)")
    .option(
      '--label-free-features',
      'the blocks come from a self-supervised encoder that never saw a label, so CV on them is honest (the card says so)',
    )
    .option(
      '--markdown-card',
      'also write the card as Markdown beside the model (experts/NAME-VERSION.md; with the command line that trained it)',
    )
    .addHelpText(
      'after',
      `
Prints one JSON line on stdout: {name, version, file, sha256, written,
modelsDir, chosen, cv, leaveOneSourceOut and sourceCheck (with --source-column), seconds};
progress goes to stderr.

Examples:
  $ sonomark experts train --features .sonomark/pocus-features.jsonl \\
      --labels .sonomark/training/pocus/labels.csv --group-column group \\
      --fold-column fold --target diagnosis --kind classification \\
      --name diagnosis --classes covid,pneumonia,healthy
  $ sonomark experts train … --target severity --kind ordinal \\
      --name severity --classes 0,1,2,3
  $ sonomark experts train … --target triage --kind binary \\
      --name triage --classes 0=healthy,1=abnormal

Exit status: 0 on success, 1 when the training data is wrong (the file and row
are named), 2 on a usage error.`,
    )
    .action(async (opts: ExpertsTrainOptions) => ctx.exit(await train(opts, ctx)));
  registerPublish(experts, ctx);
}

interface ExpertsPublishOptions {
  file?: string;
  card?: string;
  dataDir?: string;
  modelsDir?: string;
  bucket?: string;
}

function registerPublish(experts: Command, ctx: CliContext): void {
  experts
    .command('publish')
    .summary('register an expert ONNX file as a new version in a manifest')
    .description(
      'Register an expert ONNX file (and its Markdown card) as a new version of a manifest expert: the entry keeps ' +
        "the expert's inputs and labels, takes the file's sha256, and becomes the version that analyze, rescore and " +
        'cohort run score with. The model is run once before anything is written.',
    )
    .argument(
      '[NAME@VERSION]',
      'the expert and its new version, e.g. diagnosis@1.2.0; none with --bucket: upload the manifest and every expert as they are',
    )
    .option('--file <F.onnx>', 'the ONNX model (required)')
    .option('--card <C.md>', 'the model card, stored beside the model as experts/NAME-VERSION.md')
    .option('--data-dir <DIR>', 'publish into this local data directory (DIR/models), default .sonomark/local')
    .option('--models-dir <DIR>', 'publish into this models directory instead')
    .option(
      '--bucket <B>',
      "also upload to a deployment's artifacts bucket (models/: the expert's files, then the manifest), " +
        'which the next scan reads; AWS credentials from the environment',
    )
    .addHelpText(
      'after',
      `
Prints one JSON line on stdout: {name, version, file, sha256, replaced, modelsDir}.

Example:
  $ sonomark experts publish diagnosis@1.2.0 --file diagnosis.onnx --card diagnosis.md \\
      --data-dir .sonomark/local
  $ sonomark rescore --data-dir .sonomark/local --experts diagnosis@1.2.0
  $ sonomark experts publish --models-dir models --bucket ARTIFACTS_BUCKET   # after cdk deploy`,
    )
    .action(async (ref: string | undefined, opts: ExpertsPublishOptions) => ctx.exit(await publish(ref, opts, ctx)));
}

async function publish(ref: string | undefined, opts: ExpertsPublishOptions, ctx: CliContext): Promise<number> {
  const { out, err } = ctx;
  if (ref === undefined) {
    if (!opts.bucket)
      throw new UsageError('experts publish needs NAME@VERSION (or --bucket B to upload the manifest as it is).');
    return uploadOnly(opts, ctx);
  }
  if (!opts.file) throw new UsageError('experts publish needs --file F.onnx.');
  existingPath(opts.file, '--file');
  if (opts.card) existingPath(opts.card, '--card');
  existingDir(opts.modelsDir, '--models-dir');
  const [{ readFileSync, writeFileSync, mkdirSync }, { loadManifest }, register, { publishExpert }, models, errors] =
    await Promise.all([
      import('node:fs'),
      import('../core/manifest'),
      import('../training/experts/register'),
      import('../training/experts/publish'),
      import('../local/models'),
      import('../training/experts/errors'),
    ]);
  const dir = opts.modelsDir
    ? path.resolve(opts.modelsDir)
    : models.ensureDataDirModels(opts.dataDir ?? '.sonomark/local');
  try {
    const { name, version } = register.parseExpertRef(ref);
    const bytes = readFileSync(opts.file);
    const cardMarkdown = opts.card ? readFileSync(opts.card, 'utf8') : undefined;
    const plan = await register.planRegister(loadManifest(dir), { name, version, bytes, cardMarkdown });
    if (cardMarkdown !== undefined) {
      const cardPath = path.join(dir, register.cardFileFor(name, version));
      mkdirSync(path.dirname(cardPath), { recursive: true });
      writeFileSync(cardPath, cardMarkdown);
    }
    const loaded = publishExpert(dir, plan, bytes);
    err.write(`${name}@${version} registered in ${dir} (was ${plan.replaced?.version ?? 'none'})\n`);
    if (opts.bucket) await upload(opts.bucket, loaded, [name], err);
    out.write(
      JSON.stringify({
        name,
        version,
        file: plan.entry.file,
        sha256: plan.entry.sha256,
        replaced: plan.replaced?.version ?? null,
        modelsDir: dir,
      }) + '\n',
    );
    return 0;
  } catch (e) {
    if (e instanceof errors.TrainingDataError) {
      err.write(`sonomark experts publish: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** An S3 client from the environment's credentials; path-style when AWS_ENDPOINT_URL_S3 points at a local S3. */
async function bucketClient() {
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) });
}

async function upload(
  bucket: string,
  loaded: import('../core/manifest').LoadedManifest,
  experts: string[] | undefined,
  err: NodeJS.WritableStream,
): Promise<void> {
  const { uploadModelsToBucket } = await import('../core/bucket-models');
  const s3 = await bucketClient();
  try {
    const keys = await uploadModelsToBucket(s3, bucket, loaded, experts);
    err.write(`uploaded ${keys.length} objects to s3://${bucket}/ (${keys.join(', ')})\n`);
  } finally {
    s3.destroy();
  }
}

async function uploadOnly(opts: ExpertsPublishOptions, { out, err }: CliContext): Promise<number> {
  existingDir(opts.modelsDir, '--models-dir');
  const [{ loadManifest }, models] = await Promise.all([import('../core/manifest'), import('../local/models')]);
  const loaded = loadManifest(models.resolveModelsDir({ modelsDir: opts.modelsDir, dataDir: opts.dataDir }));
  await upload(opts.bucket as string, loaded, undefined, err);
  out.write(
    JSON.stringify({ bucket: opts.bucket, experts: loaded.manifest.experts.map((e) => `${e.name}@${e.version}`) }) +
      '\n',
  );
  return 0;
}

async function train(opts: ExpertsTrainOptions, { out, err }: CliContext): Promise<number> {
  for (const required of REQUIRED) {
    if (!opts[required]) throw new UsageError(`experts train needs --${required}.`);
  }
  existingPath(opts.features as string, '--features');
  existingPath(opts.labels as string, '--labels');
  if (opts.cvFeatures && !opts.cvFeatures.includes('{fold}')) existingPath(opts.cvFeatures, '--cv-features');
  existingDir(opts.modelsDir, '--models-dir');
  if (opts.modelsDir && opts.dataDir) throw new UsageError('Give --models-dir or --data-dir, not both.');
  if (opts.dataDir) {
    const { ensureDataDirModels } = await import('../local/models');
    opts.modelsDir = ensureDataDirModels(opts.dataDir);
  }
  if (opts.report) existingDir(path.dirname(path.resolve(opts.report)), `--report ${opts.report}: directory`);

  const options: TrainOptions = {
    features: opts.features as string,
    labels: opts.labels as string,
    target: opts.target as string,
    kind: opts.kind as TaskKind,
    name: opts.name as string,
    key: opts.key,
    classes: opts.classes,
    positive: opts.positive,
    groupColumn: opts.groupColumn,
    foldColumn: opts.foldColumn,
    sourceColumn: opts.sourceColumn,
    blocks: opts.blocks as TrainOptions['blocks'],
    cvFeatures: opts.cvFeatures,
    losoFeatures: opts.losoFeatures,
    modelsDir: opts.modelsDir,
    version: opts.version,
    report: opts.report,
    seed: opts.seed,
    folds: opts.folds,
    hidden: opts.hidden,
    candidates: opts.candidates as TrainOptions['candidates'],
    bootstrap: opts.bootstrap,
    skipMissingFeatures: opts.skipMissingFeatures ?? false,
    dryRun: opts.dryRun ?? false,
    description: opts.description,
    intendedUse: opts.intendedUse,
    markdownCard: opts.markdownCard ?? false,
    labelFreeFeatures: opts.labelFreeFeatures ?? false,
  };
  const [{ runExpertTraining }, { PayloadError }, { TrainingDataError }] = await Promise.all([
    import('../training/experts/train-command'),
    import('../core/errors'),
    import('../training/experts/errors'),
  ]);
  let outcome;
  try {
    outcome = await runExpertTraining(options, (line) => err.write(line + '\n'));
  } catch (e) {
    // Bad option values (zod) are usage errors; bad data is a plain failure with the row named.
    if (e instanceof PayloadError && /experts train options/.test(e.message)) throw new UsageError(e.message);
    if (e instanceof TrainingDataError) {
      err.write(`sonomark experts train: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const primary = outcome.result.selection.metric;
  const chosen = outcome.result.candidates[outcome.result.chosen]!;
  out.write(
    JSON.stringify({
      name: outcome.entry.name,
      version: outcome.entry.version,
      file: outcome.entry.file,
      sha256: outcome.entry.sha256,
      written: outcome.written,
      modelsDir: outcome.modelsDir,
      chosen: outcome.result.chosen,
      cv: { [primary]: chosen.evaluation.metrics[primary] },
      ...(outcome.result.loso
        ? { leaveOneSourceOut: { [primary]: outcome.result.loso.evaluation.metrics[primary] } }
        : {}),
      ...(outcome.result.sourceCheck ? { sourceCheck: { flags: outcome.result.sourceCheck.flags } } : {}),
      seconds: outcome.result.seconds.total,
    }) + '\n',
  );
  return 0;
}
