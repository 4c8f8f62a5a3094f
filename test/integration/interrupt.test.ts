/**
 * Ctrl-C and locks in local mode, through the built CLI (npm run build) as a user runs
 * it: SIGINT during Extract exits 130 and leaves no temp files, no ffmpeg and no scan
 * RUNNING, and the next run analyses the clip; a second run on a locked data dir is told
 * which process holds it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths';
import { defaultFfmpegPath } from '../../gpu-tasks/feature-extractor/src/decode';
import { LOCK_FILE } from '../../local/lock';
import { LocalWorkflow } from '../../local/workflow';
import { generateClip, tempDir } from './helpers';

jest.setTimeout(180_000);

const CLI = path.join(PACKAGE_ROOT, 'bin', 'sonomark.js');

interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<Finished> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<Finished>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Processes whose command line mentions `needle` (ffmpeg's input sits in the run's private temp dir). */
function processesMentioning(needle: string): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.stdout
    .split('\n')
    .filter((l) => l.includes(needle) && !l.includes('ps -eo'))
    .map((l) => l.trim());
}

describe('sonomark analyze: interrupted, and locked', () => {
  const work = tempDir();
  // 40 frames at 2 fps: with ffmpeg reading at the native rate (-re) Extract lasts ~20 s.
  const clip = generateClip(work, 'slow.avi', 40, ['-r', '2']);
  // ffmpeg, slowed to real time: the Extract state is long enough to be interrupted in.
  const slowFfmpeg = path.join(work, 'slow-ffmpeg.sh');
  writeFileSync(slowFfmpeg, `#!/bin/sh\nexec '${defaultFfmpegPath()}' -re "$@"\n`);
  chmodSync(slowFfmpeg, 0o755);

  it('SIGINT during Extract: exit 130, no temp files, no ffmpeg left, the scan FAILED (INTERRUPTED); the next run completes it', async () => {
    // Prepare
    const dataDir = tempDir('sonomark-interrupt-data-');
    const tmp = tempDir('sonomark-interrupt-tmp-');
    const env = { ...process.env, TMPDIR: tmp, FFMPEG_PATH: slowFfmpeg };
    const first = run(['analyze', '--json', '--data-dir', dataDir, clip], env);
    // Extract has begun once the decoder's private temp dir exists.
    await waitFor(
      'Extract (a sonomark-decode- temp dir)',
      () =>
        readdirSync(tmp).some((e) => e.startsWith('sonomark-job-')) &&
        processesMentioning(tmp).some((p) => p.includes('-re')),
    );

    // Act
    first.child.kill('SIGINT');
    const interrupted = await first.done;

    // Assess
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(/Interrupted by SIGINT/);
    const line = JSON.parse(interrupted.stdout.trim().split('\n').pop()!);
    expect(line).toMatchObject({ status: 'failed', error: { code: 'INTERRUPTED' } });
    expect(readdirSync(tmp).filter((e) => e.startsWith('sonomark-'))).toEqual([]);
    expect(processesMentioning(tmp)).toEqual([]);
    expect(existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
    const scanId = line.scanId as string;
    const stored = await LocalWorkflow.start({ dataDir });
    try {
      const { getScan } = await import('../../core/results-store');
      const { LOCAL_TABLE } = await import('../../local/names');
      const scan = await getScan(stored.services.doc, LOCAL_TABLE, stored.siteId, scanId);
      expect(scan).toMatchObject({ status: 'FAILED', error: { code: 'INTERRUPTED' } });
    } finally {
      await stored.close();
    }

    // Act: the next run, at normal speed, on the same data dir.
    const second = run(['analyze', '--json', '--data-dir', dataDir, clip], { ...process.env, TMPDIR: tmp });
    const again = await second.done;

    // Assess: analysed again (not "already analysed"), to COMPLETED.
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout.trim())).toMatchObject({ scanId, status: 'completed', reused: false });
    expect(readdirSync(tmp).filter((e) => e.startsWith('sonomark-'))).toEqual([]);
  });

  it('a second run on a data dir in use is told which dir and which pid hold it; a stale lock is taken over', async () => {
    // Prepare
    const dataDir = tempDir('sonomark-lock-data-');
    const holder = await LocalWorkflow.start({ dataDir });
    let blocked: Finished;
    try {
      // Act
      blocked = await run(['analyze', '--json', '--data-dir', dataDir, clip], process.env).done;
    } finally {
      await holder.close();
    }

    // Assess
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toContain(
      `The data directory ${dataDir} is in use by another sonomark process (pid ${process.pid})`,
    );
    expect(blocked.stderr).not.toMatch(/Database is closed|\n\s+at /);

    // Prepare: a lock left by a process that no longer exists.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(path.join(dataDir, LOCK_FILE), `${dead.stdout}\n`);
    // Act
    const after = await run(['analyze', '--json', '--data-dir', dataDir, clip], process.env).done;
    // Assess
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout.trim())).toMatchObject({ status: 'completed' });
    expect(existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
  });
});
