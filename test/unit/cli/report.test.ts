/**
 * sonomark report's usage errors, found before any local service starts (the browser
 * suite, test/browser/report.test.ts, renders real pages from analysed clips).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../../helpers/cli';
import { tempDir } from '../../helpers/temp';

describe('sonomark report', () => {
  it('asks for the data dir analyze kept, when none is given', async () => {
    // Act
    const r = await runCli(['report', '--out', tempDir(), 'f'.repeat(32)]);

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/reads what "sonomark analyze --data-dir DIR" stored: give that --data-dir DIR/);
  });

  it('says to run analyze first when the data dir holds no analysis', async () => {
    // Prepare
    const empty = tempDir();

    // Act
    const r = await runCli(['report', '--data-dir', empty, '--out', tempDir()]);

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `Nothing has been analysed into ${empty} yet: run "sonomark analyze --data-dir ${empty} FILE..." first.`,
    );
  });

  it('needs --out', async () => {
    // Act
    const r = await runCli(['report', '--data-dir', tempDir()]);

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '--out <DIR>' not specified/);
  });

  it('analyze --report refuses a file where the directory should be, before any service starts', async () => {
    // Prepare
    const dir = tempDir();
    const file = path.join(dir, 'report.html');
    writeFileSync(file, '');
    const clip = path.join(dir, 'clip.mp4');
    writeFileSync(clip, 'x');

    // Act
    const r = await runCli(['analyze', '--report', file, clip]);

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--report ${file}: not a directory`);
  });
});
