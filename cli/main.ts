/**
 * `sonomark`: the command line of local mode.
 *
 *   sonomark analyze [--json] [--site ID] [--study ID] [--data-dir DIR] FILE|DIR...
 *   sonomark frames --out DIR [--size N] [--max-frames N] FILE...
 *   sonomark features [--cache DIR] [--models-dir DIR] [--out FILE.jsonl] FILE|DIR...
 *   sonomark experts train --features F --labels CSV --target COL --kind K --name NAME [options]
 *   sonomark models
 */
import { closeSync, mkdirSync, openSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  createExtractorSession,
  type ExecutionProviderChoice,
  type ExtractorSession,
} from '../gpu-tasks/feature-extractor/src';
import { modelsBanner, resultJson, resultTable } from './format';
import { writeClipFrames } from '../training/datasets/export';
import { PayloadError } from '../core/errors';
import { TrainingDataError } from '../training/experts/errors';
import { clipFeatures, DEFAULT_CACHE_DIR, featuresCacheDir } from '../training/experts/features-cache';
import { runExpertTraining, type TrainOptions } from '../training/experts/train-command';
import { LocalWorkflow, type AnalyzeResult } from '../local/workflow';
import { loadManifest } from '../core/manifest';

const USAGE = `Usage:
  sonomark analyze [options] FILE|DIR...   analyse clips with the local workflow
      --json             one JSON object per input on stdout (progress and models go to stderr)
      --site ID          site id for the upload key (default: local)
      --study ID         study id for the upload key (default: local)
      --data-dir DIR     keep local S3/DynamoDB data here; re-analysing the same bytes reuses the stored scan
      --models-dir DIR   model directory with manifest.json (default: the package's models/)
  sonomark frames --out DIR [--size N] [--max-frames N] FILE...
                         write the exact frames the extractor sees, as uint8 .npy [n,1,size,size] + index.json
  sonomark features [options] FILE|DIR...  extract features with the manifest's extractor (decode → ONNX → aggregate,
                         the GPU task's code), cached per clip content and extractor; JSONL {file, name, sha256,
                         cached, features} on stdout or --out
      --cache DIR        cache root; documents go to DIR/features/<extractor>-<version>/<sha256>.json (default: ./.sonomark)
      --models-dir DIR   manifest whose extractor to run (default: the package's models/)
      --out FILE         write the JSONL here instead of stdout
      --execution-provider auto|cpu|cuda   (default: auto: CUDA when installed, else CPU)
  sonomark experts train --features F --labels CSV --target COL --kind K --name NAME [options]
                         train an expert on cached features (linear vs MLP by grouped CV), export and verify
                         its ONNX, and add it to the manifest
      --features F       JSONL from sonomark features, or a directory of them or of cached documents
      --labels CSV       labels file (e.g. .sonomark/training/pocus/labels.csv)
      --target COL       label column; rows with an empty cell are skipped
      --kind K           classification | ordinal | binary
      --name NAME        expert name (manifest entry, result key)
      --key COL          column matching the features: sha256 (default), file or name
      --classes LIST     output labels in order: "a,b,c", or "value=label,…" (e.g. 0=healthy,1=abnormal)
      --positive LABEL   binary: the label whose probability is reported (default: the last class)
      --group-column COL patient/series groups that must not straddle folds
      --fold-column COL  use these folds for CV (e.g. fold); else grouped folds are dealt from the groups
      --source-column COL  also report leave-one-source-out metrics
      --blocks LIST      input blocks (default: biomarker-stats,embedding-mean,embedding-max)
      --cv-features F    features for the CV only: out-of-fold features, or a path with {fold} for per-fold sets
      --loso-features F  path with {source}: the leave-one-source-out fit for source s trains and tests on the
                         features from the extractor trained without s (needs --source-column)
      --models-dir DIR   manifest to add the expert to (default: the package's models/)
      --version X.Y.Z    expert version (default: the existing entry's patch + 1, or 0.1.0)
      --report FILE      write the full JSON report here
      --candidates LIST  model families to compare (default: linear,mlp)
      --seed N --folds N --hidden N --bootstrap N --skip-missing-features --dry-run --description TEXT
  sonomark models [--models-dir DIR]   list the models in the manifest
  sonomark help

Exit status: 0 when every input completed, 1 when any failed, 2 on a usage error.`;

/** File name endings that analyze picks up when given a directory; the bytes are sniffed later anyway. */
const MEDIA_EXTENSIONS = new Set(['.mp4', '.m4v', '.mov', '.avi', '.gif', '.mpeg', '.mpg', '.jpg', '.jpeg', '.png']);

class UsageError extends Error {}

