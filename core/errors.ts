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
