/** The Python recipe as a child process: which interpreter, the packages check, and how a run is reported. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { TrainingSetupError } from '../../../training/errors';
import { checkRecipeDependencies, DEFAULT_PYTHON, pythonInterpreter, runPython } from '../../../training/python-recipe';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sonomark-python-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in interpreter: a shell script. */
function fakePython(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

describe('pythonInterpreter', () => {
  it("is $PYTHON when set, else Debian's python3", () => {
    expect(pythonInterpreter({ PYTHON: '/opt/venv/bin/python' })).toBe('/opt/venv/bin/python');
    expect(pythonInterpreter({})).toBe(DEFAULT_PYTHON);
    expect(pythonInterpreter({ PYTHON: '' })).toBe('/usr/bin/python3');
  });
});

describe('checkRecipeDependencies', () => {
  it('passes when the interpreter imports torch and onnx', () => {
    const python = fakePython('ok', '[ "$1" = "-c" ] && [ "$2" = "import torch, onnx" ] && exit 0; exit 3');
    expect(() => checkRecipeDependencies(python)).not.toThrow();
  });

  it('names the apt packages and what the interpreter said when a package is missing', () => {
    // Prepare
    const python = fakePython('no-torch', `echo "ModuleNotFoundError: No module named 'torch'" >&2; exit 1`);

    // Act
    let err: Error | undefined;
    try {
      checkRecipeDependencies(python);
    } catch (e) {
      err = e as Error;
    }

    // Assess
    expect(err).toBeInstanceOf(TrainingSetupError);
    expect(err?.message).toContain(
      `needs PyTorch and onnx for ${python} (ModuleNotFoundError: No module named 'torch')`,
    );
    expect(err?.message).toContain('apt-get install python3-torch python3-onnx');
    expect(err?.message).toContain('set PYTHON');
  });

  it('says so when the interpreter does not exist', () => {
    const python = path.join(dir, 'missing-python');
    expect(() => checkRecipeDependencies(python)).toThrow(`(${python} does not exist)`);
  });
});

describe('runPython', () => {
  it('passes every line the recipe prints, stdout and stderr, to the log', async () => {
    // Prepare
    const python = fakePython('echo', 'echo "args: $*"; echo "to stderr" >&2; printf "no newline"');
    const lines: string[] = [];

    // Act
    await runPython(python, ['train_extractor.py', '--data', 'd', '--loso'], (l) => lines.push(l));

    // Assess
    expect(lines).toEqual(
      expect.arrayContaining(['args: train_extractor.py --data d --loso', 'to stderr', 'no newline']),
    );
    expect(lines).toHaveLength(3);
  });

  it('rejects with the command and its exit status when the recipe fails', async () => {
    const python = fakePython('fail', 'exit 7');
    await expect(runPython(python, ['x.py'], () => {})).rejects.toThrow(
      new TrainingSetupError(`${python} x.py failed (exit status 7).`),
    );
  });

  it('rejects when the interpreter cannot start', async () => {
    await expect(runPython(path.join(dir, 'nope'), ['x.py'], () => {})).rejects.toThrow(/^Cannot run .*nope x\.py/);
  });
});
