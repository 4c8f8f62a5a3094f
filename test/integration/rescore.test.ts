/**
 * Re-scoring stored features with a new expert version, as a user runs it: analyse real clips
 * into a data dir, publish a new diagnosis version into it, `sonomark rescore`. The new
 * version's results land beside the old ones and become current, without a frame decoded:
 * the uploaded clips are removed from the data dir and ffmpeg is pointed at a path that does
 * not exist before the re-score, so any decode or extractor job would fail it.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_MODELS_DIR } from '../../core/paths';
import { listExpertResults, listExpertResultVersions, listScans } from '../../core/results-store';
import { LOCAL_TABLE, LOCAL_UPLOADS_BUCKET } from '../../local/names';
import { startLocalServices } from '../../local/services';
import { runCli } from '../helpers/cli';
import { requirePocus } from '../helpers/pocus';
import { escapeRegExp, nextPatch, REAL_CLIPS, shippedExpertVersion, tempDir } from './helpers';

jest.setTimeout(400_000);

/** The shipped diagnosis version, and the new one this test publishes beside it. */
const SHIPPED = shippedExpertVersion('diagnosis');
const NEXT = nextPatch(SHIPPED);

/** `sonomark analyze`'s default site (--site): the scans below live in its partition. */
const LOCAL_SITE = 'local';

describe('sonomark rescore', () => {
  beforeAll(requirePocus);

  it('stores a published version beside the old one, moves the pointer, and decodes nothing', async () => {
    // Arrange: two real clips analysed into a data dir
    const dataDir = tempDir();
    const analyzed = await runCli(['analyze', '--json', '--data-dir', dataDir, REAL_CLIPS.gif, REAL_CLIPS.mp4]);
    expect(analyzed.code).toBe(0);
    const scanIds = analyzed.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { scanId: string }).scanId);
    // A new diagnosis version published into the data dir (the shipped weights under NEXT: the
    // storage and pointer are what this test is about; the agreement then reads 100%).
    const card = path.join(tempDir(), 'diagnosis.md');
    writeFileSync(card, `# diagnosis ${NEXT}\n\nThe shipped diagnosis weights, republished to test re-scoring.\n`);
    const published = await runCli([
      'experts',
      'publish',
      `diagnosis@${NEXT}`,
      '--file',
      path.join(DEFAULT_MODELS_DIR, 'experts', `diagnosis-${SHIPPED}.onnx`),
      '--card',
      card,
      '--data-dir',
      dataDir,
    ]);
    expect(published.stderr).toMatch(new RegExp(`diagnosis@${escapeRegExp(NEXT)} registered`));
    expect(published.code).toBe(0);
    expect(existsSync(path.join(dataDir, 'models', 'experts', `diagnosis-${NEXT}.md`))).toBe(true);
    // Nothing left to decode: the uploads are gone and ffmpeg cannot start.
    rmSync(path.join(dataDir, 's3', LOCAL_UPLOADS_BUCKET), { recursive: true, force: true });
    const ffmpeg = process.env.FFMPEG_PATH;
    process.env.FFMPEG_PATH = path.join(dataDir, 'no-such-ffmpeg');

    try {
      // Act
      const first = await runCli(['rescore', '--json', '--data-dir', dataDir, '--experts', `diagnosis@${NEXT}`]);
      const second = await runCli(['rescore', '--json', '--data-dir', dataDir]);

      // Assess: both scans re-scored once; the second run (every expert of the data dir's manifest) finds all current
      expect(first.code).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ scans: 2, rescored: 2, failed: 0, skipped: 0 });
      expect(JSON.parse(first.stdout).outcomes[0].moved).toEqual({ diagnosis: { from: SHIPPED, to: NEXT } });
      expect(JSON.parse(second.stdout)).toMatchObject({ scans: 2, rescored: 0, unchanged: 2 });
    } finally {
      if (ffmpeg === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = ffmpeg;
    }
    const services = await startLocalServices(dataDir);
    try {
      for (const scanId of scanIds) {
        const all = await listExpertResultVersions(services.doc, LOCAL_TABLE, LOCAL_SITE, scanId);
        const diagnosis = all.results.filter((r) => r.expert.name === 'diagnosis');
        expect(diagnosis.map((r) => r.expert.version).sort()).toEqual([SHIPPED, NEXT].sort());
        expect(diagnosis[0]?.output).toEqual(diagnosis[1]?.output);
        expect(all.current).toEqual({
          'b-lines': shippedExpertVersion('b-lines'),
          diagnosis: NEXT,
          severity: shippedExpertVersion('severity'),
          triage: shippedExpertVersion('triage'),
        });
        const current = await listExpertResults(services.doc, LOCAL_TABLE, LOCAL_SITE, scanId);
        expect(current.map((r) => `${r.expert.name}@${r.expert.version}`).sort()).toEqual([
          `b-lines@${shippedExpertVersion('b-lines')}`,
          `diagnosis@${NEXT}`,
          `severity@${shippedExpertVersion('severity')}`,
          `triage@${shippedExpertVersion('triage')}`,
        ]);
      }
      const scans = await listScans(services.doc, LOCAL_TABLE);
      expect(scans.map((s) => s.summary?.expertVersions.diagnosis?.version)).toEqual([NEXT, NEXT]);
    } finally {
      await services.close();
    }
  });

  it('refuses an expert version the manifest does not have, naming what it has', async () => {
    const dataDir = tempDir();
    await runCli(['analyze', '--json', '--data-dir', dataDir, REAL_CLIPS.gif]);
    const r = await runCli(['rescore', '--data-dir', dataDir, '--experts', 'diagnosis@9.9.9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(`diagnosis@9\\.9\\.9 is not in the manifest \\(it has diagnosis@${escapeRegExp(SHIPPED)}`),
    );
  });
});