export function expandInputs(inputs: string[]): string[] {
  const files: string[] = [];
  for (const input of inputs) {
    let st;
    try {
      st = statSync(input);
    } catch {
      // A missing path is still "attempted": analyze reports it as a failed input.
      files.push(input);
      continue;
    }
    if (st.isDirectory()) {
      const walk = (dir: string) => {
        for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
          const p = path.join(dir, entry.name);
          if (entry.isDirectory()) walk(p);
          else if (MEDIA_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) files.push(p);
        }
      };
      walk(input);
    } else {
      files.push(input);
    }
  }
  return files;
}

/** Object names within one run must not collide, or a later clip would overwrite an earlier one. */
function objectNames(files: string[]): string[] {
  const seen = new Map<string, number>();
  return files.map((f) => {
    const base = path.basename(f);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${n}-${base}`;
  });
}

function unreadable(file: string, err: unknown): AnalyzeResult {
  const code = (err as NodeJS.ErrnoException).code;
  return {
    file,
    scanId: null,
    status: 'failed',
    error: {
      code: 'UNREADABLE_INPUT',
      message:
        code === 'ENOENT'
          ? 'No such file.'
          : code === 'EISDIR'
            ? 'Is a directory with no clips.'
            : `Cannot read the file (${code ?? 'error'}).`,
    },
    reused: false,
    features: null,
    experts: {},
    models: null,
    timings: { totalMs: 0, states: {} },
  };
}

async function analyze(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      site: { type: 'string' },
      study: { type: 'string' },
      'data-dir': { type: 'string' },
      'models-dir': { type: 'string' },
    },
  });
  if (positionals.length === 0) throw new UsageError('analyze needs at least one FILE or DIR.');
  const files = expandInputs(positionals);
  if (files.length === 0) throw new UsageError(`No clips found in ${positionals.join(', ')}.`);

  const workflow = await LocalWorkflow.start({
    dataDir: values['data-dir'],
    modelsDir: values['models-dir'],
    siteId: values.site,
    studyId: values.study,
  });
  err.write(modelsBanner(workflow.loaded.manifest) + '\n\n');
  const names = objectNames(files);
  let failed = 0;
  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i] as string;
      let result: AnalyzeResult;
      try {
        statSync(file);
        result = await workflow.analyze(file, names[i]);
      } catch (e) {
        result = unreadable(file, e);
      }
      if (result.status === 'failed') failed++;
      if (files.length > 1) {
        err.write(`[${i + 1}/${files.length}] ${result.status.padEnd(9)} ${result.timings.totalMs} ms  ${file}\n`);
      }
      out.write(values.json ? JSON.stringify(resultJson(result)) + '\n' : resultTable(result) + '\n\n');
    }
  } finally {
    await workflow.close();
  }
  if (files.length > 1) err.write(`${files.length - failed} completed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}

async function frames(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { out: { type: 'string' }, size: { type: 'string' }, 'max-frames': { type: 'string' } },
  });
  if (!values.out) throw new UsageError('frames needs --out DIR.');
  if (positionals.length === 0) throw new UsageError('frames needs at least one FILE.');
  const manifest = loadManifest().manifest;
  const size = values.size ? Number(values.size) : manifest.extractor.input.size;
  const maxFrames = values['max-frames'] ? Number(values['max-frames']) : manifest.extractor.input.maxFrames;
  if (!Number.isInteger(size) || size < 8) throw new UsageError('--size must be an integer ≥ 8.');
  if (!Number.isInteger(maxFrames) || maxFrames < 1) throw new UsageError('--max-frames must be a positive integer.');
  mkdirSync(values.out, { recursive: true });
  const index: Record<string, unknown>[] = [];
  let failed = 0;
  for (const file of expandInputs(positionals)) {
    const name = path.basename(file).replace(/\.[^.]+$/, '');
    try {
      // The raw 8-bit frames the extractor scales by 1/255: training reads the same pixels.
      const entry = await writeClipFrames(file, values.out, `${name}.npy`, { size, maxFrames });
      index.push({ file, ...entry });
      out.write(`${name}.npy  ${entry.frames} frames of ${entry.decodedFrames}\n`);
    } catch (e) {
      failed++;
      index.push({ file, error: (e as Error).message });
      out.write(`${file}: ${(e as Error).message}\n`);
    }
  }
  writeFileSync(
    path.join(values.out, 'index.json'),
    JSON.stringify({ size, maxFrames, scale: '1/255', clips: index }, null, 2),
  );
  return failed > 0 ? 1 : 0;
}

function message(e: unknown): string {
  return (e as Error).message ?? String(e);
}

