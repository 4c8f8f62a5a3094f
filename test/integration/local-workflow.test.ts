/**
 * The local workflow end to end: the synthesized state machine, executed by
 * aws-local-stepfunctions, through s3rver and dynalite, with real ffmpeg and
 * real ONNX inference, on real clips from ../shared/data/pocus.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { readFileSync } from 'node:fs';
import { BIOMARKERS } from '../../core/biomarkers';
import { featuresKey, scanPk, sitePk, TABLE_KEYS } from '../../core/keys';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE, LocalWorkflow, type AnalyzeResult } from '../../local/workflow';
import { FeaturesDocument } from '../../core/schemas';
import { generateClip, REAL_CLIPS, tempDir, writeFile } from './helpers';
import { expertsFor } from '../../core/manifest';

jest.setTimeout(180_000);

describe('local workflow on real clips', () => {
  let workflow: LocalWorkflow;
  const work = tempDir();

  beforeAll(async () => {
    workflow = await LocalWorkflow.start({ studyId: 'it-real' });
  });
  afterAll(async () => {
    await workflow?.close();
  });

  function expectCompleted(r: AnalyzeResult): void {
    if (r.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(r.error)}`);
    expect(r.scanId).toMatch(/^[0-9a-f]{32}$/);
    expect(FeaturesDocument.safeParse(r.features).success).toBe(true);
    const diagnosis = r.experts.diagnosis;
    expect(diagnosis?.kind === 'classification' && ['covid', 'pneumonia', 'healthy'].includes(diagnosis.label)).toBe(
      true,
    );
    const severity = r.experts.severity;
    expect(severity?.kind === 'ordinal' && severity.score >= 0 && severity.score <= 3).toBe(true);
    const triage = r.experts.triage;
    expect(triage?.kind === 'binary' && triage.positive === 'abnormal').toBe(true);
  }

  it.each(Object.entries(REAL_CLIPS))('analyses a real %s clip', async (_container, file) => {
    // Act
    const r = await workflow.analyze(file);

    // Assess
    expectCompleted(r);
    expect(r.features!.sampling.decodedFrames).toBeGreaterThan(1);
    expect(Object.keys(r.features!.biomarkers)).toEqual([...BIOMARKERS]);
    // Every expert result item carries the extractor and expert versions.
    const items = await workflow.services.doc.send(
      new QueryCommand({
        TableName: LOCAL_TABLE,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey },
        ExpressionAttributeValues: { ':pk': scanPk('local', r.scanId!) },
      }),
    );
    const manifest = workflow.loaded.manifest;
    const experts = (items.Items ?? []).filter((i) => String(i[TABLE_KEYS.sortKey]).startsWith('EXPERT#'));
    expect(experts).toHaveLength(expertsFor(manifest, 'ultrasound').length);
    for (const item of experts) {
      expect(item.extractor).toMatchObject({
        name: manifest.extractors.ultrasound.name,
        version: manifest.extractors.ultrasound.version,
      });
      expect(item.expert.version).toBe(manifest.experts.find((e) => e.name === item.expert.name)?.version);
    }
    // The features document in the artifacts bucket is the one reported.
    const stored = await workflow.services.s3.send(
      new GetObjectCommand({
        Bucket: LOCAL_ARTIFACTS_BUCKET,
        Key: featuresKey('local', manifest.extractors.ultrasound, r.scanId!),
      }),
    );
    expect(JSON.parse(await stored.Body!.transformToString())).toEqual(r.features);
  });

  it('analyses clips that ffmpeg generates, sampling at most maxFrames of them', async () => {
    // Prepare
    const maxFrames = workflow.loaded.manifest.extractors.ultrasound.input.maxFrames;
    const short = generateClip(work, 'generated-short.mp4', 12, ['-pix_fmt', 'yuv420p']);
    const long = generateClip(work, 'generated-long.avi', maxFrames + 37);

    // Act
    const a = await workflow.analyze(short);
    const b = await workflow.analyze(long);

    // Assess
    expectCompleted(a);
    expectCompleted(b);
    expect(a.features!.sampling).toMatchObject({
      decodedFrames: 12,
      frameIndices: Array.from({ length: 12 }, (_, i) => i),
    });
    expect(b.features!.sampling.decodedFrames).toBe(maxFrames + 37);
    expect(b.features!.sampling.frameIndices).toHaveLength(maxFrames);
    expect(b.features!.sampling.frameIndices[0]).toBe(0);
    expect(b.features!.sampling.frameIndices.at(-1)).toBe(maxFrames + 36);
  });

  it('maps the same bytes uploaded twice to exactly one scan', async () => {
    // Prepare
    const file = generateClip(work, 'twice.mp4', 8, ['-pix_fmt', 'yuv420p']);

    // Act: the second upload is the same bytes under another object name.
    const first = await workflow.analyze(file, 'first-name.mp4');
    const second = await workflow.analyze(file, 'second-name.mp4');

    // Assess
    expectCompleted(first);
    expect(second.status).toBe('completed');
    expect(second.scanId).toBe(first.scanId);
    expect(second.reused).toBe(true);
    expect(second.experts).toEqual(first.experts);
    const all = await workflow.services.doc.send(new ScanCommand({ TableName: LOCAL_TABLE }));
    const scanItems = (all.Items ?? []).filter((i) => i.pk === scanPk('local', first.scanId!) && i.sk === 'SCAN');
    expect(scanItems).toHaveLength(1);
  });

  it('records a corrupt file as FAILED with a clear reason while the rest of the batch completes', async () => {
    // Prepare: bytes that are no media at all, and an mp4 cut off after its first kilobytes.
    const noise = writeFile(work, 'noise.mp4', Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251)));
    const good = generateClip(work, 'good.mp4', 10, ['-pix_fmt', 'yuv420p']);
    const truncated = writeFile(work, 'truncated.mp4', readFileSync(REAL_CLIPS.mp4).subarray(0, 3000));

    // Act
    const results = [];
    for (const f of [noise, good, truncated, REAL_CLIPS.gif]) results.push(await workflow.analyze(f));
    const [rNoise, rGood, rTruncated, rGif] = results as [AnalyzeResult, AnalyzeResult, AnalyzeResult, AnalyzeResult];

    // Assess
    expectCompleted(rGood);
    expectCompleted(rGif);
    expect(rNoise).toMatchObject({ status: 'failed', error: { code: 'UNSUPPORTED_FORMAT' } });
    expect(rNoise.error!.message).toMatch(/mp4/i); // says what is accepted
    expect(rTruncated).toMatchObject({ status: 'failed', error: { code: 'DECODE_FAILED' } });
    expect(rTruncated.error!.message).not.toContain('truncated.mp4'); // no file names in errors
    for (const failed of [rNoise, rTruncated]) {
      const items = await workflow.services.doc.send(
        new QueryCommand({
          TableName: LOCAL_TABLE,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': scanPk('local', failed.scanId!) },
        }),
      );
      // One FAILED scan record and nothing half-written beside it.
      expect(items.Items).toHaveLength(1);
      expect(items.Items![0]).toMatchObject({ sk: 'SCAN', status: 'FAILED', error: failed.error });
    }
  });

  it("lists a site's scans through the bySite index", async () => {
    // Prepare: the real clips are in (a re-upload of bytes seen before is reused, not a new scan).
    for (const file of Object.values(REAL_CLIPS)) expectCompleted(await workflow.analyze(file));

    // Act
    const bySite = await workflow.services.doc.send(
      new QueryCommand({
        TableName: LOCAL_TABLE,
        IndexName: TABLE_KEYS.siteIndex,
        KeyConditionExpression: '#p = :p',
        ExpressionAttributeNames: { '#p': TABLE_KEYS.siteIndexPartitionKey },
        ExpressionAttributeValues: { ':p': sitePk('local') },
      }),
    );

    // Assess: only scan records are indexed, each once.
    const ids = (bySite.Items ?? []).map((i) => i.scanId as string);
    expect(ids.length).toBeGreaterThanOrEqual(Object.keys(REAL_CLIPS).length);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
