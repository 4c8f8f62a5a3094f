/**
 * Fault injection for local mode (tests, the soak): the failures a cloud run meets
 * and a local one never does, injected where they arise, so that the real retry
 * paths run end to end.
 *
 * - SDK faults: AWS SDK middleware on the local S3 and DynamoDB clients answers chosen
 *   operations with a DynamoDB ThrottlingException or an S3 500/503, as the service
 *   would: an HTTP response the SDK's own deserializer turns into its error class. It
 *   sits below the SDK's retry middleware, so the SDK retries it first (3 attempts),
 *   exactly as in AWS; only what outlasts those reaches the handler.
 * - Handler faults: a Task state's handler (an expert, by name) throws a transient
 *   error N times before its real work runs, as a handler would on a throttled call;
 *   or (`timeout`) runs past its configured timeout N times: its work runs (its writes
 *   land), then the invocation fails as Lambda's runtime fails it, Error `Sandbox.Timedout`
 *   with Lambda's Cause, so the state machine's Retry and Catch meet what the cloud gives them.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { STATE } from '../core/contract';
import { TransientError } from '../core/errors';
import type { LambdaRole } from './names';

export interface SdkFault {
  readonly service: 's3' | 'dynamodb';
  /** The API operation, e.g. `GetObject`, `PutItem`, `UpdateItem`. */
  readonly operation: string;
  /**
   * `throttle`: DynamoDB ThrottlingException (400) or S3 SlowDown (503); `server-error`: a 500;
   * `access-denied`: a 403 AccessDenied(Exception), the permanent error a missing permission gives.
   */
  readonly kind: 'throttle' | 'server-error' | 'access-denied';
  /** How many calls (SDK attempts included) fail before the operation works again. */
  readonly times: number;
  /** Only calls whose `Key` (S3) starts with this. @default every call */
  readonly keyPrefix?: string;
}

export interface HandlerFault {
  /** The Task state's function (LambdaRole) or the extractor job. */
  readonly role: LambdaRole | 'extract';
  /** For `expert`: only this expert (manifest name). @default every expert */
  readonly expert?: string;
  /** How many invocations throw before the handler runs normally. */
  readonly times: number;
  /**
   * `transient` (default): the handler throws Sonomark.TransientError. `no-spot-capacity`
   * (role `extract` only): the Extract job on the spot queue is cancelled as Batch cancels a
   * job starved of spot capacity, so the workflow moves it to ExtractOnDemand. `timeout`
   * (Lambda roles only): the invocation exceeds its timeout (Sandbox.Timedout, see above).
   */
  readonly kind?: 'transient' | 'no-spot-capacity' | 'timeout';
  /** `timeout`: the function's configured timeout the error names. @default 30 (SonomarkFunction's default) */
  readonly timeoutSeconds?: number;
  /** `timeout`: how long past the handler's end the invocation fails, locally. @default 20 ms */
  readonly afterMs?: number;
}

/** The error name Step Functions gives a Lambda invocation that ran past its function's timeout. */
export const LAMBDA_TIMEOUT_ERROR = 'Sandbox.Timedout';

/** A Lambda invocation that ran past its timeout, as the runtime reports it (name and message). */
export class LambdaTimeoutFault extends Error {
  override readonly name = LAMBDA_TIMEOUT_ERROR;
  constructor(seconds: number) {
    super(`RequestId: local-injected Error: Task timed out after ${seconds.toFixed(2)} seconds`);
  }
}

/** Thrown for a `no-spot-capacity` fault; the Batch binding turns it into Batch's cancellation. */
export class NoSpotCapacityFault extends Error {
  override readonly name = 'NoSpotCapacityFault';
}

export interface FaultPlan {
  readonly sdk?: readonly SdkFault[];
  readonly handlers?: readonly HandlerFault[];
}

interface FakeResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: Readable;
}

function faultResponse(service: SdkFault['service'], kind: SdkFault['kind']): FakeResponse {
  if (service === 'dynamodb') {
    const [status, type, message] = {
      throttle: [400, 'ThrottlingException', 'Rate of requests exceeds the allowed throughput (injected).'] as const,
      'server-error': [500, 'InternalServerError', 'Internal server error (injected).'] as const,
      'access-denied': [
        400,
        'AccessDeniedException',
        'User is not authorized to perform this action (injected).',
      ] as const,
    }[kind];
    return {
      statusCode: status,
      headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'injected-fault' },
      body: Readable.from([
        Buffer.from(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message })),
      ]),
    };
  }
  const [status, code, message] = {
    throttle: [503, 'SlowDown', 'Please reduce your request rate (injected).'] as const,
    'server-error': [500, 'InternalError', 'We encountered an internal error. Please try again (injected).'] as const,
    'access-denied': [403, 'AccessDenied', 'Access Denied (injected).'] as const,
  }[kind];
  return {
    statusCode: status,
    headers: { 'content-type': 'application/xml', 'x-amz-request-id': 'injected-fault' },
    body: Readable.from([
      Buffer.from(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
      ),
    ]),
  };
}

