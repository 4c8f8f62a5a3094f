/**
 * The Middy middleware every sonomark handler runs under, so that a handler's
 * body is only its work: Powertools adds the Lambda context to logs, publishes
 * the metrics the body added and traces the invocation; logFailure logs what
 * failed. Modelled on Powertools' example app (functions/get-all-items.ts).
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy, { type MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { toWorkflowError } from '../../core/transient';
import type { Powertools } from './runtime';

/** Log fields of an error without its stack (stacks can quote payloads, and payloads can quote keys). */
export function errorFields(err: unknown): { errorName: string; errorMessage: string } {
  const e = err as { name?: string; message?: string } | null;
  return { errorName: e?.name ?? 'Error', errorMessage: e?.message ?? String(err) };
}

/**
 * The scan's ids in a workflow task's input ({scan: {scanId, siteId, studyId}}), read
 * leniently so that they are logged even when the input fails its schema. Ids only:
 * never the object key, which can name a person.
 */
export function scanIds(input: unknown): { scanId: unknown; siteId: unknown; studyId: unknown } {
  const scan = (input as { scan?: { scanId?: unknown; siteId?: unknown; studyId?: unknown } } | null)?.scan;
  return { scanId: scan?.scanId, siteId: scan?.siteId, studyId: scan?.studyId };
}

export interface FailureLog {
  /** The log message, e.g. `finalize failed`. */
  readonly message: string;
  /**
   * Identifiers to log beside the error, picked from the input: ids only, never an
   * object key (a file name can name a person).
   * @default - none
   */
  readonly fields?: (input: unknown) => Record<string, unknown>;
}

/**
 * Logs a failed invocation (errorFields: name and message) and leaves the error
 * unhandled, so Middy rethrows it: Step Functions' Retry/Catch, or Lambda's retries
 * and dead-letter queue for an asynchronous invocation, must see every failure.
 */
export function logFailure(logger: Logger, failure: FailureLog): MiddlewareObj<unknown, unknown> {
  return {
    onError: (request) => {
      logger.error(failure.message, { ...failure.fields?.(request.event), ...errorFields(request.error) });
    },
  };
}

/** A handler as Lambda calls it; tests and tools may leave out the context. */
export type SonomarkHandler<T> = (input: unknown, context?: Context) => Promise<T>;

/**
 * Wraps a handler's work in the middleware: tracing, the Lambda context on every log
 * line, metrics published after success and failure alike, and logFailure. The
 * response is not captured in the trace: it carries the scan's object key.
 *
 * Every error the work throws passes through toWorkflowError (core/transient.ts) first:
 * throttling, 5xx, timeouts and reset connections become Sonomark.TransientError, which
 * the state machine retries with backoff; the rest keep their own name for the Catch.
 * Handlers therefore never classify AWS errors themselves.
 */
export function sonomarkHandler<T>(
  work: (input: unknown) => Promise<T>,
  { logger, metrics, tracer }: Powertools,
  failure: FailureLog,
): SonomarkHandler<T> {
  const classified = async (input: unknown): Promise<T> => {
    try {
      return await work(input);
    } catch (err) {
      throw toWorkflowError(err);
    }
  };
  const handler = middy(classified)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .use(logFailure(logger, failure));
  // Middy hands the middleware an empty context when none is given.
  return (input, context) => handler(input, context as Context);
}
