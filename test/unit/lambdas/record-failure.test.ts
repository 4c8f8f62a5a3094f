import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { NO_SITE, scanPk, SCAN_SK } from '../../../core/keys';
import { scanIdFromObjectIdentity } from '../../../core/scan-id';
import {
  parseCause,
  problemFromError,
  recordFailure,
  type RecordFailureDeps,
} from '../../../lambdas/record-failure/record-failure';
import { extractErrorKey } from '../../../core/keys';
import { objectCreatedEvent, s3Body, s3Error, scanRef } from '../helpers/fakes';

const ddbMock = mockClient(DynamoDBDocumentClient);
const NOW = '2025-01-02T03:10:00.000Z';
const deps = (): RecordFailureDeps => ({
  doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
  table: 'results',
  now: () => new Date(NOW),
});
const KEY = 'uploads/site-a/study-1/clip.mp4';
const event = objectCreatedEvent(KEY, { versionId: 'v1', etag: 'e1' });

const lambdaCause = JSON.stringify({
  errorType: 'ModelError',
  errorMessage: 'Expert "triage" was trained on x@1 features, but this scan\'s features come from x@2.',
  trace: ['ModelError: Expert "triage" ...', '    at scoreExpert (/var/task/index.js:1:2)'],
});
const batchCause = JSON.stringify({
  JobName: 'extract',
  JobId: 'abc',
  Status: 'FAILED',
  StatusReason: 'Essential container in task exited',
  Container: { ExitCode: 3, Reason: 'DecodeError: ffmpeg could not read the video stream', LogStreamName: 'x/y' },
  Attempts: [
    {
      Container: { ExitCode: 137, Reason: 'OutOfMemoryError: Container killed due to memory usage' },
      StatusReason: 'Essential container in task exited',
    },
    {
      Container: { ExitCode: 3, Reason: 'DecodeError: ffmpeg could not read the video stream' },
      StatusReason: 'Essential container in task exited',
    },
  ],
});

beforeEach(() => {
  ddbMock.reset();
  ddbMock.on(UpdateCommand).resolves({});
});

