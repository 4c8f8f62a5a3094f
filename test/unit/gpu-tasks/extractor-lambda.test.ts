/** The extractor's Lambda entry (computeMode 'lambda'): a thin handler over the job code. */
import { makeLavfiClip } from '../../helpers/clips';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { TRANSIENT_ERROR_NAME } from '../../../core/errors';
import { extractErrorKey } from '../../../core/keys';
import { FeaturesDocument, ProblemDetail } from '../../../core/schemas';
import { extractInvocation } from '../../../gpu-tasks/feature-extractor/src/lambda';
import { releaseCachedSessions } from '../../../gpu-tasks/feature-extractor/src';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { s3Body } from '../../helpers/s3';

const SCAN_ID = 'fedcba9876543210fedcba9876543210';
const FEATURES_KEY = `features/site-a/sonomark-fixture-extractor-0.0.1/${SCAN_ID}.json`;
const PAYLOAD = {
  scanId: SCAN_ID,
  inputBucket: 'uploads-bucket',
  inputKey: 'uploads/site-a/study-1/Patient_Jane_Doe.mp4',
  inputVersionId: 'v123',
  featuresBucket: 'artifacts-bucket',
  featuresKey: FEATURES_KEY,
};
const s3Mock = mockClient(S3Client);
let work: string;
let clipBytes: Buffer;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'sonomark-lambda-test-'));
  writeFixtureModels(path.join(work, 'models'));
  const clip = path.join(work, 'clip.mp4');
  makeLavfiClip(clip, 'testsrc=size=128x96:rate=10:duration=2');
  clipBytes = readFileSync(clip);
});
afterAll(async () => {
  await releaseCachedSessions();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => s3Mock.reset());

const deps = () => ({
  s3: new S3Client({ region: 'us-east-1' }),
  modelsDir: path.join(work, 'models'),
  executionProvider: 'cpu' as const,
  pseudonymSalt: 'a'.repeat(64),
  log: () => {},
});

describe('extractor Lambda entry', () => {
  it('extracts the payload’s clip version and returns the job-shaped timing Extract selects', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(clipBytes) });
    s3Mock.on(PutObjectCommand).resolves({});
    // Act
    const out = await extractInvocation(PAYLOAD, 'req-1', {}, deps());
    // Assess
    expect(out.jobId).toBe('req-1');
    expect(out.stoppedAt).toBeGreaterThanOrEqual(out.startedAt);
    expect(s3Mock.commandCalls(GetObjectCommand)[0]!.args[0].input).toMatchObject({
      Bucket: 'uploads-bucket',
      Key: PAYLOAD.inputKey,
      VersionId: 'v123',
    });
    const put = s3Mock.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(put.Key).toBe(FEATURES_KEY);
    expect(FeaturesDocument.safeParse(JSON.parse(String(put.Body))).success).toBe(true);
  });

  it('refuses a payload that is not one scan or one batch, naming the field', async () => {
    await expect(extractInvocation({ ...PAYLOAD, featuresKey: undefined }, 'r', {}, deps())).rejects.toThrow(
      /featuresKey/,
    );
    expect(s3Mock.calls()).toHaveLength(0);
  });

  it('writes the error document for RecordFailure and rethrows a permanent failure as it is', async () => {
    // Prepare: bytes that are no media at all
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(Buffer.from('not a clip at all, just text')) });
    s3Mock.on(PutObjectCommand).resolves({});
    // Act
    const run = extractInvocation(PAYLOAD, 'r', {}, deps());
    // Assess
    await expect(run).rejects.not.toMatchObject({ name: TRANSIENT_ERROR_NAME });
    const put = s3Mock.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(put.map((p) => p.Key)).toEqual([extractErrorKey(FEATURES_KEY)]);
    const problem = ProblemDetail.parse(JSON.parse(String(put[0]!.Body)));
    expect(problem.message).not.toContain('Patient_Jane_Doe');
  });

  it('raises an S3 throttle as Sonomark.TransientError, which the Extract state retries', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand).rejects(
      new S3ServiceException({
        name: 'SlowDown',
        $fault: 'server',
        $metadata: { httpStatusCode: 503 },
        message: 'Slow Down',
      }),
    );
    s3Mock.on(PutObjectCommand).resolves({});
    // Act / Assess
    await expect(extractInvocation(PAYLOAD, 'r', {}, deps())).rejects.toMatchObject({ name: TRANSIENT_ERROR_NAME });
  });
});
