/**
 * `sonomark`: the command line of local mode.
 *
 *   sonomark analyze [--json] [--site ID] [--study ID] [--data-dir DIR] FILE|DIR...
 *   sonomark frames --out DIR [--size N] [--max-frames N] FILE...
 *   sonomark models
 */
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { decodeFrameBytes } from '../gpu-tasks/feature-extractor/src';
import { modelsBanner, resultJson, resultTable } from '../lib/cli/format';
import { toNpy } from '../lib/cli/npy';
import { LocalWorkflow, type AnalyzeResult } from '../lib/local/workflow';
import { loadManifest } from '../lib/manifest';

const USAGE = `Usage:
  sonomark analyze [options] FILE|DIR...   analyse clips with the local workflow
      --json             one JSON object per input on stdout (progress and models go to stderr)
      --site ID          site id for the upload key (default: local)
      --study ID         study id for the upload key (default: local)
      --data-dir DIR     keep local S3/DynamoDB data here; re-analysing the same bytes reuses the stored scan
      --models-dir DIR   model directory with manifest.json (default: the package's models/)
  sonomark frames --out DIR [--size N] [--max-frames N] FILE...
                         write the exact frames the extractor sees, as uint8 .npy [n,1,size,size] + index.json
  sonomark models        list the models in the manifest
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
      const clip = await decodeFrameBytes(file, { size, maxFrames });
      writeFileSync(path.join(values.out, `${name}.npy`), toNpy(clip.bytes, [clip.count, 1, size, size], 'u1'));
      index.push({
        file,
        npy: `${name}.npy`,
        frames: clip.count,
        decodedFrames: clip.decodedFrames,
        frameIndices: clip.frameIndices,
      });
      out.write(`${name}.npy  ${clip.count} frames of ${clip.decodedFrames}\n`);
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
      case 'models':
        out.write(modelsBanner(loadManifest().manifest) + '\n');
        return 0;
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