/** The operation name of an SDK command (`GetObjectCommand` → `GetObject`; the document client's `PutCommand` runs as `PutItemCommand`). */
const operationOf = (commandName: unknown): string =>
  typeof commandName === 'string' ? commandName.replace(/Command$/, '') : '';

/** A fault plan in force, with what it has injected so far. */
export class LocalFaults {
  private readonly sdkLeft: number[];
  private readonly handlersLeft: number[];
  /** Injected faults, by `s3:GetObject`, `dynamodb:PutItem`, `handler:expert:diagnosis`, …. */
  readonly injected: Record<string, number> = {};

  constructor(readonly plan: FaultPlan = {}) {
    for (const f of [...(plan.sdk ?? []), ...(plan.handlers ?? [])]) {
      if (!Number.isInteger(f.times) || f.times < 0)
        throw new RangeError(`fault times must be a whole number >= 0 (got ${f.times})`);
    }
    this.sdkLeft = (plan.sdk ?? []).map((f) => f.times);
    this.handlersLeft = (plan.handlers ?? []).map((f) => f.times);
  }

  /** Total faults injected so far. */
  get total(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  private count(what: string): void {
    this.injected[what] = (this.injected[what] ?? 0) + 1;
  }

  /** Adds the injecting middleware to a client (the document client shares its client's stack). */
  attach(service: SdkFault['service'], client: S3Client | DynamoDBClient): void {
    const rules = (this.plan.sdk ?? []).map((f, i) => ({ f, i })).filter(({ f }) => f.service === service);
    if (rules.length === 0) return;
    const stack = client.middlewareStack as unknown as {
      add(mw: unknown, opts: { step: string; priority: string; name: string }): void;
    };
    stack.add(
      (next: (args: unknown) => Promise<unknown>, context: { commandName?: unknown }) =>
        async (args: { input?: { Key?: unknown } }) => {
          const operation = operationOf(context.commandName);
          const key = typeof args.input?.Key === 'string' ? args.input.Key : undefined;
          const rule = rules.find(
            ({ f, i }) =>
              this.sdkLeft[i]! > 0 &&
              f.operation === operation &&
              (f.keyPrefix === undefined || (key !== undefined && key.startsWith(f.keyPrefix))),
          );
          if (!rule) return next(args);
          this.sdkLeft[rule.i]!--;
          this.count(`${service}:${operation}`);
          // Answered before the request leaves: the deserializer above parses it into the service's error.
          return { response: faultResponse(service, rule.f.kind), output: undefined };
        },
      // Below the deserializer and the retry middleware: every SDK attempt passes here.
      { step: 'deserialize', priority: 'low', name: 'sonomarkFaultInjection' },
    );
  }

  /**
   * Throws a TransientError (or NoSpotCapacityFault) when a handler fault for this
   * invocation is left. `state` is the Task state's name: a no-spot-capacity fault hits
   * only Extract, the spot submit.
   */
  beforeHandler(role: HandlerFault['role'], payload: unknown, state?: string): void {
    const expert = (payload as { expert?: { name?: unknown } } | null)?.expert?.name;
    const handlers = this.plan.handlers ?? [];
    const i = handlers.findIndex(
      (f, j) =>
        this.handlersLeft[j]! > 0 &&
        f.role === role &&
        f.kind !== 'timeout' &&
        (f.expert === undefined || f.expert === expert) &&
        (f.kind !== 'no-spot-capacity' || state === STATE.extract),
    );
    if (i < 0) return;
    this.handlersLeft[i]!--;
    if (handlers[i]!.kind === 'no-spot-capacity') {
      this.count('batch:no-spot-capacity');
      throw new NoSpotCapacityFault('Injected: no spot capacity for the Extract job.');
    }
    const what = `handler:${role}${role === 'expert' && typeof expert === 'string' ? `:${expert}` : ''}`;
    this.count(what);
    throw new TransientError(`Injected transient fault in ${what}.`, 'InjectedFault');
  }

  /**
   * A `timeout` fault for this invocation, if one is left (consumed): the binding runs the
   * handler, waits `afterMs`, then throws LambdaTimeoutFault instead of returning its answer.
   */
  takeTimeout(role: HandlerFault['role'], payload: unknown): { seconds: number; afterMs: number } | undefined {
    const expert = (payload as { expert?: { name?: unknown } } | null)?.expert?.name;
    const handlers = this.plan.handlers ?? [];
    const i = handlers.findIndex(
      (f, j) =>
        this.handlersLeft[j]! > 0 &&
        f.kind === 'timeout' &&
        f.role === role &&
        (f.expert === undefined || f.expert === expert),
    );
    if (i < 0) return undefined;
    this.handlersLeft[i]!--;
    this.count(`timeout:${role}${role === 'expert' && typeof expert === 'string' ? `:${expert}` : ''}`);
    return { seconds: handlers[i]!.timeoutSeconds ?? 30, afterMs: handlers[i]!.afterMs ?? 20 };
  }
}
