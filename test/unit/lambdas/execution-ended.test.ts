import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { EXECUTION_SK, executionPk, scanPk, SCAN_SK } from '../../../core/keys';
import {
  abandonedProblem,
  executionEnded,
  INTERRUPTED_ERROR,
  type ExecutionEndedDeps,
} from '../../../lambdas/execution-ended/execution-ended';

const ddbMock = mockClient(DynamoDBDocumentClient);
const NOW = '2025-01-02T03:10:00.000Z';
const ARN = 'arn:aws:states:us-east-1:123456789012:execution:Sonomark:scan-obj-0123456789abcdef0123456789abcdef';
const SCAN_ID = 'a'.repeat(32);
const deps = (): ExecutionEndedDeps => ({
  doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
  table: 'results',
  now: () => new Date(NOW),
});

/** An "Execution Status Change" event as EventBridge delivers it (input holds the object key). */
function statusChange(status: string, extra: Record<string, unknown> = {}) {
  return {
    version: '0',
    id: 'e1',
    'detail-type': 'Step Functions Execution Status Change',
    source: 'aws.states',
    account: '123456789012',
    time: NOW,
    region: 'us-east-1',
    resources: [ARN],
    detail: {
      executionArn: ARN,
      stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:Sonomark',
      name: 'scan-obj-0123456789abcdef0123456789abcdef',
      status,
      startDate: 1735787400000,
      stopDate: 1735787500000,
      input: JSON.stringify({ detail: { object: { key: 'uploads/site-a/study-1/DOE^JANE.mp4' } } }),
      output: null,
      error: null,
      cause: null,
      ...extra,
    },
  };
}

const conditionFailed = (): Error =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

beforeEach(() => {
  ddbMock.reset();
  ddbMock.on(GetCommand, { Key: { pk: executionPk(ARN), sk: EXECUTION_SK } }).resolves({
    Item: { pk: executionPk(ARN), sk: EXECUTION_SK, executionId: ARN, siteId: 'site-a', scanId: SCAN_ID },
  });
  ddbMock.on(UpdateCommand).resolves({});
});

describe('executionEnded', () => {
  it.each([
    ['TIMED_OUT', 'EXECUTION_TIMED_OUT', /time limit/],
    ['ABORTED', 'EXECUTION_ABORTED', /stopped/],
    ['FAILED', 'EXECUTION_FAILED', /without recording why/],
  ])('%s: records the scan FAILED (%s) only while it is RUNNING under this execution', async (status, code, text) => {
    // Act
    const out = await executionEnded(statusChange(status), deps());
    // Assess
    expect(out.result).toEqual({ recorded: true, scanId: SCAN_ID });
    expect(out.problem.code).toBe(code);
    expect(out.problem.message).toMatch(text);
    expect(ddbMock).toHaveReceivedCommandTimes(UpdateCommand, 1);
    expect(ddbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: { pk: scanPk('site-a', SCAN_ID), sk: SCAN_SK },
      ConditionExpression: '#status = :running AND #lease.#executionId = :executionId',
      ExpressionAttributeValues: expect.objectContaining({
        ':failed': 'FAILED',
        ':running': 'RUNNING',
        ':executionId': ARN,
        ':error': { code, message: out.problem.message },
        ':now': NOW,
      }),
    });
    // Never a put: the scan item is updated in place or not at all.
    expect(ddbMock).toHaveReceivedCommandTimes(PutCommand, 0);
  });

  it('a second delivery of the event (the scan no longer RUNNING under it) changes nothing and does not throw', async () => {
    // Prepare
    ddbMock.on(UpdateCommand).rejects(conditionFailed());
    // Act
    const out = await executionEnded(statusChange('TIMED_OUT'), deps());
    // Assess
    expect(out.result).toEqual({ recorded: false, reason: 'not-running-under-execution', scanId: SCAN_ID });
  });

  it('an execution that claimed no scan (no pointer: it stopped in Validate, or the object was ignored) writes nothing', async () => {
    // Prepare
    ddbMock.on(GetCommand).resolves({});
    // Act
    const out = await executionEnded(statusChange('ABORTED'), deps());
    // Assess
    expect(out.result).toEqual({ recorded: false, reason: 'no-claim' });
    expect(ddbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
  });

  it('a local interruption (error sonomark.Interrupted) is recorded INTERRUPTED', async () => {
    // Act
    const out = await executionEnded(statusChange('ABORTED', { error: INTERRUPTED_ERROR }), deps());
    // Assess
    expect(out.problem.code).toBe('INTERRUPTED');
  });

  it('the problem never quotes the cause (it can carry the execution input), only an error name', async () => {
    // Act
    const named = abandonedProblem('FAILED', 'States.Runtime');
    const free = abandonedProblem('FAILED', 'uploads/site-a/study-1/DOE^JANE.mp4');
    const out = await executionEnded(
      statusChange('FAILED', { error: 'States.Runtime', cause: 'at uploads/site-a/study-1/DOE^JANE.mp4' }),
      deps(),
    );
    // Assess
    expect(named.message).toContain('with States.Runtime');
    expect(free.message).not.toMatch(/DOE|uploads/);
    expect(JSON.stringify(out)).not.toMatch(/DOE|uploads/);
  });

  it.each([
    ['a SUCCEEDED execution', statusChange('SUCCEEDED')],
    ['an S3 event', { 'detail-type': 'Object Created', source: 'aws.s3', detail: {} }],
    ['no event', null],
  ])('rejects %s as a PayloadError, naming the field', async (_what, input) => {
    // Act
    const err = (await executionEnded(input, deps()).catch((e: unknown) => e)) as Error;
    // Assess
    expect(err.name).toBe('PayloadError');
    expect(err.message).toMatch(/ExecutionEnded input/);
    expect(err.message).not.toContain('DOE');
  });
});

describe('handler', () => {
  it('records the scan and logs the execution and scan ids, never the event input (the object key)', async () => {
    // Prepare
    process.env.RESULTS_TABLE = 'results';
    process.env.POWERTOOLS_TRACE_ENABLED = 'false';
    const written: string[] = [];
    const capture = (chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    };
    const spies = [
      jest.spyOn(process.stdout, 'write').mockImplementation(capture),
      jest.spyOn(process.stderr, 'write').mockImplementation(capture),
    ];
    let first, second, failed;
    try {
      const { handler } = await import('../../../lambdas/execution-ended/handler');
      // Act: the event, the same event again (at-least-once delivery), a malformed one.
      first = await handler(statusChange('TIMED_OUT'));
      ddbMock.on(UpdateCommand).rejects(conditionFailed());
      second = await handler(statusChange('TIMED_OUT'));
      failed = await handler({ detail: { input: 'uploads/site-a/study-1/DOE^JANE.mp4' } }).catch((e: unknown) => e);
    } finally {
      for (const spy of spies) spy.mockRestore();
      delete process.env.RESULTS_TABLE;
      delete process.env.POWERTOOLS_TRACE_ENABLED;
    }
    // Assess
    expect(first.result.recorded).toBe(true);
    expect(second.result.recorded).toBe(false);
    expect(failed).toMatchObject({ name: 'PayloadError' });
    const logs = written.join('');
    expect(logs).toContain('abandoned scan recorded FAILED');
    expect(logs).toContain(SCAN_ID);
    expect(logs).toMatch(/recording the ended execution failed/);
    expect(logs).not.toContain('DOE');
    expect(logs).not.toContain('uploads/');
  });
});
