/**
 * One workflow, routed by modality (issue 21): real chest X-rays from ../shared/data/cxr through the
 * synthesized state machine in local mode (s3rver, dynalite, real ffmpeg, real ONNX), beside an
 * ultrasound clip in the same run. The X-ray models are the FIXTURE X-ray extractor and experts
 * (training/onnx/fixture-xray.ts) added to the shipped models, so the routing is tested without
 * depending on the trained X-ray models; the ultrasound models are the shipped ones.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { extractorFor } from '../../core/manifest';
import { XRAY_FINDINGS } from '../../core/modality';
import { BIOMARKERS } from '../../core/biomarkers';
import { DEFAULT_MODELS_DIR, PACKAGE_ROOT } from '../../core/paths';
import { getScan } from '../../core/results-store';
import { defaultFfmpegPath } from '../../gpu-tasks/feature-extractor/src/decode';
import { renderStoredReport } from '../../local/report';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE, LocalWorkflow, type AnalyzeResult } from '../../local/workflow';
import { addXrayFixtureModels, FIXTURE_XRAY_EXPERTS } from '../../training/onnx/fixture-xray';
import { buildDicom } from '../helpers/dicom';
import { REAL_CLIPS, tempDir, writeFile } from './helpers';

jest.setTimeout(300_000);

const CXR = path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'cxr', 'images');
const STUDY = 'it-xray';
/** The CR Image Storage SOP class: what a computed radiography file says it is. */
const CR_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.1';

/** Real chest X-rays: distinct bytes for each case (the same bytes in one study are one scan). */
function cxrImages(n: number): string[] {
  if (!existsSync(CXR)) throw new Error(`The chest X-ray data is missing: ${CXR} (see ../shared/data/cxr/README.md).`);
  const dir = path.join(CXR, 'kermany-pediatric');
  return readdirSync(dir)
    .sort()
    .slice(0, n)
    .map((f) => path.join(dir, f));
}

