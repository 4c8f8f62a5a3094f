/**
 * Typed errors. Their `name` is what Step Functions matches in Retry/Catch
 * (Lambda reports it as errorType), so names are part of the workflow contract.
 */

/** The upload is unusable as given; the message says what was wrong and what is accepted. */
export class InvalidUploadError extends Error {
  override readonly name = 'InvalidUpload';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The clip could not be decoded into frames. */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A model file, the manifest or a model's I/O does not match what sonomark expects. */
export class ModelError extends Error {
  override readonly name = 'ModelError';
}

/** A payload crossing a boundary failed its zod schema. */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';
}

/** Required configuration (an environment variable) is missing or malformed. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The name of TransientError, which the state machine retries with backoff on every
 * Task state (lib/constructs/workflow.ts): part of the workflow contract.
 */
export const TRANSIENT_ERROR_NAME = 'Sonomark.TransientError';

/**
 * A failure that is not the clip's fault and may pass if the same step runs again:
 * AWS throttling, a 5xx, a timeout, a reset connection (core/transient.ts classifies
 * them). The state machine retries it; every other error goes to RecordFailure.
 */
export class TransientError extends Error {
  override readonly name = TRANSIENT_ERROR_NAME;
  constructor(
    message: string,
    /** The classified error's own name (e.g. ThrottlingException), kept for logs and the failure record. */
    readonly causeName?: string,
  ) {
    super(message);
  }
}
