/**
 * `sonomark cohort run` with X-rays (issue 21): real chest X-rays from ../shared/data/cxr, given
 * as X-rays only by `--modality xray` (top-level stills, no sidecar, no xray/ folder), then a
 * cohort of those two and a real ultrasound clip, then a CSV manifest giving a third radiograph its
 * modality in its row beside the clip. Local mode (s3rver, dynalite, real ffmpeg, real
 * ONNX, the synthesized state machine). Each scan must carry its own modality and exactly its own
 * modality's experts: the X-ray FIXTURE models (training/onnx/fixture-xray.ts) beside the shipped
 * ultrasound ones, as the routing test (xray.test.ts) uses.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { CohortSummary } from '../../core/cohort';
import { extractorFor, type LoadedManifest } from '../../core/manifest';
import type { Modality } from '../../core/modality';
import { DEFAULT_MODELS_DIR, PACKAGE_ROOT } from '../../core/paths';
import { getScan, listExpertResultVersions } from '../../core/results-store';
import { LOCAL_TABLE } from '../../local/names';
import { startLocalServices } from '../../local/services';
import { addXrayFixtureModels } from '../../training/onnx/fixture-xray';
import { runCli } from '../helpers/cli';
import { requirePocus } from '../helpers/pocus';
import { REAL_CLIPS, tempDir } from './helpers';

jest.setTimeout(600_000);

const KERMANY = path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'cxr', 'images', 'kermany-pediatric');

describe('sonomark cohort run with X-rays', () => {
  beforeAll(requirePocus);

  it('--modality xray makes top-level stills X-rays; a mixed cohort (a folder, then a manifest with a modality per row) gives each scan its own modality and experts', async () => {
    // Arrange: two real radiographs (links, top level: nothing says X-ray but the flag) and a real clip
    if (!existsSync(KERMANY)) throw new Error(`The chest X-ray data is missing: ${KERMANY}.`);
    const work = tempDir();
    const models = path.join(work, 'models');
    cpSync(DEFAULT_MODELS_DIR, models, { recursive: true });
    const loaded: LoadedManifest = addXrayFixtureModels(models);
    const expertsOf = (m: Modality) =>
      loaded.manifest.experts
        .filter((e) => e.extractor.modality === m)
        .map((e) => e.name)
        .sort();
    const [third, ...rest] = readdirSync(KERMANY).sort().slice(0, 3);
    const xrays = rest;
    const cxrDir = path.join(work, 'cxr');
    const mixedDir = path.join(work, 'mixed');
    mkdirSync(cxrDir);
    mkdirSync(mixedDir);
    for (const f of xrays) {
      symlinkSync(path.join(KERMANY, f), path.join(cxrDir, f));
      symlinkSync(path.join(KERMANY, f), path.join(mixedDir, f));
    }
    symlinkSync(REAL_CLIPS.mp4, path.join(mixedDir, path.basename(REAL_CLIPS.mp4)));
    const dataDir = path.join(work, 'data');
    const out = path.join(work, 'report');
    const base = ['--data-dir', dataDir, '--models-dir', models, '--out', out, '--no-progress'];
    const summaryOf = () => JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as CohortSummary;

    // Act 1: the stills with --modality xray
    const first = await runCli(['cohort', 'run', cxrDir, '--modality', 'xray', ...base]);

    // Assess 1: both analysed (not refused, not read as ultrasound)
    expect(first.stderr).not.toMatch(/^failed/m);
    expect(first.code).toBe(0);
    expect(summaryOf().counts).toMatchObject({ items: 2, analysed: 2, failed: 0 });
    const xrayScanIds = summaryOf().scanIds;

    // Act 2: the mixed cohort, no flag: the stored X-rays under their own modality, the clip analysed
    const second = await runCli(['cohort', 'run', mixedDir, ...base]);

    // Assess 2
    expect(second.stderr).not.toMatch(/^failed/m);
    expect(second.code).toBe(0);
    expect(summaryOf().counts).toMatchObject({ items: 3, analysed: 1, done: 2, failed: 0 });
    const scanIds = summaryOf().scanIds;
    expect(scanIds).toHaveLength(3);
    const services = await startLocalServices(dataDir);
    try {
      for (const scanId of scanIds) {
        const scan = await getScan(services.doc, LOCAL_TABLE, 'local', scanId);
        const modality: Modality = xrayScanIds.includes(scanId) ? 'xray' : 'ultrasound';
        expect({ scanId, status: scan?.status, modality: scan?.modality }).toEqual({
          scanId,
          status: 'COMPLETED',
          modality,
        });
        const x = extractorFor(loaded.manifest, modality);
        expect(scan?.extractor).toMatchObject({ name: x.name, version: x.version });
        const { current } = await listExpertResultVersions(services.doc, LOCAL_TABLE, 'local', scanId);
        expect({ scanId, experts: Object.keys(current).sort() }).toEqual({ scanId, experts: expertsOf(modality) });
      }
    } finally {
      await services.close();
    }
    // The cohort page holds the three, each with its modality's outputs
    const page = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(page).toContain('sonomark cohort report (3 scans)');
    for (const name of [...expertsOf('xray'), ...expertsOf('ultrasound')]) expect(page).toContain(name);
    // Each X-ray as its image, decoded again by the X-ray preprocessing, with its findings; the clip as a clip
    expect(page.match(/alt="The X-ray as the extractor saw it"/g)).toHaveLength(2);
    expect(page.match(/<h4>Image and findings/g)).toHaveLength(2);
    expect(page).toContain('Per-frame probability of each biomarker over the clip');

    // Act 3: one mixed cohort from a CSV manifest, the modality per row: a new radiograph and the clip
    const csv = path.join(work, 'cohort.csv');
    writeFileSync(csv, `file,modality\n${path.join(KERMANY, third!)},xray\n${REAL_CLIPS.mp4},\n`);
    const byRow = await runCli(['cohort', 'run', csv, ...base]);

    // Assess 3: the new still analysed as an X-ray (no --modality given), the clip already done
    expect(byRow.stderr).not.toMatch(/^failed/m);
    expect(byRow.code).toBe(0);
    expect(summaryOf().counts).toMatchObject({ items: 2, analysed: 1, done: 1, failed: 0 });
    const newScanId = summaryOf().scanIds.find((id) => !scanIds.includes(id));
    const again = await startLocalServices(dataDir);
    try {
      const scan = await getScan(again.doc, LOCAL_TABLE, 'local', newScanId!);
      expect(scan?.modality).toBe('xray');
      const { current } = await listExpertResultVersions(again.doc, LOCAL_TABLE, 'local', newScanId!);
      expect(Object.keys(current).sort()).toEqual(expertsOf('xray'));
    } finally {
      await again.close();
    }
  });
});
