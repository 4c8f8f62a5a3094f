/**
 * The command line's shape, without running any command: help for every
 * command, --version, usage errors (exit 2, with a suggestion for a typo),
 * arguments checked before any service or model loads, and no process.exit.
 * The heavy modules the actions import lazily are mocked so that a test fails
 * if one of them is even loaded.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../../helpers/cli';
import { tempDir } from '../../helpers/temp';
import { PACKAGE_ROOT } from '../../../core/paths';

const loaded: string[] = [];
jest.mock('../../../local/workflow', () => {
  loaded.push('local/workflow');
  return { LocalWorkflow: { start: jest.fn() } };
});
jest.mock('../../../gpu-tasks/feature-extractor/src', () => {
  loaded.push('gpu-tasks/feature-extractor');
  return {};
});
jest.mock('../../../training/experts/features-cache', () => {
  loaded.push('training/experts/features-cache');
  return {};
});
jest.mock('../../../training/experts/train-command', () => {
  loaded.push('training/experts/train-command');
  return {};
});
jest.mock('../../../training/datasets/export', () => {
  loaded.push('training/datasets/export');
  return {};
});

const cli = runCli;

const missing = path.join(tempDir('sonomark-cli-'), 'no-such-clip.mp4');
let exit: jest.SpyInstance;

beforeEach(() => {
  loaded.length = 0;
  exit = jest.spyOn(process, 'exit').mockImplementation(() => {
    throw new Error('process.exit called');
  });
});

afterEach(() => {
  // main() reports through its return value only; the launcher sets process.exitCode.
  expect(exit).not.toHaveBeenCalled();
  exit.mockRestore();
});

describe('help and version', () => {
  it.each([
    [['analyze'], /--json/],
    [['frames'], /--max-frames <N>/],
    [['features'], /--execution-provider <EP>/],
    [['experts'], /train \[options\]/],
    [['experts', 'train'], /--skip-missing-features/],
    [['models'], /--models-dir <DIR>/],
  ])('sonomark %j --help prints the usage and options on stdout and exits 0', async (command, option) => {
    // Act
    const r = await cli([...command, '--help']);
    // `sonomark help CMD` is the same as `sonomark CMD --help` (it takes one command name).
    const viaHelp = command.length === 1 ? await cli(['help', ...command]) : r;

    // Assess
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^Usage: sonomark ${command.join(' ')} `));
    expect(r.stdout).toMatch(option);
    expect(viaHelp).toEqual(r);
    expect(loaded).toEqual([]);
  });

  it.each([['--help'], ['-h'], ['help']])('sonomark %s lists every command and exits 0', async (flag) => {
    const r = await cli([flag]);
    expect(r.code).toBe(0);
    for (const command of [
      'analyze',
      'frames',
      'features',
      'experts',
      'models',
      'report',
      'rescore',
      'cohort',
      'help',
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    }
  });

  it('keeps the JSON contract fields in analyze --help', async () => {
    const r = await cli(['analyze', '--help']);
    for (const field of ['file', 'scanId', 'status', 'error', 'features', 'experts', 'timings']) {
      expect(r.stdout).toContain(field);
    }
  });

  it("documents features' default cache root as the one the cache module uses", async () => {
    const { DEFAULT_CACHE_DIR } = jest.requireActual('../../../training/experts/features-cache');
    const r = await cli(['features', '--help']);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(`(default: ./${DEFAULT_CACHE_DIR})`);
  });

  it.each([['--version'], ['-V']])('sonomark %s prints the package version', async (flag) => {
    const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8'));
    const r = await cli([flag]);
    expect(r).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  it('takes `experts train --version X.Y.Z` as the expert version, not the program version', async () => {
    // --version after the command belongs to the command (positional options).
    const r = await cli(['experts', 'train', '--version', '1.2.3']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/experts train needs --features/);
  });
});

describe('usage errors exit 2 with a hint on stderr', () => {
  it('an unknown command suggests the nearest one', async () => {
    const r = await cli(['analyse', 'x']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/unknown command 'analyse'/);
    expect(r.stderr).toMatch(/Did you mean analyze\?/);
    expect(r.stderr).toMatch(/Run "sonomark --help"/);
  });

  it('an unknown subcommand suggests the nearest one', async () => {
    const r = await cli(['experts', 'tran']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'tran'/);
    expect(r.stderr).toMatch(/Did you mean train\?/);
  });

  it('an unknown option suggests the nearest one and shows the usage line', async () => {
    const r = await cli(['analyze', '--jsn', missing]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--jsn'/);
    expect(r.stderr).toMatch(/Did you mean --json\?/);
    expect(r.stderr).toMatch(/Usage: sonomark analyze \[options\] <FILE\|DIR\.\.\.>/);
    expect(loaded).toEqual([]);
  });

  it.each([
    [[]],
    [['experts']],
    [['analyze']],
    [['frames', missing]],
    [['models', 'extra']],
    [['features', '--execution-provider', 'gpu', missing]],
    [['frames', '--out', os.tmpdir(), '--size', '4', missing]],
    [['experts', 'train', '--kind', 'regression']],
    [['experts', 'train', '--seed', 'x']],
  ])('sonomark %j', async (args) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Usage: sonomark/);
    expect(loaded).toEqual([]);
  });
});

describe('a missing or unreadable path is a usage error before anything starts', () => {
  it('analyze names the missing file, exits 2 and never loads the local workflow', async () => {
    // Act
    const t0 = performance.now();
    const r = await cli(['analyze', '--json', path.join(PACKAGE_ROOT, 'package.json'), missing]);
    const ms = performance.now() - t0;

    // Assess
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${missing}: no such file or directory`);
    expect(r.stderr).toMatch(/Usage: sonomark analyze/);
    expect(loaded).toEqual([]);
    expect(ms).toBeLessThan(2000);
  });

  it('lists every bad input at once', async () => {
    const r = await cli(['analyze', missing, `${missing}.2`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('2 inputs cannot be read');
    expect(r.stderr).toContain(`${missing}.2: no such file or directory`);
  });

  it('names an unreadable path (a file used as a folder) and never loads the local workflow', async () => {
    const through = path.join(PACKAGE_ROOT, 'package.json', 'clip.mp4');
    const r = await cli(['analyze', through]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${through}: a path component is not a directory`);
    expect(loaded).toEqual([]);
  });

  it('analyze rejects a --models-dir that does not exist', async () => {
    const r = await cli(['analyze', '--models-dir', path.dirname(missing) + '-nope', __filename]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--models-dir .*-nope: no such file or directory/);
    expect(loaded).toEqual([]);
  });

  // The one --modality definition (cli/options.ts), on both commands that analyse files.
  it.each([[['analyze']], [['cohort', 'run']]])(
    '%j --modality takes xray or ultrasound only, and names them',
    async (command) => {
      const r = await cli([...command, '--modality', 'ct', __filename]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/argument 'ct' is invalid. Allowed choices are ultrasound, xray/);
      expect(loaded).toEqual([]);
    },
  );

  it.each([[['analyze']], [['cohort', 'run']]])(
    "%j refuses an explicit --modality that its file's own sidecar contradicts, before any service starts",
    async (command) => {
      const dir = tempDir('sonomark-cli-');
      const image = path.join(dir, 'chest.png');
      writeFileSync(image, 'not read');
      writeFileSync(`${image}.meta.json`, JSON.stringify({ modality: 'ultrasound' }));
      const r = await cli([...command, '--modality', 'xray', command.length > 1 ? dir : image]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${image}: its sidecar's "modality" is not xray, but --modality xray was given`);
      // analyze loads no workflow; the cohort's module imports it, but no clip is counted or run
      if (command.length === 1) expect(loaded).toEqual([]);
      expect(r.stderr).not.toMatch(/Cohort of/);
    },
  );

  it("cohort run refuses a manifest row's modality that an explicit --modality contradicts, before any clip runs", async () => {
    const dir = tempDir('sonomark-cli-');
    const clip = path.join(dir, 'clip.mp4');
    writeFileSync(clip, 'not read');
    const csv = path.join(dir, 'cohort.csv');
    writeFileSync(csv, 'file,modality\nclip.mp4,ultrasound\n');
    const r = await cli(['cohort', 'run', '--modality', 'xray', csv]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${clip}: its manifest row's "modality" is not xray, but --modality xray was given`);
    expect(r.stderr).not.toMatch(/Cohort of/);
  });

  it('a directory without clips is a usage error', async () => {
    const r = await cli(['analyze', path.dirname(missing)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/No clips found in /);
  });

  it.each([
    ['features', ['features', missing]],
    ['frames', ['frames', '--out', path.dirname(missing), missing]],
  ])('%s names the missing file and loads no extractor code', async (_name, args) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${missing}: no such file or directory`);
    expect(loaded).toEqual([]);
  });

  it('features rejects an --out whose directory does not exist', async () => {
    const r = await cli(['features', '--out', path.join(missing, 'x.jsonl'), __filename]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out .*x\.jsonl: directory .*no such file or directory/);
    expect(loaded).toEqual([]);
  });

  it('experts train names a missing --labels file and loads no training code', async () => {
    // Prepare
    const features = path.join(path.dirname(missing), 'features.jsonl');
    writeFileSync(features, '');

    // Act
    const r = await cli([
      'experts',
      'train',
      '--features',
      features,
      '--labels',
      missing,
      '--target',
      't',
      '--kind',
      'binary',
      '--name',
      'triage',
    ]);

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--labels ${missing}: no such file or directory`);
    expect(loaded).toEqual([]);
  });
});
