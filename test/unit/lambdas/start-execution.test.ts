import {
  ExecutionAlreadyExists,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  StateMachineDoesNotExist,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import {
  EXECUTION_NAME_PATTERN,
  EXECUTION_NAME_PREFIX,
  executionNameFor,
  startExecution,
  type StartExecutionDeps,
} from '../../../lambdas/start-execution/start-execution';
import { admitBatch, type AdmissionDeps } from '../../../lambdas/start-execution/admission';
import { scanIdFromObjectIdentity } from '../../../core/scan-id';
import { objectCreatedEvent } from '../helpers/fakes';

const sfnMock = mockClient(SFNClient);
const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:sonomark';
const KEY = 'uploads/site-a/study-1/Jane Doe 1970-01-01 (left lung).mp4';

const deps = (): StartExecutionDeps => ({
  sfn: new SFNClient({ region: 'us-east-1' }),
  stateMachineArn: STATE_MACHINE,
});

/** An event as EventBridge delivers it: with the envelope fields the zod schema does not model. */
const eventBridgeEvent = (key = KEY, versionId = 'v1', etag = 'e1') => ({
  version: '0',
  id: '17793124-05d4-b198-2fde-7ededc63b103',
  account: '123456789012',
  resources: ['arn:aws:s3:::sonomark-uploads'],
  time: '2025-01-02T03:04:05Z',
  region: 'us-east-1',
  ...objectCreatedEvent(key, { versionId, etag, size: 1234 }),
});

beforeEach(() => {
  sfnMock.reset();
});

describe('executionNameFor', () => {
  it('is the object-identity scan id with a prefix: deterministic, and a valid execution name', () => {
    // Prepare
    const event = objectCreatedEvent(KEY, { bucket: 'b', versionId: 'v1', etag: 'e1' });
    // Act
    const name = executionNameFor(event);
    // Assess
    expect(name).toBe(`${EXECUTION_NAME_PREFIX}${scanIdFromObjectIdentity('b', KEY, 'v1', 'e1')}`);
    expect(executionNameFor(structuredClone(event))).toBe(name);
    expect(name).toMatch(EXECUTION_NAME_PATTERN);
    expect(name.length).toBeLessThanOrEqual(80);
  });

  it('stays within [A-Za-z0-9-_] and 80 characters for any key, and never contains the key', () => {
    // Prepare
    const keys = [
      KEY,
      `uploads/s/t/${'ü'.repeat(900)}.mp4`,
      'uploads/s/t/a b/c:d*e?f"g<h>i|j#k%l.avi',
      'uploads/s/t/../../etc/passwd',
    ];
    // Act / Assess
    for (const key of keys) {
      const name = executionNameFor(objectCreatedEvent(key, { versionId: 'v', etag: 'e' }));
      expect(name).toMatch(EXECUTION_NAME_PATTERN);
      expect(name).toHaveLength(EXECUTION_NAME_PREFIX.length + 32);
      expect(name).not.toContain('Jane');
    }
  });

  it('differs per object version, ETag, key and bucket', () => {
    // Prepare
    const names = [
      objectCreatedEvent(KEY, { versionId: 'v1', etag: 'e1' }),
      objectCreatedEvent(KEY, { versionId: 'v2', etag: 'e1' }),
      objectCreatedEvent(KEY, { versionId: 'v1', etag: 'e2' }),
      objectCreatedEvent(`${KEY}x`, { versionId: 'v1', etag: 'e1' }),
      objectCreatedEvent(KEY, { bucket: 'other-bucket', versionId: 'v1', etag: 'e1' }),
      objectCreatedEvent(KEY, {}),
    ].map(executionNameFor);
    // Assess
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('startExecution', () => {
  it('starts the state machine with the deterministic name and the event exactly as EventBridge sent it', async () => {
    // Prepare
    const event = eventBridgeEvent();
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() });
    // Act
    const out = await startExecution(event, deps());
    // Assess
    expect(out).toEqual({
      status: 'started',
      executionName: executionNameFor(event),
      executionArn: `${STATE_MACHINE}:x`,
    });
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    const input = sfnMock.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(input.stateMachineArn).toBe(STATE_MACHINE);
    expect(input.name).toBe(executionNameFor(event));
    // The workflow's Start state wraps exactly this as $.event (envelope fields included).
    expect(JSON.parse(input.input!)).toEqual(event);
  });

  it('a re-delivered event starts nothing new: ExecutionAlreadyExists counts as success', async () => {
    // Prepare
    const event = eventBridgeEvent();
    sfnMock
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() })
      .rejects(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} }));
    // Act
    const first = await startExecution(event, deps());
    const second = await startExecution({ ...event, id: 'another-delivery-id' }, deps());
    // Assess
    expect(first.status).toBe('started');
    expect(second).toEqual({ status: 'already-started', executionName: first.executionName });
    const names = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name);
    expect(names).toEqual([first.executionName, first.executionName]);
  });

  it('recognises ExecutionAlreadyExists by name too (an error from another SDK copy)', async () => {
    // Prepare
    sfnMock.on(StartExecutionCommand).rejects(Object.assign(new Error('exists'), { name: 'ExecutionAlreadyExists' }));
    // Act
    const out = await startExecution(eventBridgeEvent(), deps());
    // Assess
    expect(out.status).toBe('already-started');
  });

  it.each([
    ['StateMachineDoesNotExist', new StateMachineDoesNotExist({ message: 'gone', $metadata: {} })],
    ['ThrottlingException', Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' })],
    ['AccessDeniedException', Object.assign(new Error('denied'), { name: 'AccessDeniedException' })],
  ])('rethrows %s, so Lambda retries and then dead-letters the event', async (name, error) => {
    // Prepare
    sfnMock.on(StartExecutionCommand).rejects(error);
    // Act / Assess
    await expect(startExecution(eventBridgeEvent(), deps())).rejects.toMatchObject({ name });
  });

  it.each([
    ['not an S3 event', { source: 'aws.batch', 'detail-type': 'Batch Job State Change', detail: {} }],
    ['no object key', { ...eventBridgeEvent(), detail: { bucket: { name: 'sonomark-uploads' }, object: {} } }],
    ['nothing', undefined],
  ])('rejects %s with a PayloadError and starts nothing', async (_what, input) => {
    // Act / Assess
    await expect(startExecution(input, deps())).rejects.toMatchObject({ name: 'PayloadError' });
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('a PayloadError names the bad field but not the object key', async () => {
    // Prepare
    const bad = { ...eventBridgeEvent(), detail: { bucket: { name: 'b' }, object: { key: KEY, size: 'big' } } };
    // Act
    const err = (await startExecution(bad, deps()).catch((e: unknown) => e)) as Error;
    // Assess
    expect(err.message).toMatch(/detail\.object\.size/);
    expect(err.message).not.toContain('Jane');
  });
});

/** An SQS event as the upload queue's event source delivers it: each body an EventBridge event. */
const sqsEvent = (...bodies: unknown[]) => ({
  Records: bodies.map((b, i) => ({
    messageId: `m-${i}`,
    receiptHandle: `r-${i}`,
    body: typeof b === 'string' ? b : JSON.stringify(b),
    attributes: { ApproximateReceiveCount: '1' },
    messageAttributes: {},
    eventSource: 'aws:sqs',
  })),
});

const running = (n: number) => ({
  executions: Array.from({ length: n }, (_, i) => ({
    executionArn: `${STATE_MACHINE}:e${i}`,
    stateMachineArn: STATE_MACHINE,
    name: `e${i}`,
    status: 'RUNNING' as const,
    startDate: new Date(),
  })),
});

describe('admitBatch', () => {
  /** Deps with a fake clock: sleep advances it instead of waiting. */
  function admissionDeps(cap: number, maxWaitMs = 60_000): AdmissionDeps & { slept: number[] } {
    let t = 0;
    const slept: number[] = [];
    return {
      ...deps(),
      maxRunningScans: cap,
      maxWaitMs,
      pollMs: 10_000,
      now: () => t,
      sleep: async (ms) => {
        slept.push(ms);
        t += ms;
      },
      random: () => 0.5,
      slept,
    };
  }

  it('starts every message while slots are free, and counts only RUNNING executions of this state machine', async () => {
    // Prepare
    sfnMock.on(ListExecutionsCommand).resolves(running(1));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() });
    // Act
    const out = await admitBatch(sqsEvent(eventBridgeEvent(KEY, 'v1'), eventBridgeEvent(KEY, 'v2')), admissionDeps(5));
    // Assess
    expect(out).toMatchObject({ batchItemFailures: [], started: 2, deferred: 0, failed: 0 });
    expect(sfnMock).toHaveReceivedCommandWith(ListExecutionsCommand, {
      stateMachineArn: STATE_MACHINE,
      statusFilter: 'RUNNING',
    });
    // The execution input is the EventBridge event, exactly as queued.
    const inputs = sfnMock.commandCalls(StartExecutionCommand).map((c) => JSON.parse(c.args[0].input.input!));
    expect(inputs).toEqual([eventBridgeEvent(KEY, 'v1'), eventBridgeEvent(KEY, 'v2')]);
  });

  it('starts only up to the cap; the rest wait, and stay in the queue when no slot frees within the wait', async () => {
    // Prepare: 3 of 4 slots taken; then the one it starts takes the last, and none frees.
    sfnMock.on(ListExecutionsCommand).resolvesOnce(running(3)).resolves(running(4));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() });
    const d = admissionDeps(4, 60_000);
    // Act
    const out = await admitBatch(
      sqsEvent(eventBridgeEvent(KEY, 'v1'), eventBridgeEvent(KEY, 'v2'), eventBridgeEvent(KEY, 'v3')),
      d,
    );
    // Assess
    expect(out).toMatchObject({
      batchItemFailures: [{ itemIdentifier: 'm-1' }, { itemIdentifier: 'm-2' }],
      started: 1,
      deferred: 2,
      failed: 0,
    });
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    // It waited in jittered polls (10 s × 1.0 here) for no longer than the wait allows.
    expect(d.slept.length).toBeGreaterThan(0);
    expect(d.slept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(60_000);
  });

  it('starts a waiting message as soon as a slot frees', async () => {
    // Prepare: full, then one execution ends.
    sfnMock.on(ListExecutionsCommand).resolvesOnce(running(2)).resolves(running(1));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() });
    const d = admissionDeps(2);
    // Act
    const out = await admitBatch(sqsEvent(eventBridgeEvent()), d);
    // Assess
    expect(out).toMatchObject({ batchItemFailures: [], started: 1, deferred: 0 });
    expect(d.slept).toEqual([10_000]);
  });

  it('counts past one page of ListExecutions when the cap is larger than a page', async () => {
    // Prepare
    sfnMock
      .on(ListExecutionsCommand)
      .resolvesOnce({ ...running(1000), nextToken: 't' })
      .resolvesOnce(running(500));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() });
    // Act
    const out = await admitBatch(sqsEvent(eventBridgeEvent()), admissionDeps(2000));
    // Assess
    expect(out.started).toBe(1);
    expect(sfnMock.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input.maxResults)).toEqual([1000, 1000]);
  });

  it('a duplicate delivery is a success and takes no slot; a failed start stays in the queue with its error name', async () => {
    // Prepare
    sfnMock.on(ListExecutionsCommand).resolves(running(0));
    sfnMock
      .on(StartExecutionCommand)
      .rejectsOnce(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }))
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .resolves({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() });
    // Act
    const out = await admitBatch(
      sqsEvent(eventBridgeEvent(KEY, 'v1'), eventBridgeEvent(KEY, 'v2'), 'not json', eventBridgeEvent(KEY, 'v3')),
      admissionDeps(1),
    );
    // Assess
    expect(out).toMatchObject({
      batchItemFailures: [{ itemIdentifier: 'm-1' }, { itemIdentifier: 'm-2' }],
      started: 1,
      duplicates: 1,
      failed: 2,
      errors: ['ThrottlingException', 'PayloadError'],
    });
  });

  it('a ListExecutions failure fails the whole batch (every message stays)', async () => {
    // Prepare
    sfnMock
      .on(ListExecutionsCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    // Act / Assess
    await expect(admitBatch(sqsEvent(eventBridgeEvent()), admissionDeps(3))).rejects.toMatchObject({
      name: 'ThrottlingException',
    });
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('rejects an event that is not an SQS batch with a PayloadError', async () => {
    // Act / Assess
    await expect(admitBatch(eventBridgeEvent(), admissionDeps(3))).rejects.toMatchObject({ name: 'PayloadError' });
  });
});

describe('handler', () => {
  it('returns the partial batch response, logs counts and never the object key', async () => {
    // Prepare
    process.env.STATE_MACHINE_ARN = STATE_MACHINE;
    process.env.MAX_RUNNING_SCANS = '10';
    process.env.ADMISSION_WAIT_SECONDS = '1';
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
    // The environment and the spies are restored even when this throws, so no later test sees them.
    let out;
    try {
      const { handler } = await import('../../../lambdas/start-execution/handler');
      sfnMock.on(ListExecutionsCommand).resolves(running(0));
      sfnMock
        .on(StartExecutionCommand)
        .resolvesOnce({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() })
        .rejectsOnce(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }))
        .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
      // Act
      out = await handler(
        sqsEvent(eventBridgeEvent(KEY, 'v1'), eventBridgeEvent(KEY, 'v1'), eventBridgeEvent(KEY, 'v2')),
      );
    } finally {
      for (const spy of spies) spy.mockRestore();
      delete process.env.STATE_MACHINE_ARN;
      delete process.env.MAX_RUNNING_SCANS;
      delete process.env.ADMISSION_WAIT_SECONDS;
      delete process.env.POWERTOOLS_TRACE_ENABLED;
    }
    // Assess
    expect(out).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-2' }] });
    const logs = written.join('');
    expect(logs).toMatch(/batch admitted/);
    expect(logs).toMatch(/"started":1/);
    expect(logs).not.toContain('Jane');
    expect(logs).not.toContain('uploads/');
  });
});