describe('recordFailure', () => {
  it('records a validation reject with its own problem, against the validation scan id', async () => {
    // Prepare
    const validation = {
      action: 'reject' as const,
      scanId: 'a'.repeat(32),
      problem: { code: 'EMPTY_FILE', message: 'The file is empty.' },
    };
    // Act
    const out = await recordFailure({ event, validation }, deps());
    // Assess
    expect(out).toEqual({ status: 'FAILED', scanId: 'a'.repeat(32), problem: validation.problem, recorded: true });
    expect(ddbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: { pk: scanPk('site-a', 'a'.repeat(32)), sk: SCAN_SK },
      ConditionExpression: 'attribute_not_exists(#status) OR #status <> :completed',
      ExpressionAttributeValues: expect.objectContaining({
        ':failed': 'FAILED',
        ':error': validation.problem,
        ':siteId': 'site-a',
        ':studyId': 'study-1',
      }),
    });
  });

  it('parses a Lambda error cause: code from errorType, message without the stack', async () => {
    const scan = scanRef();
    const out = await recordFailure({ event, scan, error: { Error: 'ModelError', Cause: lambdaCause } }, deps());
    expect(out.scanId).toBe(scan.scanId);
    expect(out.problem.code).toBe('MODEL_ERROR');
    expect(out.problem.message).toMatch(/trained on x@1 features/);
    expect(out.problem.message).not.toMatch(/\/var\/task|\bat scoreExpert/);
  });

  it('parses a Batch .sync job description: reasons, exit code, decode failure', async () => {
    const out = await recordFailure(
      { event, scan: scanRef(), error: { Error: 'States.TaskFailed', Cause: batchCause } },
      deps(),
    );
    expect(out.problem.code).toBe('DECODE_FAILED');
    expect(out.problem.message).toMatch(/DecodeError: ffmpeg could not read the video stream/);
    expect(out.problem.message).toMatch(/OutOfMemoryError/);
    expect(out.problem.message).toMatch(/exit code 3/);
    expect(out.problem.message).toMatch(/2 attempts/);
  });

  it("prefers the extractor's own error document when the job left one", async () => {
    // Prepare
    const s3Mock = mockClient(S3Client);
    const scan = scanRef();
    s3Mock
      .on(GetObjectCommand, { Bucket: scan.featuresBucket, Key: extractErrorKey(scan.featuresKey) })
      .callsFake(async () => ({
        Body: s3Body(JSON.stringify({ code: 'DECODE_FAILED', message: 'The clip could not be decoded.' })),
      }));
    // Act
    const out = await recordFailure(
      { event, scan, error: { Error: 'States.TaskFailed', Cause: batchCause } },
      { ...deps(), s3: new S3Client({ region: 'us-east-1' }) },
    );
    // Assess
    expect(out.problem).toEqual({ code: 'DECODE_FAILED', message: 'The clip could not be decoded.' });
    s3Mock.on(GetObjectCommand).rejects(s3Error('NoSuchKey', 404));
    const fallback = await recordFailure(
      { event, scan, error: { Error: 'States.TaskFailed', Cause: batchCause } },
      { ...deps(), s3: new S3Client({ region: 'us-east-1' }) },
    );
    expect(fallback.problem.message).toMatch(/exit code 3/);
    s3Mock.restore();
  });

  it('falls back to the object identity when no scan exists, filling site/study from the key', async () => {
    const out = await recordFailure({ event, error: { Error: 'States.Timeout' } }, deps());
    const expectedId = scanIdFromObjectIdentity('sonomark-uploads', KEY, 'v1', 'e1');
    expect(out).toMatchObject({
      scanId: expectedId,
      problem: { code: 'TIMEOUT', message: expect.stringMatching(/time limit/) },
    });
    expect(ddbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: { pk: scanPk('site-a', expectedId), sk: SCAN_SK },
      UpdateExpression: expect.stringContaining('#siteId = if_not_exists(#siteId, :siteId)'),
    });
  });

  it('works for a key with no valid site (no GSI keys written)', async () => {
    const out = await recordFailure(
      { event: objectCreatedEvent('elsewhere/x.mp4'), error: { Error: 'States.Runtime', Cause: 'boom' } },
      deps(),
    );
    expect(out.problem).toEqual({ code: 'INTERNAL_ERROR', message: 'The analysis failed (States.Runtime): boom' });
    const update = ddbMock.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(update.UpdateExpression).not.toMatch(/sitePk/);
    // Under NO_SITE, a partition no site's role or API caller can read.
    expect(update.Key).toEqual({ pk: scanPk(NO_SITE, out.scanId), sk: SCAN_SK });
  });

  it('does not downgrade a COMPLETED scan', async () => {
    ddbMock.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    const out = await recordFailure({ event, scan: scanRef(), error: { Error: 'States.TaskFailed' } }, deps());
    expect(out.recorded).toBe(false);
  });

  it('rethrows DynamoDB errors', async () => {
    ddbMock
      .on(UpdateCommand)
      .rejects(Object.assign(new Error('slow down'), { name: 'ProvisionedThroughputExceededException' }));
    await expect(recordFailure({ event, error: { Error: 'States.TaskFailed' } }, deps())).rejects.toMatchObject({
      name: 'ProvisionedThroughputExceededException',
    });
  });
});

describe('problemFromError / parseCause', () => {
  it.each([
    ['InvalidUpload', 'INVALID_UPLOAD'],
    ['DecodeError', 'DECODE_FAILED'],
    ['ModelError', 'MODEL_ERROR'],
    ['States.TaskFailed', 'TASK_FAILED'],
    ['States.Timeout', 'TIMEOUT'],
    ['Sandbox.Timedout', 'TIMEOUT'],
    ['AccessDenied', 'ACCESS_DENIED'],
    ['AccessDeniedException', 'ACCESS_DENIED'],
    ['Something.Else', 'INTERNAL_ERROR'],
  ])('maps %s to %s', (error, code) => {
    expect(problemFromError({ Error: error, Cause: 'x' }).code).toBe(code);
  });

  it('uses the Lambda errorType when Step Functions reports a generic TaskFailed', () => {
    expect(problemFromError({ Error: 'States.TaskFailed', Cause: lambdaCause }).code).toBe('MODEL_ERROR');
  });

  it('reads camelCase Batch API job descriptions too', () => {
    expect(
      parseCause(
        JSON.stringify({
          statusReason: 'Job attempt duration exceeded timeout',
          attempts: [{ statusReason: 'Job attempt duration exceeded timeout' }],
        }),
      ),
    ).toEqual({
      message: 'Job attempt duration exceeded timeout',
    });
  });

  it('drops stack frames from a plain-text cause', () => {
    expect(
      parseCause('TypeError: x is undefined\n    at f (/var/task/a.js:1:1)\n    at g (/var/task/b.js:2:2)'),
    ).toEqual({ message: 'TypeError: x is undefined' });
  });

  it('caps very long messages', () => {
    expect(problemFromError({ Error: 'ModelError', Cause: 'y'.repeat(5000) }).message.length).toBeLessThanOrEqual(600);
  });
});
