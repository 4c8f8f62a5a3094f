/**
 * Runs the extractor's Python recipe (training/python/train_extractor.py) as a child process.
 *
 * The recipe needs PyTorch and onnx; on this project's machines they come from Debian
 * (`apt-get install python3-torch python3-onnx`) for /usr/bin/python3, so that is the default
 * interpreter; PYTHON points elsewhere (a venv, a CUDA build). training/python/requirements.txt
 * lists the versions.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../core/paths';
import { TrainingSetupError } from './errors';

export const DEFAULT_PYTHON = '/usr/bin/python3';
/** What to apt-get install when the interpreter lacks the recipe's packages. */
export const RECIPE_APT_PACKAGES = ['python3-torch', 'python3-onnx'] as const;
export const RECIPE_SCRIPT = path.join(PACKAGE_ROOT, 'training', 'python', 'train_extractor.py');
/** The chest X-ray extractor's recipe (sonomark train xray). */
export const XRAY_RECIPE_SCRIPT = path.join(PACKAGE_ROOT, 'training', 'python', 'train_xray.py');

/** The interpreter to run the recipe with: $PYTHON, else Debian's python3. */
export function pythonInterpreter(env: NodeJS.ProcessEnv = process.env): string {
  return env.PYTHON || DEFAULT_PYTHON;
}

/** Throws a TrainingSetupError naming the apt packages unless `python` can import torch and onnx. */
export function checkRecipeDependencies(python: string): void {
  const probe = spawnSync(python, ['-c', 'import torch, onnx'], { encoding: 'utf8', timeout: 120_000 });
  if (probe.status === 0) return;
  const why = probe.error
    ? (probe.error as NodeJS.ErrnoException).code === 'ENOENT'
      ? `${python} does not exist`
      : probe.error.message
    : (probe.stderr.trim().split('\n').at(-1) ?? `exit status ${probe.status}`);
  throw new TrainingSetupError(
    `The extractor recipe needs PyTorch and onnx for ${python} (${why}): ` +
      `apt-get install ${RECIPE_APT_PACKAGES.join(' ')}, or set PYTHON to an interpreter that has them ` +
      '(training/python/requirements.txt lists the versions).',
  );
}

/**
 * Runs `python args…` in the package root, passing each line it prints to `log`; resolves when it
 * exits 0 and rejects with the command and its exit status otherwise.
 */
export function runPython(python: string, args: readonly string[], log: (line: string) => void): Promise<void> {
  const command = [python, ...args].join(' ');
  return new Promise((resolve, reject) => {
    // Unbuffered: the recipe's progress arrives as it happens, not when a pipe buffer fills.
    const child = spawn(python, args, {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = (stream: NodeJS.ReadableStream) => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        for (const line of parts) log(line);
      });
      stream.on('end', () => {
        if (rest) log(rest);
      });
    };
    lines(child.stdout);
    lines(child.stderr);
    child.on('error', (e) => reject(new TrainingSetupError(`Cannot run ${command}: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(new TrainingSetupError(`${command} failed (${signal ? `signal ${signal}` : `exit status ${code}`}).`));
    });
  });
}
