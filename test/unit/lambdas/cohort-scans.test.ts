/**
 * The cohort workflow records the scans it analyses as the per-upload workflow does (issue 15's
 * known defect): a clip a cohort batch extracts ends as a COMPLETED scan item, listed through the
 * site's bySite index with a usage record that core/usage.ts invoices; a clip the extractor could
 * not read ends FAILED with the extractor's reason; a scan already COMPLETED is re-scored but not
 * billed again. Real local stores (s3rver, dynalite with the table's bySite index) and the shipped
 * models; the batch extractor's work is stood in for by the documents it writes.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { uploadModelsToBucket } from '../../../core/bucket-models';
import { cohortRunPrefix } from '../../../core/cohort-run';
import { extractErrorKey, TABLE_KEYS } from '../../../core/keys';
import { expertsFor, loadManifest, type LoadedManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import type { ScanRates } from '../../../core/pricing';
import { getScan, listExpertResultVersions, listSiteScans } from '../../../core/results-store';
import { scanIdFromContent, sha256Hex } from '../../../core/scan-id';
import { siteUsage } from '../../../core/usage';
import { ExtractItems } from '../../../gpu-tasks/feature-extractor/src/batch';
import { planBatch, type PlanDeps } from '../../../lambdas/cohort-plan/plan';
import { scoreBatch, type ScoreBatchDeps } from '../../../lambdas/cohort-score/score';
import { ensureBucket, ensureTable, startLocalServices, type LocalServices } from '../../../local/services';
import { tempDir } from '../../helpers/temp';
import { featuresDocument } from '../helpers/fakes';

const UPLOADS = 'uploads';
const ARTIFACTS = 'artifacts';
const TABLE = 'results';
const SITE = 'site-a';
const RUN = cohortRunPrefix(SITE, 'run-1');
const loaded = loadManifest(DEFAULT_MODELS_DIR);
const x = loaded.manifest.extractors.ultrasound;
const extractor = { name: x.name, version: x.version, sha256: x.sha256 };
const RATES: ScanRates = {
  basis: 'test prices',
  extractor: { usdPerSecond: 0.001, minimumSeconds: 0 },
  lambda: { usdPerGbSecond: 0.00001, usdPerRequest: 0.0000002 },
  expertMemoryMb: Object.fromEntries(loaded.manifest.experts.map((e) => [e.name, 1024])),
  usdPerStateTransition: 0.000025,
};
const PLANNED_AT = new Date('2026-03-04T05:06:07.000Z');
const SCORED_AT = new Date('2026-03-04T06:00:00.000Z');
const MONTH = '2026-03';

/** The table's keys and bySite index, as the storage stack declares them (test/unit/core/site-api.test.ts). */
const TABLE_PROPERTIES = {
  KeySchema: [
    { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
    { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
  ],
  AttributeDefinitions: [
    TABLE_KEYS.partitionKey,
    TABLE_KEYS.sortKey,
    TABLE_KEYS.siteIndexPartitionKey,
    TABLE_KEYS.siteIndexSortKey,
  ].map((AttributeName) => ({ AttributeName, AttributeType: 'S' })),
  GlobalSecondaryIndexes: [
    {
      IndexName: TABLE_KEYS.siteIndex,
      KeySchema: [
        { AttributeName: TABLE_KEYS.siteIndexPartitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE_KEYS.siteIndexSortKey, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'ALL' },
    },
  ],
};

let services: LocalServices;
let planDeps: PlanDeps;
let scoreDeps: ScoreBatchDeps;

const put = (bucket: string, key: string, body: string | Buffer) =>
  services.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
const text = async (bucket: string, key: string) =>
  (await (await services.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body?.transformToString()) ?? '';

// Bytes stand in for video: nothing here decodes.
const clips = {
  good: { key: `uploads/${SITE}/study-1/good.mp4`, bytes: Buffer.from('a clip the extractor reads') },
  bad: { key: `uploads/${SITE}/study-1/bad.mp4`, bytes: Buffer.from('a clip the extractor cannot decode') },
};
const idOf = (c: { key: string; bytes: Buffer }) =>
  scanIdFromContent(c.key.split('/')[1] as string, c.key.split('/')[2] as string, sha256Hex(c.bytes));
const batch = (keys: string[]) => ({ Items: keys.map((key) => ({ key })), BatchInput: { site: SITE, runPrefix: RUN } });
const JOB = { jobId: 'job-1', startedAt: 1_000_000, stoppedAt: 1_000_000 + 30_000 };

beforeAll(async () => {
  services = await startLocalServices(tempDir());
  await ensureBucket(services.s3, UPLOADS);
  await ensureBucket(services.s3, ARTIFACTS);
  await ensureTable(services.dynamo, TABLE, TABLE_PROPERTIES);
  await uploadModelsToBucket(services.s3, ARTIFACTS, loaded);
  for (const c of Object.values(clips)) await put(UPLOADS, c.key, c.bytes);
  planDeps = {
    s3: services.s3,
    doc: services.doc,
    table: TABLE,
    uploadsBucket: UPLOADS,
    artifactsBucket: ARTIFACTS,
    manifest: async () => loaded.manifest,
    now: () => PLANNED_AT,
  };
  scoreDeps = {
    s3: services.s3,
    doc: services.doc,
    table: TABLE,
    artifactsBucket: ARTIFACTS,
    models: async () => loaded,
    rates: RATES,
    now: () => SCORED_AT,
  };
}, 60_000);
afterAll(async () => services?.close());

describe('cohort scans are recorded, listed and billed like uploads', () => {
  it('claims the clips it sends to the extractor with Validate’s fields and a lease', async () => {
    // Act
    const plan = await planBatch(batch([clips.good.key, clips.bad.key]), planDeps);

    // Assess
    expect(plan.extractCount).toBe(2);
    expect(plan.scans.map((s) => s.claimed)).toEqual([true, true]);
    const scan = await getScan(services.doc, TABLE, SITE, idOf(clips.good));
    expect(scan).toMatchObject({
      status: 'RUNNING',
      siteId: SITE,
      studyId: 'study-1',
      bucket: UPLOADS,
      key: clips.good.key,
      versionId: '',
      sha256: sha256Hex(clips.good.bytes),
      size: clips.good.bytes.length,
      extractor,
      featuresBucket: ARTIFACTS,
      featuresKey: plan.scans[0]!.featuresKey,
      receivedAt: PLANNED_AT.toISOString(),
      attempts: 1,
      lease: { executionId: `${RUN}batches/${plan.batchId}`, expiresAt: '2026-03-05T05:06:07.000Z' },
    });
    // A retried plan (same run, same items) recognises its own claims.
    const again = await planBatch(batch([clips.good.key, clips.bad.key]), planDeps);
    expect(again.scans.map((s) => s.claimed)).toEqual([true, true]);
  });

  it('completes the extracted clip with a usage record (its share of the job) and fails the other with the extractor’s reason', async () => {
    // Prepare: the batch job extracted `good` and left an error document for `bad`
    const plan = await planBatch(batch([clips.good.key, clips.bad.key]), planDeps);
    const items = ExtractItems.parse(JSON.parse(await text(plan.itemsBucket, plan.itemsKey)));
    const good = items.find((i) => i.scanId === idOf(clips.good))!;
    const bad = items.find((i) => i.scanId === idOf(clips.bad))!;
    await put(ARTIFACTS, good.featuresKey, JSON.stringify(featuresDocument(good.scanId, extractor, 48)));
    const reason = { code: 'DECODE_FAILED', message: 'The clip could not be decoded: no video stream.' };
    await put(ARTIFACTS, extractErrorKey(bad.featuresKey), JSON.stringify(reason));

    // Act: the batch state as the state machine hands it over (the Items are not read)
    const out = await scoreBatch({ ...batch([]), plan, extract: JOB }, scoreDeps);

    // Assess: COMPLETED, listed through the bySite index, with 30 s of job over 2 clips
    expect(out.counts).toEqual({ done: 0, scored: 0, analysed: 1, failed: 1 });
    const listed = await listSiteScans(services.doc, TABLE, SITE);
    const completed = listed.find((s) => s.scanId === good.scanId);
    expect(completed?.status).toBe('COMPLETED');
    expect(completed?.usage).toMatchObject({
      scanId: good.scanId,
      siteId: SITE,
      studyId: 'study-1',
      extractor,
      extractorSeconds: 15,
      units: 1,
      createdAt: SCORED_AT.toISOString(),
    });
    expect(completed?.usage?.estimatedCost?.extractorUsd).toBeCloseTo(0.015, 10);
    const current = await listExpertResultVersions(services.doc, TABLE, SITE, good.scanId);
    expect(completed?.summary?.expertVersions).toEqual(
      Object.fromEntries(
        expertsFor(loaded.manifest, 'ultrasound').map((e) => [e.name, { version: e.version, sha256: e.sha256 }]),
      ),
    );
    expect(Object.keys(completed?.summary?.experts ?? {}).sort()).toEqual(Object.keys(current.current).sort());
    expect(completed?.summary?.durations.extractorSeconds).toBe(15);

    const failed = listed.find((s) => s.scanId === bad.scanId);
    expect(failed).toMatchObject({ status: 'FAILED', error: reason, key: clips.bad.key, bucket: UPLOADS });
    expect(failed?.usage).toBeUndefined();

    // Invoiced: the site's month bills the completed scan, not the failed one.
    const usage = await siteUsage(services.doc, TABLE, { id: SITE, displayName: 'A' }, MONTH, RATES);
    expect(usage.scansBilled).toBe(1);
    expect(usage.scansNotBilled.failed).toBe(1);
    expect(usage.extractorSeconds).toBe(15);
  });

  it('re-scores a COMPLETED scan under a new expert version without claiming or billing it again', async () => {
    // Prepare: a new version of every expert (the same model files)
    const before = await getScan(services.doc, TABLE, SITE, idOf(clips.good));
    const v2: LoadedManifest = {
      ...loaded,
      manifest: {
        ...loaded.manifest,
        experts: loaded.manifest.experts.map((e) => ({ ...e, version: `${e.version}-v2` })),
      },
    };

    // Act
    const plan = await planBatch(batch([clips.good.key]), { ...planDeps, now: () => SCORED_AT });
    const out = await scoreBatch(
      { plan },
      { ...scoreDeps, models: async () => v2, now: () => new Date('2026-04-01T00:00:00.000Z') },
    );

    // Assess: scored without a job, the new versions current, the scan item and its bill unchanged
    expect(plan.extractCount).toBe(0);
    expect(plan.scans[0]).toMatchObject({ action: 'scored', claimed: false });
    expect(out.counts).toEqual({ done: 0, scored: 1, analysed: 0, failed: 0 });
    const after = await getScan(services.doc, TABLE, SITE, idOf(clips.good));
    expect(after?.status).toBe('COMPLETED');
    expect(after?.usage).toEqual(before?.usage);
    expect(after?.receivedAt).toBe(before?.receivedAt);
    expect(Object.values(after?.summary?.expertVersions ?? {}).map((v) => v.version)).toEqual(
      expertsFor(loaded.manifest, 'ultrasound').map((e) => `${e.version}-v2`),
    );
    const usage = await siteUsage(services.doc, TABLE, { id: SITE, displayName: 'A' }, MONTH, RATES);
    expect(usage.scansBilled).toBe(1);
  });

  it('re-claims a FAILED scan on a later run and completes it', async () => {
    // Prepare: the extractor reads the clip this time
    const plan = await planBatch(batch([clips.bad.key]), { ...planDeps, now: () => SCORED_AT });
    expect(plan.scans[0]).toMatchObject({ action: 'analysed', claimed: true });
    await put(ARTIFACTS, plan.scans[0]!.featuresKey, JSON.stringify(featuresDocument(idOf(clips.bad), extractor, 48)));

    // Act: the job's timing is unknown (it failed and was caught): no extractor seconds, no estimate
    await scoreBatch({ plan }, scoreDeps);

    // Assess
    const scan = await getScan(services.doc, TABLE, SITE, idOf(clips.bad));
    expect(scan).toMatchObject({ status: 'COMPLETED', attempts: 2 });
    expect(scan?.error).toBeUndefined();
    expect(scan?.usage).toMatchObject({ extractorSeconds: null, estimatedCost: null, units: 1 });
  });
});