function ffmpeg(args: string[]): Buffer {
  const r = spawnSync(defaultFfmpegPath(), ['-hide_banner', '-loglevel', 'error', ...args], {
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
  return r.stdout;
}

describe('X-rays through the same workflow as ultrasound', () => {
  const work = tempDir();
  let workflow: LocalWorkflow;
  const xrayExperts = FIXTURE_XRAY_EXPERTS.map((e) => e.name).sort();

  beforeAll(async () => {
    const models = path.join(work, 'models');
    cpSync(DEFAULT_MODELS_DIR, models, { recursive: true });
    addXrayFixtureModels(models);
    workflow = await LocalWorkflow.start({ modelsDir: models, studyId: STUDY });
  });
  afterAll(async () => {
    await workflow?.close();
  });

  function expectXray(r: AnalyzeResult): void {
    if (r.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(r.error)}`);
    expect(r.modality).toBe('xray');
    const f = r.features!;
    expect(f.modality).toBe('xray');
    const x = extractorFor(workflow.loaded.manifest, 'xray');
    expect(f.extractor).toEqual({ name: x.name, version: x.version, sha256: x.sha256 });
    // One image: no frame sampling.
    expect(f.sampling.frameIndices).toEqual([0]);
    expect(Object.keys(f.biomarkers)).toEqual([...XRAY_FINDINGS]);
    // Exactly the X-ray experts scored it.
    expect(Object.keys(r.experts).sort()).toEqual(xrayExperts);
    for (const out of Object.values(r.experts)) expect(out.kind).toBe('binary');
  }

  it('a PNG with --modality xray, a JPEG under the xray/ folder and a DICOM CR get the X-ray extractor and experts; an ultrasound clip in the same run gets exactly the ultrasound ones', async () => {
    // Prepare: a real radiograph as PNG, another as JPEG, a third inside a DICOM CR built with dcmjs.
    const [pngSource, jpeg, crSource] = cxrImages(3) as [string, string, string];
    const png = path.join(work, 'chest.png');
    ffmpeg(['-y', '-i', pngSource, png]);
    const size = 224; // the Kermany copies are 224×224
    const gray = ffmpeg(['-i', crSource, '-vf', `scale=${size}:${size}`, '-f', 'rawvideo', '-pix_fmt', 'gray', '-']);
    expect(gray.length).toBe(size * size);
    const cr = writeFile(
      work,
      'chest.dcm',
      buildDicom({
        rows: size,
        columns: size,
        frames: [gray],
        extra: { Modality: 'CR', SOPClassUID: CR_SOP_CLASS },
      }),
    );

    // Act
    const viaFlag = await workflow.analyze(png, 'chest.png', { modality: { modality: 'xray', explicit: true } });
    const viaFolder = await workflow.analyze(jpeg, 'xray/chest.jpeg', { modality: null });
    // The CLI's default (ultrasound, not explicit) does not stand against the DICOM Modality.
    const viaDicom = await workflow.analyze(cr, 'chest.dcm');
    const ultrasound = await workflow.analyze(REAL_CLIPS.mp4, 'clip.mp4');

    // Assess
    expectXray(viaFlag);
    expectXray(viaFolder);
    expectXray(viaDicom);
    expect(viaDicom.features!.dicom?.modality).toBe('CR');
    if (ultrasound.status !== 'completed') throw new Error(JSON.stringify(ultrasound.error));
    expect(ultrasound.modality).toBe('ultrasound');
    const us = extractorFor(workflow.loaded.manifest, 'ultrasound');
    expect(ultrasound.features!.extractor.name).toBe(us.name);
    expect(ultrasound.features!.modality).toBe('ultrasound');
    expect(Object.keys(ultrasound.features!.biomarkers)).toEqual([...BIOMARKERS]);
    expect(Object.keys(ultrasound.experts).sort()).toEqual(
      workflow.loaded.manifest.experts
        .filter((e) => e.extractor.modality === 'ultrasound')
        .map((e) => e.name)
        .sort(),
    );
    expect(ultrasound.features!.sampling.frameIndices.length).toBeGreaterThan(1);

    // The report of an X-ray shows its image and findings, not an ultrasound timeline.
    const scan = await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, viaFlag.scanId!);
    expect(scan?.modality).toBe('xray');
    const { html } = await renderStoredReport(
      {
        s3: workflow.services.s3,
        doc: workflow.services.doc,
        table: LOCAL_TABLE,
        artifactsBucket: LOCAL_ARTIFACTS_BUCKET,
      },
      [{ scan: scan! }],
      { title: 'x', source: 'x', manifest: workflow.loaded.manifest },
    );
    expect(html).toContain('Image and findings');
    expect(html).toMatch(/<img src="data:image\/png;base64,[A-Za-z0-9+/]+=*" width="128" height="128"/);
    expect(html).toContain('data-chart="findings"');
    expect(html).not.toContain('data-chart="timeline"');
    for (const name of xrayExperts) expect(html).toContain(`data-chart="expert-${name}"`);
  });

  it("computeMode 'lambda': the extractor function gets the scan's modality in its payload and runs the X-ray extractor", async () => {
    const lambdaMode = await LocalWorkflow.start({
      modelsDir: workflow.loaded.dir,
      studyId: `${STUDY}-lambda`,
      context: { computeMode: 'lambda' },
    });
    try {
      const [image] = cxrImages(1) as [string];
      expectXray(await lambdaMode.analyze(image, 'chest.jpeg', { modality: { modality: 'xray', explicit: true } }));
      const clip = await lambdaMode.analyze(REAL_CLIPS.mp4, 'clip.mp4');
      expect(clip).toMatchObject({ status: 'completed', modality: 'ultrasound', features: { modality: 'ultrasound' } });
    } finally {
      await lambdaMode.close();
    }
  });

  it('refuses a still with no hint (MODALITY_REQUIRED) and a DICOM US given an explicit X-ray hint (MODALITY_CONFLICT), as FAILED scans', async () => {
    // Prepare
    const [, , , still] = cxrImages(4) as [string, string, string, string];
    const us = writeFile(
      work,
      'us.dcm',
      buildDicom({ rows: 64, columns: 64, frames: [Buffer.alloc(64 * 64, 90), Buffer.alloc(64 * 64, 160)] }),
    );

    // Act
    const noHint = await workflow.analyze(still, 'still.jpeg', { modality: null });
    const conflict = await workflow.analyze(us, 'us.dcm', { modality: { modality: 'xray', explicit: true } });

    // Assess
    expect(noHint).toMatchObject({ status: 'failed', error: { code: 'MODALITY_REQUIRED' } });
    expect(noHint.error!.message).toMatch(/--modality/);
    expect(conflict).toMatchObject({ status: 'failed', error: { code: 'MODALITY_CONFLICT' } });
    for (const r of [noHint, conflict]) {
      const scan = await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, r.scanId!);
      expect(scan).toMatchObject({ status: 'FAILED', error: r.error });
    }
  });
});
