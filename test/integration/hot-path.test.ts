/**
 * What a cold `sonomark analyze` loads. The workflow definition comes from the cache that
 * `npm run build` fills (local/definition.ts), so the CDK app is never synthesized on the hot
 * path: aws-cdk-lib, constructs and cdk-nag (together most of a synthesis's load time) must not
 * be loaded at all, not even for one constant. Speed itself is measured by `npm run bench`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths';
import { REAL_CLIPS, tempDir } from './helpers';

jest.setTimeout(180_000);

/** A preload script that writes every module the process loaded (require.cache) to `out` on exit. */
function moduleRecorder(dir: string, out: string): string {
  const file = path.join(dir, 'record-modules.js');
  writeFileSync(
    file,
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, Object.keys(require.cache).join('\\n')));\n`,
  );
  return file;
}

describe('a cold sonomark analyze', () => {
  it('runs the cached definition without loading the CDK libraries', () => {
    // Prepare
    const dir = tempDir();
    const out = path.join(dir, 'modules.txt');
    const recorder = moduleRecorder(dir, out);

    // Act
    const r = spawnSync(
      process.execPath,
      ['--require', recorder, path.join(PACKAGE_ROOT, 'bin', 'sonomark.js'), 'analyze', '--json', REAL_CLIPS.mp4],
      { cwd: PACKAGE_ROOT, encoding: 'utf8' },
    );

    // Assess
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout.trim()) as { status: string }).status).toBe('completed');
    const loaded = readFileSync(out, 'utf8').split('\n');
    // The recorder saw the run itself (so an empty list cannot pass for a clean one).
    expect(loaded.some((m) => /[\\/]dist[\\/]local[\\/]workflow\.js$/.test(m))).toBe(true);
    expect(loaded.some((m) => /node_modules[\\/]onnxruntime-node[\\/]/.test(m))).toBe(true);
    const cdk = loaded.filter((m) => /node_modules[\\/](aws-cdk-lib|constructs|cdk-nag)[\\/]/.test(m));
    expect(cdk).toEqual([]);
  });
});
