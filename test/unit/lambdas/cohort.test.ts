/**
 * The cohort workflow's three handlers (plan, score, report) against real local stores (s3rver,
 * dynalite) and the shipped models published into the artifacts bucket: a batch is split into
 * score-only and extract items by the clips' bytes, the extractor's item list is what the batch
 * extractor reads, scoring runs the manifest's experts, a second run has nothing to do, and the
 * report gathers the outcomes into cohort.csv and summary.json.
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { PNG } from 'pngjs';
import { uploadModelsToBucket } from '../../../core/bucket-models';
import {
  COHORT_CSV,
  COHORT_REPORT_HTML,
  COHORT_SUMMARY,
  type CohortItemOutcome,
  type CohortSummary,
} from '../../../core/cohort';
import { batchOutcomesKey, cohortRunPrefix } from '../../../core/cohort-run';
import { extractErrorKey, featuresKey } from '../../../core/keys';
import { expertsFor, loadManifest } from '../../../core/manifest';
import { XRAY_FINDINGS } from '../../../core/modality';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { listExpertResultVersions, scanKey } from '../../../core/results-store';
import { scanIdFromContent, sha256Hex } from '../../../core/scan-id';
import { ExtractItems } from '../../../gpu-tasks/feature-extractor/src/batch';
import { planBatch, type PlanDeps } from '../../../lambdas/cohort-plan/plan';
import { CLOUD_THUMBNAILS_OMITTED, writeCohortReport } from '../../../lambdas/cohort-report/report';
import { scoreBatch, type ScoreBatchDeps } from '../../../lambdas/cohort-score/score';
import { ensureBucket, ensureResultsTable, startLocalServices, type LocalServices } from '../../../local/services';
import { tempDir } from '../../helpers/temp';
import { featuresDocument } from '../helpers/fakes';

// Scoring runs the ONNX experts and the report renders every chart: seconds on a loaded machine, not a speed target.
jest.setTimeout(60_000);

const UPLOADS = 'uploads';
const ARTIFACTS = 'artifacts';
const TABLE = 'results';
const SITE = 'site-a';
const RUN = cohortRunPrefix(SITE, 'run-1');
const loaded = loadManifest(DEFAULT_MODELS_DIR);
const x = loaded.manifest.extractors.ultrasound;
const extractor = { name: x.name, version: x.version, sha256: x.sha256 };

let services: LocalServices;
let planDeps: PlanDeps;
let scoreDeps: ScoreBatchDeps;

const put = (bucket: string, key: string, body: string | Buffer) =>
  services.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
const text = async (bucket: string, key: string) =>
  (await (await services.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body?.transformToString()) ?? '';

// Three clips of site-a (bytes stand in for video: nothing here decodes), one of another site.
const clips = {
  stored: { key: `uploads/${SITE}/study-1/stored.mp4`, bytes: Buffer.from('clip with features already') },
  fresh: { key: `uploads/${SITE}/study-1/fresh.mp4`, bytes: Buffer.from('clip never analysed') },
  completed: { key: `uploads/${SITE}/study-2/done.mp4`, bytes: Buffer.from('clip a per-upload run completed') },
  other: { key: 'uploads/site-b/study-1/theirs.mp4', bytes: Buffer.from('another site') },
};
const idOf = (c: { key: string; bytes: Buffer }) =>
  scanIdFromContent(c.key.split('/')[1] as string, c.key.split('/')[2] as string, sha256Hex(c.bytes));
const batch = (keys: string[]) => ({ Items: keys.map((key) => ({ key })), BatchInput: { site: SITE, runPrefix: RUN } });
const allKeys = [clips.stored.key, clips.fresh.key, clips.completed.key, clips.other.key, `uploads/${SITE}/s/gone.mp4`];

beforeAll(async () => {
  services = await startLocalServices(tempDir());
  await ensureBucket(services.s3, UPLOADS);
  await ensureBucket(services.s3, ARTIFACTS);
  await ensureResultsTable(services.dynamo, TABLE);
  await uploadModelsToBucket(services.s3, ARTIFACTS, loaded);
  for (const c of Object.values(clips)) await put(UPLOADS, c.key, c.bytes);
  // `stored`: an earlier cohort batch extracted it (features at the deterministic key, no scan item).
  const storedId = idOf(clips.stored);
  await put(
    ARTIFACTS,
    featuresKey(SITE, extractor, storedId),
    JSON.stringify(featuresDocument(storedId, extractor, 48)),
  );
  // `completed`: a per-upload execution completed it; its features are where its scan item says.
  const doneId = idOf(clips.completed);
  const doneFeatures = `features/${SITE}/elsewhere/${doneId}.json`;
  await put(ARTIFACTS, doneFeatures, JSON.stringify(featuresDocument(doneId, extractor, 48)));
  await services.doc.send(
    new PutCommand({
      TableName: TABLE,
      Item: {
        ...scanKey(SITE, doneId),
        scanId: doneId,
        status: 'COMPLETED',
        siteId: SITE,
        extractor,
        featuresBucket: ARTIFACTS,
        featuresKey: doneFeatures,
        updatedAt: new Date().toISOString(),
      },
    }),
  );
  const readManifest = async () => loaded.manifest;
  planDeps = {
    s3: services.s3,
    doc: services.doc,
    table: TABLE,
    uploadsBucket: UPLOADS,
    artifactsBucket: ARTIFACTS,
    manifest: readManifest,
  };
  scoreDeps = {
    s3: services.s3,
    doc: services.doc,
    table: TABLE,
    artifactsBucket: ARTIFACTS,
    models: async () => loaded,
    rates: {
      basis: 'test prices',
      extractor: { usdPerSecond: 0.001, minimumSeconds: 0 },
      lambda: { usdPerGbSecond: 0.00001, usdPerRequest: 0.0000002 },
      expertMemoryMb: Object.fromEntries(loaded.manifest.experts.map((e) => [e.name, 1024])),
      usdPerStateTransition: 0.000025,
    },
  };
}, 60_000);
afterAll(async () => services?.close());

describe('cohort batch: plan, score, report', () => {
  let first: CohortItemOutcome[];

  it('plans by the clips’ bytes: stored features are scored only, the rest go to one extractor job', async () => {
    // Act
    const plan = await planBatch(batch(allKeys), planDeps);

    // Assess: the scan ids are Validate's (site, study, content hash)
    const byItem = Object.fromEntries(plan.scans.map((s) => [s.item, s]));
    expect(byItem[clips.stored.key]).toMatchObject({ scanId: idOf(clips.stored), action: 'scored' });
    expect(byItem[clips.completed.key]).toMatchObject({
      scanId: idOf(clips.completed),
      action: 'scored',
      featuresKey: expect.stringContaining('/elsewhere/'),
    });
    expect(byItem[clips.fresh.key]).toMatchObject({ scanId: idOf(clips.fresh), action: 'analysed' });
    expect(plan.failures.map((f) => f.code).sort()).toEqual(['OTHER_SITE', 'UNREADABLE_INPUT']);
    expect(plan.extractCount).toBe(1);
    // The item list is what the batch-mode extractor reads, naming only the fresh clip.
    const items = ExtractItems.parse(JSON.parse(await text(plan.itemsBucket, plan.itemsKey)));
    expect(items).toEqual([
      {
        scanId: idOf(clips.fresh),
        inputBucket: UPLOADS,
        inputKey: clips.fresh.key,
        inputVersionId: '',
        featuresBucket: ARTIFACTS,
        featuresKey: featuresKey(SITE, extractor, idOf(clips.fresh)),
        modality: 'ultrasound',
      },
    ]);
  });

  it('plans each item under its modality: an X-ray (key folder) goes to the X-ray extractor; a still with no hint is refused', async () => {
    // Prepare: two small PNG stills (real PNG signatures: the plan sniffs them as Validate does).
    const png = (shade: number) => {
      const image = new PNG({ width: 64, height: 64 });
      image.data.fill(shade);
      return PNG.sync.write(image);
    };
    const xrayKey = `uploads/${SITE}/study-3/xray/chest.png`;
    const bareKey = `uploads/${SITE}/study-3/still.png`;
    await put(UPLOADS, xrayKey, png(120));
    await put(UPLOADS, bareKey, png(60));
    const xx = loaded.manifest.extractors.xray!;
    const xrayRef = { name: xx.name, version: xx.version, sha256: xx.sha256 };
    const xrayId = idOf({ key: xrayKey, bytes: png(120) });

    // Act
    const plan = await planBatch(batch([xrayKey, bareKey]), planDeps);

    // Assess
    expect(plan.scans).toEqual([
      expect.objectContaining({ item: xrayKey, scanId: xrayId, modality: 'xray', action: 'analysed' }),
    ]);
    expect(plan.failures).toEqual([
      expect.objectContaining({ item: bareKey, code: 'MODALITY_REQUIRED', message: expect.stringMatching(/xray\//) }),
    ]);
    const items = ExtractItems.parse(JSON.parse(await text(plan.itemsBucket, plan.itemsKey)));
    expect(items).toEqual([
      expect.objectContaining({ scanId: xrayId, modality: 'xray', featuresKey: featuresKey(SITE, xrayRef, xrayId) }),
    ]);
  });

  it('plans no extractor job for a batch whose items all have features', async () => {
    // Act
    const plan = await planBatch(batch([clips.stored.key, clips.completed.key]), planDeps);
    // Assess
    expect(plan.extractCount).toBe(0);
    expect(plan.itemsKey).toBe('');
    expect(plan.scans.map((s) => s.action)).toEqual(['scored', 'scored']);
  });

  it('scores every scan with features, reports the extractor’s reason for the one it could not extract', async () => {
    // Prepare: the batch job failed on the fresh clip and left its error document
    const plan = await planBatch(batch(allKeys), planDeps);
    const fresh = plan.scans.find((s) => s.action === 'analysed')!;
    await put(
      ARTIFACTS,
      extractErrorKey(fresh.featuresKey),
      JSON.stringify({ code: 'UNDECODABLE', message: 'The clip could not be decoded.' }),
    );

    // Act
    const out = await scoreBatch({ plan }, scoreDeps);

    // Assess
    expect(out.counts).toEqual({ done: 0, scored: 2, analysed: 0, failed: 3 });
    first = JSON.parse(await text(ARTIFACTS, batchOutcomesKey(RUN, plan.batchId)));
    expect(first.find((o) => o.item === clips.fresh.key)?.error).toEqual({
      code: 'EXTRACT_FAILED',
      message: 'The clip could not be decoded.',
    });
    const stored = await listExpertResultVersions(services.doc, TABLE, SITE, idOf(clips.stored));
    expect(stored.current).toEqual(
      Object.fromEntries(expertsFor(loaded.manifest, 'ultrasound').map((e) => [e.name, e.version])),
    );
    // The map's result holds counts and ids only, never an object key.
    expect(JSON.stringify(out)).not.toContain('uploads/');
  });

  it('has nothing to do on a second run: every current expert version already scored the scans', async () => {
    // Act
    const plan = await planBatch(batch([clips.stored.key, clips.completed.key]), planDeps);
    const out = await scoreBatch({ plan }, scoreDeps);
    // Assess
    expect(out.counts).toEqual({ done: 2, scored: 0, analysed: 0, failed: 0 });
  });

  it('scores a scan only with the experts of its modality: an X-ray among ultrasound experts is done, not failed', async () => {
    // Prepare: features of an X-ray (one image, the X-ray findings) where the plan looks for them,
    // under a run of its own so the report below is unchanged.
    const xray = { key: `uploads/${SITE}/study-3/chest.png`, bytes: Buffer.from('an x-ray image') };
    await put(UPLOADS, xray.key, xray.bytes);
    const id = idOf(xray);
    const us = featuresDocument(id, extractor, 48);
    await put(
      ARTIFACTS,
      featuresKey(SITE, extractor, id),
      JSON.stringify({
        ...us,
        modality: 'xray',
        sampling: { ...us.sampling, decodedFrames: 1, frameIndices: [0] },
        biomarkers: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, us.biomarkers['a_lines']])),
        frames: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, [0.5]])),
      }),
    );
    const xrayBatch = {
      ...batch([xray.key]),
      BatchInput: { site: SITE, runPrefix: cohortRunPrefix(SITE, 'run-xray') },
    };
    const plan = await planBatch(xrayBatch, planDeps);

    // Act: a deployment with ultrasound experts only (the shipped manifest without its X-ray experts)
    const usOnly = { ...loaded, manifest: { ...loaded.manifest, experts: expertsFor(loaded.manifest, 'ultrasound') } };
    const out = await scoreBatch({ plan }, { ...scoreDeps, models: async () => usOnly });

    // Assess: no ultrasound expert read it, and nothing failed
    expect(out.counts).toEqual({ done: 1, scored: 0, analysed: 0, failed: 0 });
    expect((await listExpertResultVersions(services.doc, TABLE, SITE, id)).results).toEqual([]);
  });

  it('writes cohort.csv, summary.json and report.html from every batch’s outcomes', async () => {
    // Act
    const out = await writeCohortReport(
      {
        site: SITE,
        runPrefix: RUN,
        startedAt: new Date(Date.now() - 5000).toISOString(),
        source: 'cohorts/manifests/m.csv',
      },
      {
        s3: services.s3,
        doc: services.doc,
        table: TABLE,
        artifactsBucket: ARTIFACTS,
        manifest: async () => loaded.manifest,
      },
    );
    // Assess: two batches were scored (the full one, and the score-only one twice under one id)
    const summary = JSON.parse(await text(ARTIFACTS, `${RUN}${COHORT_SUMMARY}`)) as CohortSummary;
    const csv = await text(ARTIFACTS, `${RUN}${COHORT_CSV}`);
    expect(out.csvKey).toBe(`${RUN}${COHORT_CSV}`);
    expect(summary.source).toBe('cohorts/manifests/m.csv');
    expect(summary.counts.items).toBeGreaterThanOrEqual(first.length);
    expect(summary.failures.map((f) => f.code)).toEqual(
      expect.arrayContaining(['EXTRACT_FAILED', 'OTHER_SITE', 'UNREADABLE_INPUT']),
    );
    expect(summary.distributions[loaded.manifest.experts[0]!.name]?.scans).toBeGreaterThan(0);
    expect(csv.split('\n')[0]).toMatch(/^item,scanId,action,errorCode,error,extractor,/);
    expect(summary).toMatchObject({ site: SITE, runId: 'run-1' });

    // The page: the renderer `sonomark report` uses, over the same summary, with the stored scans
    const head = await services.s3.send(
      new HeadObjectCommand({ Bucket: ARTIFACTS, Key: `${RUN}${COHORT_REPORT_HTML}` }),
    );
    expect(out.reportKey).toBe(`${RUN}${COHORT_REPORT_HTML}`);
    expect(head.ContentType).toBe('text/html; charset=utf-8');
    const html = await text(ARTIFACTS, `${RUN}${COHORT_REPORT_HTML}`);
    expect(html).toContain(`<title>sonomark cohort report (`);
    expect(html).toContain('Research software, not a medical device');
    // The completed scan (a per-upload run's item) has its timeline and expert outputs
    const done = html.slice(html.indexOf(`data-scan-id="${idOf(clips.completed)}"`));
    expect(done).toMatch(/^[^]*?data-chart="timeline"/);
    expect(done.slice(0, done.indexOf('</section>'))).toContain('data-chart="expert-diagnosis"');
    // No frame images, said plainly; the peaks are given from the features
    expect(html).not.toContain('<img');
    expect(html).toContain('No frame images on this page.');
    expect(html).toContain(CLOUD_THUMBNAILS_OMITTED.replace(/"/g, '&quot;').replace(/'/g, '&#39;'));
    expect(html).toContain('frame not decoded');
    // Failures without a scan are on the page with their reasons, and no object key of another site is
    expect(html).toContain('OTHER_SITE');
    expect(html).toContain('UNREADABLE_INPUT');
  });

  it('writes no page for a run whose batches held no item', async () => {
    const out = await writeCohortReport(
      {
        site: SITE,
        runPrefix: cohortRunPrefix(SITE, 'empty-run'),
        startedAt: new Date().toISOString(),
        source: 'uploads/site-a/none/',
      },
      {
        s3: services.s3,
        doc: services.doc,
        table: TABLE,
        artifactsBucket: ARTIFACTS,
        manifest: async () => loaded.manifest,
      },
    );
    expect(out.reportKey).toBeNull();
    expect(out.counts.items).toBe(0);
  });
});
