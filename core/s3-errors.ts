/**
 * How S3 errors read, in one place: the cohort steps and the salt object all need to tell
 * "there is no object at this key" from a real failure.
 */

const httpStatus = (err: unknown): number | undefined =>
  (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;

/** True when `err` is an S3 error with one of these names (the SDK's `name`). */
export const isS3ErrorNamed = (err: unknown, ...names: string[]): boolean =>
  names.includes((err as { name?: string } | undefined)?.name ?? '');

/** True when `err` carries this HTTP status. */
export const hasHttpStatus = (err: unknown, ...codes: number[]): boolean => codes.includes(httpStatus(err) ?? 0);

/**
 * No object at the key. Without s3:ListBucket (these roles read by key, never list) S3 answers a
 * missing key with 403 rather than 404, so AccessDenied on a key the caller may read means missing.
 */
export const isMissingObject = (err: unknown): boolean =>
  isS3ErrorNamed(err, 'NoSuchKey', 'NotFound', 'AccessDenied') || hasHttpStatus(err, 403, 404);
