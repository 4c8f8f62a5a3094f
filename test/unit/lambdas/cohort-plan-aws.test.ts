/**
 * CohortPlan against AWS's answers that the local stores do not give: without s3:ListBucket
 * (the plan reads by key, never lists) S3 answers a missing key with 403, not 404. A missing
 * features document must then mean "extract it", and a missing clip "unreadable", not a failed batch.
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { loadManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { planBatch } from '../../../lambdas/cohort-plan/plan';
import { s3Body, s3Error } from '../helpers/fakes';

const s3Mock = mockClient(S3Client);
const docMock = mockClient(DynamoDBDocumentClient);
const { manifest } = loadManifest(DEFAULT_MODELS_DIR);
const deps = () => ({
  s3: new S3Client({ region: 'us-east-1' }),
  doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
  table: 'results',
  uploadsBucket: 'uploads',
  artifactsBucket: 'artifacts',
  manifest: async () => manifest,
});
const batch = (keys: string[]) => ({
  Items: keys.map((key) => ({ key })),
  BatchInput: { site: 'site-a', runPrefix: 'cohorts/site-a/run/' },
});

beforeEach(() => {
  s3Mock.reset();
  docMock.reset();
  docMock.on(GetCommand).resolves({});
});

describe('CohortPlan with S3’s 403 for a missing key', () => {
  it('extracts a clip whose features document answers 403', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body('clip bytes') });
    s3Mock.on(HeadObjectCommand).rejects(s3Error('AccessDenied', 403));
    s3Mock.on(PutObjectCommand).resolves({});
    // Act
    const plan = await planBatch(batch(['uploads/site-a/s1/a.mp4']), deps());
    // Assess
    expect(plan.extractCount).toBe(1);
    expect(s3Mock).toHaveReceivedCommandWith(PutObjectCommand, { Bucket: 'artifacts', Key: plan.itemsKey });
  });

  it('reports a clip that answers 403 as unreadable and plans the rest', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand, { Key: 'uploads/site-a/s1/gone.mp4' }).rejects(s3Error('AccessDenied', 403));
    s3Mock.on(GetObjectCommand, { Key: 'uploads/site-a/s1/a.mp4' }).resolves({ Body: s3Body('clip bytes') });
    s3Mock.on(HeadObjectCommand).resolves({});
    // Act
    const plan = await planBatch(batch(['uploads/site-a/s1/gone.mp4', 'uploads/site-a/s1/a.mp4']), deps());
    // Assess
    expect(plan.failures).toEqual([expect.objectContaining({ code: 'UNREADABLE_INPUT', scanId: null })]);
    expect(plan.scans.map((s) => s.action)).toEqual(['scored']);
    expect(plan.extractCount).toBe(0);
    expect(s3Mock).not.toHaveReceivedCommand(PutObjectCommand);
  });

  it('leaves sidecars and folder markers of a prefix listing out of the batch', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body('clip bytes') });
    s3Mock.on(HeadObjectCommand).resolves({});
    // Act
    const plan = await planBatch(
      batch(['uploads/site-a/s1/', 'uploads/site-a/s1/a.mp4', 'uploads/site-a/s1/a.mp4.meta.json']),
      deps(),
    );
    // Assess
    expect(plan.scans.map((s) => s.item)).toEqual(['uploads/site-a/s1/a.mp4']);
    expect(plan.failures).toEqual([]);
  });

  it('fails the batch (for the workflow to retry) on a throttle, not an item', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand).rejects(s3Error('SlowDown', 503));
    // Act + Assess
    await expect(planBatch(batch(['uploads/site-a/s1/a.mp4']), deps())).rejects.toMatchObject({ name: 'SlowDown' });
  });
});
