/** `sonomark analyze FILE|DIR...`: clips through the local workflow (DESIGN.md "Contracts"). */
import { statSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { AnalyzeResult } from '../local/workflow';
import type { CliContext } from './context';
import { resultJson, resultTable, modelsBanner } from './format';
import { existingDir, describeSkipped, expandInputs, MEDIA_EXTENSIONS } from './inputs';

interface AnalyzeOptions {
  json?: boolean;
  site?: string;
  study?: string;
  dataDir?: string;
  modelsDir?: string;
}

export function registerAnalyze(program: Command, ctx: CliContext): void {
  program
    .command('analyze')
    .summary('analyse clips with the local workflow')
    .description(
      'Analyse ultrasound clips with the local workflow: s3rver and dynalite on 127.0.0.1 and the state machine ' +
        'the CDK app synthesizes, each Task bound to the handler code the cloud runs. Every input is attempted; ' +
        'one that fails (e.g. bytes that are not a clip) gets a failed record with its reason.',
    )
    .argument('<FILE|DIR...>', `clips, or directories searched for ${[...MEDIA_EXTENSIONS].join(' ')}`)
    .option('--json', 'one JSON object per input on stdout (progress and models go to stderr)')
    .option('--site <ID>', 'site id for the upload key (default: local)')
    .option('--study <ID>', 'study id for the upload key (default: local)')
    .option('--data-dir <DIR>', 'keep local S3/DynamoDB data here; re-analysing the same bytes reuses the stored scan')
    .option('--models-dir <DIR>', "model directory with manifest.json (default: the package's models/)")
    .addHelpText(
      'after',
      `
With --json, one line per input:
  {file, scanId, status: "completed"|"failed", error (when failed), reused,
   features, experts: {diagnosis: {label, probabilities}, severity: {score, …},
   triage: {abnormal, label}}, models, timings}

Examples:
  $ sonomark analyze clip.mp4
  $ sonomark analyze --json --data-dir .sonomark/local ../shared/data/pocus \\
      > results.jsonl

Exit status: 0 when every input completed, 1 when any failed, 2 on a usage error.`,
    )
    .action(async (inputs: string[], opts: AnalyzeOptions) => ctx.exit(await analyze(inputs, opts, ctx)));
}

async function analyze(inputs: string[], opts: AnalyzeOptions, { out, err }: CliContext): Promise<number> {
  // Arguments first: a bad path is a usage error before any service starts.
  const files = expandInputs(inputs, (skipped) => err.write(`${describeSkipped(skipped)}\n`));
  existingDir(opts.modelsDir, '--models-dir');

  const { LocalWorkflow } = await import('../local/workflow');
  const workflow = await LocalWorkflow.start({
    dataDir: opts.dataDir,
    modelsDir: opts.modelsDir,
    siteId: opts.site,
    studyId: opts.study,
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
        // Inputs are checked up front; this is one that went away or could not be read during the run.
        result = unreadable(file, e);
      }
      if (result.status === 'failed') failed++;
      if (files.length > 1) {
        err.write(`[${i + 1}/${files.length}] ${result.status.padEnd(9)} ${result.timings.totalMs} ms  ${file}\n`);
      }
      out.write(opts.json ? JSON.stringify(resultJson(result)) + '\n' : resultTable(result) + '\n\n');
    }
  } finally {
    await workflow.close();
  }
  if (files.length > 1) err.write(`${files.length - failed} completed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
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
      message: code === 'ENOENT' ? 'No such file.' : `Cannot read the file (${code ?? 'error'}).`,
    },
    reused: false,
    features: null,
    experts: {},
    models: null,
    timings: { totalMs: 0, states: {} },
  };
}
