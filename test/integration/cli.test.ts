/**
 * `sonomark analyze` as a user runs it: the launcher in bin/, the compiled CLI,
 * a real clip, --json on stdout, progress and models on stderr, the exit code.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { decodeFrameBytes } from '../../gpu-tasks/feature-extractor/src';
import { PACKAGE_ROOT } from '../../core/paths';
import { REAL_CLIPS, tempDir, writeFile } from './helpers';

jest.setTimeout(180_000);

const run = (args: string[]) =>
  spawnSync(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'sonomark.js'), ...args], {
    cwd: PACKAGE_ROOT,
    encoding: 'utf8',
  });

describe('sonomark analyze', () => {
  it('prints one JSON object per input, attempts every input, and exits 1 when one failed', () => {
    // Prepare
    const bad = writeFile(tempDir(), 'not-a-clip.gif', 'GIF? no, just text');

    // Act
    const r = run(['analyze', '--json', REAL_CLIPS.gif, bad]);

    // Assess
    expect(r.status).toBe(1);
    type Row = Record<string, any>;
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Row);
    expect(rows.map((x) => x.status)).toEqual(['completed', 'failed']);
    const ok = rows[0] as Row;
    expect(Object.keys(ok)).toEqual(
      expect.arrayContaining(['file', 'scanId', 'status', 'features', 'experts', 'timings']),
    );
    expect(['covid', 'pneumonia', 'healthy']).toContain(ok.experts.diagnosis.label);
    expect(Object.keys(ok.experts.diagnosis.probabilities).sort()).toEqual(['covid', 'healthy', 'pneumonia']);
    expect(ok.experts.severity.score).toBeGreaterThanOrEqual(0);
    expect(ok.experts.severity.score).toBeLessThanOrEqual(3);
    expect(ok.experts.triage.abnormal).toBeGreaterThanOrEqual(0);
    expect(ok.experts.triage.abnormal).toBeLessThanOrEqual(1);
    expect((rows[1] as Row).error.code).toBe('UNSUPPORTED_FORMAT');
    // Models and progress go to stderr, with name, version and sha256.
    expect(r.stderr).toMatch(/Models:/);
    expect(r.stderr).toMatch(/sha256 [0-9a-f]{16}/);
    expect(r.stderr).toMatch(/\[2\/2\]/);
  });

  it('prints a readable table and exits 0 when every clip completed', () => {
    // Act
    const r = run(['analyze', REAL_CLIPS.mp4]);

    // Assess
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/status\s+completed/);
    expect(r.stdout).toMatch(/diagnosis\s+(covid|pneumonia|healthy)/);
    expect(r.stdout).toMatch(/b_lines/);
  });

  it('exits 2 with the usage on a usage error', () => {
    const r = run(['analyze']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Usage:/);
  });

  it('reports a missing file as a usage error, naming it, before any service starts', () => {
    // Prepare
    const missing = path.join(tempDir(), 'missing.mp4');

    // Act
    const t0 = performance.now();
    const r = run(['analyze', '--json', REAL_CLIPS.gif, missing]);
    const ms = performance.now() - t0;

    // Assess: no JSON rows, no models banner (printed once the workflow has started), and fast.
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${missing}: no such file or directory`);
    expect(r.stderr).not.toMatch(/Models:/);
    expect(ms).toBeLessThan(10_000);
  });

  it('suggests the nearest command for a typo and exits 2', () => {
    const r = run(['analyse', REAL_CLIPS.gif]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'analyse'\n\(Did you mean analyze\?\)/);
  });

  it('prints the package version', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);
  });

  it('sonomark frames writes exactly the pixels the extractor sees, as .npy', async () => {
    // Prepare
    const out = tempDir();

    // Act
    const r = run(['frames', '--out', out, REAL_CLIPS.avi]);

    // Assess
    expect(r.status).toBe(0);
    const npy = readFileSync(path.join(out, `${path.basename(REAL_CLIPS.avi, '.avi')}.npy`));
    const headerLength = npy.readUInt16LE(8);
    const expected = await decodeFrameBytes(REAL_CLIPS.avi, { size: 128, maxFrames: 64 });
    expect(npy.subarray(10, 10 + headerLength).toString('latin1')).toContain(
      `'shape': (${expected.count}, 1, 128, 128)`,
    );
    expect(Buffer.compare(npy.subarray(10 + headerLength), Buffer.from(expected.bytes))).toBe(0);
    const index = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8'));
    expect(index.clips[0].frameIndices).toEqual(expected.frameIndices);
  });
});
