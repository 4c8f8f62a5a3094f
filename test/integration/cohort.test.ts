/**
 * `sonomark cohort run` on real clips: the first run analyses every clip, the second skips them
 * all, and after a new expert version is published a third run only scores: it never starts the
 * workflow (so no extractor job can run), with ffmpeg pointed at a path that does not exist.
 * The report files carry the agreement between the two versions, and `sonomark report` renders
 * the cohort folder.
 */
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { CohortSummary } from '../../core/cohort';
import { loadManifest } from '../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../core/paths';
import { directoryInputs, runCohort } from '../../local/cohort';
import { dataDirModelsDir } from '../../local/models';
import { runCli } from '../helpers/cli';
import { requirePocus } from '../helpers/pocus';
import { clip, nextPatch, REAL_CLIPS, shippedExpertVersion, tempDir } from './helpers';

/** The shipped diagnosis version, and the new one this test publishes beside it. */
const SHIPPED = shippedExpertVersion('diagnosis');
const NEXT = nextPatch(SHIPPED);

jest.setTimeout(600_000);

const CLIPS = [
  ...Object.values(REAL_CLIPS),
  clip('videos/convex/Pneu-Atlas-pneumonia2.gif'),
  clip('videos/convex/Cov-Atlas-suspectedCovid.mp4'),
];

describe('sonomark cohort run', () => {
  beforeAll(requirePocus);

  it('analyses, resumes, and re-scores a new expert version without the workflow', async () => {
    // Arrange: a folder of real clips (links) and an empty data dir
    const work = tempDir();
    const cohortDir = path.join(work, 'clips');
    mkdirSync(cohortDir);
    for (const c of CLIPS) symlinkSync(c, path.join(cohortDir, path.basename(c)));
    const dataDir = path.join(work, 'data');
    const out = path.join(work, 'report');
    const summaryOf = () => JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as CohortSummary;

    // Act 1: every clip analysed
    const first = await runCli(['cohort', 'run', cohortDir, '--data-dir', dataDir, '--out', out]);
    expect(first.stderr).not.toMatch(/^failed/m);
    expect(first.code).toBe(0);
    expect(summaryOf().counts).toEqual({ items: CLIPS.length, analysed: CLIPS.length, scored: 0, done: 0, failed: 0 });
    const csv = readFileSync(path.join(out, 'cohort.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(CLIPS.length + 1);
    expect(csv[0]).toMatch(/^item,scanId,action,.*diagnosis\.version,diagnosis\.output,diagnosis\.value/);
    // The page beside them (the one `sonomark report OUT` renders), and the run's id for the API route
    expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toContain(
      `sonomark cohort report (${CLIPS.length} scans)`,
    );
    expect(summaryOf()).toMatchObject({ site: 'local', runId: expect.stringMatching(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/) });
    expect(first.stderr).toContain(`GET /cohorts/${summaryOf().runId}/report`);

    // Act 2: resumed, nothing to do
    const second = await runCli(['cohort', 'run', cohortDir, '--data-dir', dataDir, '--out', out]);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain(`${CLIPS.length} of ${CLIPS.length} already done in an earlier run: skipped.`);
    expect(summaryOf().counts.done).toBe(CLIPS.length);

    // Act 3: a new diagnosis version, then the cohort again with no way to start the workflow or ffmpeg
    const published = await runCli([
      'experts',
      'publish',
      `diagnosis@${NEXT}`,
      '--file',
      path.join(DEFAULT_MODELS_DIR, 'experts', `diagnosis-${SHIPPED}.onnx`),
      '--data-dir',
      dataDir,
    ]);
    expect(published.code).toBe(0);
    const ffmpeg = process.env.FFMPEG_PATH;
    process.env.FFMPEG_PATH = path.join(work, 'no-such-ffmpeg');
    let workflowStarts = 0;
    let third;
    try {
      third = await runCohort(
        directoryInputs(
          cohortDir,
          CLIPS.map((c) => path.join(cohortDir, path.basename(c))),
        ),
        {
          dataDir,
          loaded: loadManifest(dataDirModelsDir(dataDir)),
          startWorkflow: async () => {
            workflowStarts++;
            throw new Error('re-scoring must not start the workflow');
          },
        },
      );
    } finally {
      if (ffmpeg === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = ffmpeg;
    }

    // Assess: every clip scored by NEXT beside SHIPPED, and nothing could have been decoded
    expect(workflowStarts).toBe(0);
    expect(third.map((o) => o.action)).toEqual(CLIPS.map(() => 'scored'));
    for (const o of third) {
      expect(o.current.diagnosis).toBe(NEXT);
      expect(
        o.results
          .filter((r) => r.expert.name === 'diagnosis')
          .map((r) => r.expert.version)
          .sort(),
      ).toEqual([SHIPPED, NEXT].sort());
    }

    // The CLI's report files then show the agreement (a fourth run: all done, the versions still both stored)
    const fourth = await runCli(['cohort', 'run', cohortDir, '--data-dir', dataDir, '--out', out]);
    expect(fourth.code).toBe(0);
    expect(summaryOf().agreement.diagnosis).toEqual([
      {
        previous: SHIPPED,
        current: NEXT,
        scans: CLIPS.length,
        sameHeadline: CLIPS.length,
        agreement: 1,
        meanAbsDiff: 0,
      },
    ]);
    expect(summaryOf().models.experts).toContain(`diagnosis@${NEXT}`);

    // And the HTML page of the cohort folder
    const page = await runCli(['report', out, '--no-thumbnails']);
    expect(page.code).toBe(0);
    expect(page.stdout.trim()).toBe(path.join(out, 'report.html'));
    expect(existsSync(path.join(out, 'report.html'))).toBe(true);
    expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toContain('Agreement between expert versions');
  });

  it('refuses a manifest without a file column, before any service starts', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'cohort.csv'), 'name\nclip.mp4\n');
    const r = await runCli(['cohort', 'run', path.join(dir, 'cohort.csv'), '--data-dir', path.join(dir, 'data')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/"file" \(or "path"\) column/);
  });
});
