/** `sonomark train …` registered on a commander program, as cli/main.ts will: options, dry runs, exit statuses. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { UsageError } from '../../../cli/context';
import { registerTrain } from '../../../cli/train';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';

let work: string;
let models: string;
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'sonomark-cli-train-'));
  models = path.join(work, 'models');
  writeFixtureModels(models);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A program with only `train`, its streams captured, parse errors thrown instead of exiting. */
async function run(...argv: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const text = { out: '', err: '' };
  out.on('data', (d) => (text.out += d));
  err.on('data', (d) => (text.err += d));
  let code: number | undefined;
  const program = new Command('sonomark')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (text.out += s), writeErr: (s) => (text.err += s) });
  registerTrain(program, { out, err, exit: (c) => (code = c) });
  await program.parseAsync(argv, { from: 'user' });
  return { ...text, code };
}

const dirs = () => [
  '--models-dir',
  models,
  '--training-dir',
  path.join(work, 'training'),
  '--data',
  path.join(work, 'pocus'),
];

describe('sonomark train', () => {
  it('extractor --dry-run prints the plan on stdout and exits 0', async () => {
    // Act
    const r = await run('train', 'extractor', '--dry-run', ...dirs(), '--version', '2.0.0', '--name', 'next');

    // Assess
    expect(r.code).toBe(0);
    expect(r.out).toContain('1. the recipe has PyTorch and onnx');
    // The COVID-BLUES collection joins the training set when ../shared/data/covid-blues is beside the package.
    const esc = (p: string) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(r.out).toMatch(
      new RegExp(`${esc(path.join(work, 'pocus'))}( \\+ [^\\n]*)? → ${esc(path.join(work, 'training', 'pocus'))}`),
    );
    expect(r.out).toContain('5. ship next@2.0.0');
    expect(r.out).toContain('version 2.0.0 (--version)');
    expect(r.out).toContain('9. expert diagnosis@2.0.0');
    expect(r.out).toContain('17. models/EVALUATION.md');
  });

  it("experts --dry-run plans the experts under the manifest's extractor version", async () => {
    const r = await run('train', 'experts', '--dry-run', ...dirs());
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]).toBe('1. features with the shipped extractor');
    expect(r.out).toContain('4. expert diagnosis@0.0.1');
    expect(r.out).toContain('version 0.0.1 (the version of sonomark-fixture-extractor, whose features they read)');
  });

  it('evaluate --dry-run has one step', async () => {
    const r = await run('train', 'evaluate', '--dry-run', '--models-dir', models);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^1\. models\/EVALUATION\.md\n/);
    expect(r.out).not.toContain('2.');
  });

  it('reports a failed step on stderr and exits 1', async () => {
    // Act: nothing has been trained in this training folder.
    const r = await run('train', 'evaluate', '--models-dir', models, '--training-dir', path.join(work, 'empty'));

    // Assess
    expect(r.code).toBe(1);
    expect(r.err).toContain('== 1/1 models/EVALUATION.md');
    expect(r.err).toContain(
      `sonomark train evaluate: Cannot read expert report ${path.join(models, 'experts', 'diagnosis-0.0.1.report.json')}: ` +
        'no such file. sonomark train experts writes it.\n',
    );
  });

  it('throws a UsageError for a malformed --version or --name', async () => {
    await expect(run('train', 'experts', '--version', '1.2', ...dirs())).rejects.toThrow(
      new UsageError('--version must look like 1.2.0, got "1.2".'),
    );
    await expect(run('train', 'extractor', '--name', 'Big Model', ...dirs())).rejects.toThrow(UsageError);
  });

  it('leaves unknown options and commands to commander', async () => {
    await expect(run('train', 'experts', '--folds', '3')).rejects.toThrow(CommanderError);
    await expect(run('train', 'everything')).rejects.toThrow(CommanderError);
  });
});
