import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { PayloadError, TRANSIENT_ERROR_NAME, TransientError } from '../../../core/errors';
import { ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { sonomarkHandler } from '../../../lambdas/shared/middleware';
import { powertools } from '../../../lambdas/shared/runtime';

/** Runs `fn` with stdout and stderr captured; returns what was written, one entry per JSON line. */
async function captured(fn: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const written: string[] = [];
  const capture = (chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  };
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(capture),
    jest.spyOn(process.stderr, 'write').mockImplementation(capture),
  ];
  try {
    await fn();
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  return written
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const context = {
  functionName: 'sonomark-test',
  awsRequestId: 'req-1',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:sonomark-test',
  memoryLimitInMB: '256',
  functionVersion: '$LATEST',
} as unknown as Context;

beforeAll(() => {
  process.env.POWERTOOLS_TRACE_ENABLED = 'false';
});
afterAll(() => {
  delete process.env.POWERTOOLS_TRACE_ENABLED;
});

describe('sonomarkHandler', () => {
  it('logs a failure as name and message with the given ids, publishes the metrics, and rethrows the same error', async () => {
    // Prepare
    const tools = powertools({ serviceName: 'sonomark-test' });
    const err = new PayloadError('Invalid input: scan.scanId: Invalid string');
    const handler = sonomarkHandler(
      async () => {
        tools.metrics.addMetric('Attempts', MetricUnit.Count, 1);
        throw err;
      },
      tools,
      { message: 'test failed', fields: (input) => ({ scanId: (input as { id: string }).id }) },
    );
    let thrown: unknown;
    // Act
    const lines = await captured(() =>
      handler({ id: 'abc', key: 'uploads/s/t/Jane Doe.mp4' }, context).catch((e) => (thrown = e)),
    );
    // Assess
    expect(thrown).toBe(err);
    const failure = lines.find((l) => l.message === 'test failed');
    expect(failure).toMatchObject({
      level: 'ERROR',
      service: 'sonomark-test',
      function_request_id: 'req-1',
      scanId: 'abc',
      errorName: 'PayloadError',
      errorMessage: err.message,
    });
    expect(JSON.stringify(failure)).not.toMatch(/stack|Jane/);
    const emf = lines.find((l) => '_aws' in l);
    expect(emf).toMatchObject({ Attempts: 1, service: 'sonomark-test' });
    expect((emf as { _aws: { CloudWatchMetrics: { Namespace: string }[] } })._aws.CloudWatchMetrics[0]!.Namespace).toBe(
      'Sonomark',
    );
  });

  it('returns the work result; the context may be left out', async () => {
    // Prepare
    const tools = powertools({ serviceName: 'sonomark-test' });
    const handler = sonomarkHandler(async (input) => ({ echoed: input }), tools, { message: 'test failed' });
    let out: unknown;
    // Act
    const lines = await captured(async () => (out = await handler(7)));
    // Assess
    expect(out).toEqual({ echoed: 7 });
    expect(lines.some((l) => l.level === 'ERROR')).toBe(false);
  });

  it.each([
    [
      'a DynamoDB throttle',
      () =>
        new ProvisionedThroughputExceededException({
          message: 'Rate of requests exceeds the allowed throughput.',
          $metadata: { httpStatusCode: 400 },
        }),
    ],
    [
      'an S3 503',
      () =>
        new S3ServiceException({
          name: 'SlowDown',
          $fault: 'server',
          message: 'Please reduce your request rate.',
          $metadata: { httpStatusCode: 503 },
        }),
    ],
    [
      'an S3 500 of any name',
      () =>
        new S3ServiceException({
          name: 'UnknownError',
          $fault: 'server',
          message: 'We encountered an internal error.',
          $metadata: { httpStatusCode: 500 },
        }),
    ],
    ['a reset connection', () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
  ])('rethrows %s as Sonomark.TransientError, logged under that name', async (_what, make) => {
    // Prepare
    const tools = powertools({ serviceName: 'sonomark-test' });
    const handler = sonomarkHandler(
      async () => {
        throw make();
      },
      tools,
      { message: 'test failed' },
    );
    let thrown: unknown;
    // Act
    const lines = await captured(() => handler({}, context).catch((e) => (thrown = e)));
    // Assess
    expect(thrown).toBeInstanceOf(TransientError);
    expect((thrown as Error).name).toBe(TRANSIENT_ERROR_NAME);
    expect(lines.find((l) => l.message === 'test failed')).toMatchObject({ errorName: TRANSIENT_ERROR_NAME });
  });

  it.each([
    [
      'a failed condition (HTTP 400)',
      () =>
        Object.assign(new Error('The conditional request failed'), {
          name: 'ConditionalCheckFailedException',
          $metadata: { httpStatusCode: 400 },
        }),
    ],
    [
      'a missing object (HTTP 404)',
      () =>
        Object.assign(new Error('The specified key does not exist.'), {
          name: 'NoSuchKey',
          $metadata: { httpStatusCode: 404 },
        }),
    ],
    [
      'access denied (HTTP 403)',
      () => Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }),
    ],
  ])('rethrows %s unchanged: it is permanent', async (_what, make) => {
    // Prepare
    const tools = powertools({ serviceName: 'sonomark-test' });
    const err = make();
    const handler = sonomarkHandler(
      async () => {
        throw err;
      },
      tools,
      { message: 'test failed' },
    );
    let thrown: unknown;
    // Act
    await captured(() => handler({}, context).catch((e) => (thrown = e)));
    // Assess
    expect(thrown).toBe(err);
  });
});
