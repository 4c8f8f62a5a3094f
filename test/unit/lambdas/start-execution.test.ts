import {
  ExecutionAlreadyExists,
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

describe('handler', () => {
  it('logs the execution name and never the object key; rethrows failures', async () => {
    // Prepare
    process.env.STATE_MACHINE_ARN = STATE_MACHINE;
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
    let started, again, failed;
    try {
      const { handler } = await import('../../../lambdas/start-execution/handler');
      sfnMock
        .on(StartExecutionCommand)
        .resolvesOnce({ executionArn: `${STATE_MACHINE}:x`, startDate: new Date() })
        .rejectsOnce(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }))
        .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
      // Act
      started = await handler(eventBridgeEvent());
      again = await handler(eventBridgeEvent());
      failed = await handler(eventBridgeEvent()).catch((e: unknown) => e);
    } finally {
      for (const spy of spies) spy.mockRestore();
      delete process.env.STATE_MACHINE_ARN;
      delete process.env.POWERTOOLS_TRACE_ENABLED;
    }
    // Assess
    expect(started.status).toBe('started');
    expect(again.status).toBe('already-started');
    expect(failed).toMatchObject({ name: 'ThrottlingException' });
    const logs = written.join('');
    expect(logs).toContain(started.executionName);
    expect(logs).toMatch(/starting the execution failed/);
    expect(logs).not.toContain('Jane');
    expect(logs).not.toContain('uploads/');
  });
});
