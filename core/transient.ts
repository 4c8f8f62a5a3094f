/**
 * Transient vs permanent: the one place that decides whether a failed AWS call (or a
 * socket under it) may pass if the step runs again. Handlers do not call this:
 * sonomarkHandler (lambdas/shared/middleware.ts) and local mode's bindings run every
 * thrown error through toWorkflowError, so a handler stays its work and nothing else.
 *
 * Duck-typed on the AWS SDK v3 error shape (`name`, `$retryable`,
 * `$metadata.httpStatusCode`) and Node's system errors (`code`), so core/ needs no SDK.
 * The lists follow @smithy/service-error-classification, the SDK's own retry classifier.
 */
import { TransientError } from './errors';

/** Error names AWS services use for throttling (the SDK's THROTTLING_ERROR_CODES, plus DynamoDB's and S3's). */
export const THROTTLING_ERROR_NAMES: ReadonlySet<string> = new Set([
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
]);

/** Service-side faults and timeouts worth another attempt (the SDK's TRANSIENT_ERROR_CODES and server errors). */
export const TRANSIENT_ERROR_NAMES: ReadonlySet<string> = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'InternalServerErrorException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/** Node system error codes of a connection that broke or timed out (not one refused by configuration). */
export const TRANSIENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
]);

/** HTTP statuses that are transient whatever the error name: throttled (429) or a server fault (5xx). */
export function isTransientStatus(status: number | undefined): boolean {
  return status === 429 || (status !== undefined && status >= 500 && status <= 599);
}

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  cause?: unknown;
}

/**
 * Why `err` is transient (e.g. `ThrottlingException`, `HTTP 503`, `ECONNRESET`), or
 * undefined when it is not: a handler's own errors (InvalidUpload, PayloadError, …), a
 * 4xx that says the request was wrong, a missing object, a failed condition.
 */
export function transientReason(err: unknown, depth = 0): string | undefined {
  if (err === null || typeof err !== 'object' || depth > 3) return undefined;
  const e = err as ErrorShape;
  const name = typeof e.name === 'string' ? e.name : undefined;
  if (err instanceof TransientError) return err.causeName ?? err.name;
  if (name && (THROTTLING_ERROR_NAMES.has(name) || TRANSIENT_ERROR_NAMES.has(name))) return name;
  // The SDK marks what its own retry strategy would retry (throttling, clock skew, transient faults).
  if (e.$retryable) return name ?? 'retryable';
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  if (isTransientStatus(status)) return `${name ?? 'Error'} (HTTP ${status})`;
  if (typeof e.code === 'string' && TRANSIENT_NETWORK_CODES.has(e.code)) return e.code;
  // fetch and the SDK's handlers wrap a socket error as `cause`.
  return e.cause !== undefined ? transientReason(e.cause, depth + 1) : undefined;
}

/**
 * The error a workflow step throws: a TransientError (which the state machine retries)
 * when `err` is transient, else `err` itself, unchanged, for the Catch to record. The
 * TransientError's message names the operation's error and keeps its message, never
 * the request (which can hold an object key).
 */
export function toWorkflowError(err: unknown): unknown {
  if (err instanceof TransientError) return err;
  const reason = transientReason(err);
  if (reason === undefined) return err;
  const e = err as { name?: unknown; message?: unknown };
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const message = typeof e.message === 'string' && e.message.length > 0 ? e.message : 'no message';
  return new TransientError(`Transient ${reason}: ${message}`, name);
}