async function features(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      cache: { type: 'string' },
      'models-dir': { type: 'string' },
      out: { type: 'string' },
      'execution-provider': { type: 'string' },
    },
  });
  if (positionals.length === 0) throw new UsageError('features needs at least one FILE or DIR.');
  const provider = (values['execution-provider'] ?? 'auto') as ExecutionProviderChoice;
  if (!['auto', 'cpu', 'cuda'].includes(provider))
    throw new UsageError('--execution-provider must be auto, cpu or cuda.');
  const files = expandInputs(positionals);
  if (files.length === 0) throw new UsageError(`No clips found in ${positionals.join(', ')}.`);
  const loaded = loadManifest(values['models-dir'] ? path.resolve(values['models-dir']) : undefined);
  const entry = loaded.manifest.extractor;
  const cacheDir = path.resolve(values.cache ?? DEFAULT_CACHE_DIR);
  err.write(
    `Extractor ${entry.name}@${entry.version} (sha256 ${entry.sha256.slice(0, 16)}…, ${entry.card.status})\n` +
      `Cache     ${featuresCacheDir(cacheDir, entry)}\n`,
  );
  let session: Promise<ExtractorSession> | undefined;
  const fd = values.out ? openSync(values.out, 'w') : undefined;
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
              executionProvider: provider,
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
        const why =
          code === 'ENOENT' ? 'No such file.' : code === 'EISDIR' ? 'Is a directory with no clips.' : message(e);
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

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a non-negative integer, got "${value}".`);
  return Number(value);
}

async function experts(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'train')
    throw new UsageError(sub ? `Unknown experts command "${sub}".` : 'experts needs a command: train.');
  const { values } = parseArgs({
    args: rest,
    allowPositionals: false,
    options: {
      features: { type: 'string' },
      labels: { type: 'string' },
      target: { type: 'string' },
      kind: { type: 'string' },
      name: { type: 'string' },
      key: { type: 'string' },
      classes: { type: 'string' },
      positive: { type: 'string' },
      'group-column': { type: 'string' },
      'fold-column': { type: 'string' },
      'source-column': { type: 'string' },
      blocks: { type: 'string' },
      'cv-features': { type: 'string' },
      'loso-features': { type: 'string' },
      'models-dir': { type: 'string' },
      version: { type: 'string' },
      report: { type: 'string' },
      seed: { type: 'string' },
      folds: { type: 'string' },
      hidden: { type: 'string' },
      candidates: { type: 'string' },
      bootstrap: { type: 'string' },
      'skip-missing-features': { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      description: { type: 'string' },
    },
  });
  for (const required of ['features', 'labels', 'target', 'kind', 'name'] as const) {
    if (!values[required]) throw new UsageError(`experts train needs --${required}.`);
  }
  const options: TrainOptions = {
    features: values.features as string,
    labels: values.labels as string,
    target: values.target as string,
    kind: values.kind as TrainOptions['kind'],
    name: values.name as string,
    key: values.key as TrainOptions['key'],
    classes: values.classes,
    positive: values.positive,
    groupColumn: values['group-column'],
    foldColumn: values['fold-column'],
    sourceColumn: values['source-column'],
    blocks: values.blocks?.split(',').map((b) => b.trim()) as TrainOptions['blocks'],
    cvFeatures: values['cv-features'],
    losoFeatures: values['loso-features'],
    modelsDir: values['models-dir'],
    version: values.version,
    report: values.report,
    seed: intOption(values.seed, '--seed'),
    folds: intOption(values.folds, '--folds'),
    hidden: intOption(values.hidden, '--hidden'),
    candidates: values.candidates?.split(',').map((c) => c.trim()) as TrainOptions['candidates'],
    bootstrap: intOption(values.bootstrap, '--bootstrap'),
    skipMissingFeatures: values['skip-missing-features'],
    dryRun: values['dry-run'],
    description: values.description,
  };
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
      seconds: outcome.result.seconds.total,
    }) + '\n',
  );
  return 0;
}

export async function main(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'analyze':
        return await analyze(rest, out, err);
      case 'frames':
        return await frames(rest, out);
      case 'features':
        return await features(rest, out, err);
      case 'experts':
        return await experts(rest, out, err);
      case 'models': {
        const { values } = parseArgs({ args: rest, options: { 'models-dir': { type: 'string' } } });
        out.write(
          modelsBanner(loadManifest(values['models-dir'] ? path.resolve(values['models-dir']) : undefined).manifest) +
            '\n',
        );
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out.write(USAGE + '\n');
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown command "${command}".`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err.write(`sonomark: ${(e as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    err.write(`sonomark: ${(e as Error).message}\n`);
    return 1;
  }
}
