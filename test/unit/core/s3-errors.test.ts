import { hasHttpStatus, isMissingObject, isS3ErrorNamed } from '../../../core/s3-errors';

const sdkError = (name: string, httpStatusCode?: number) =>
  Object.assign(new Error(name), { name, $metadata: httpStatusCode === undefined ? {} : { httpStatusCode } });

describe('S3 error reading', () => {
  it('reads a missing object from its name or its status (403 where the caller may not list)', () => {
    expect(isMissingObject(sdkError('NoSuchKey', 404))).toBe(true);
    expect(isMissingObject(sdkError('NotFound'))).toBe(true);
    expect(isMissingObject(sdkError('AccessDenied'))).toBe(true);
    expect(isMissingObject(sdkError('Unknown', 403))).toBe(true);
    expect(isMissingObject(sdkError('Unknown', 404))).toBe(true);
  });

  it('does not take a throttle, a server error or a non-error for a missing object', () => {
    expect(isMissingObject(sdkError('SlowDown', 503))).toBe(false);
    expect(isMissingObject(sdkError('InternalError', 500))).toBe(false);
    expect(isMissingObject(undefined)).toBe(false);
    expect(isMissingObject('NoSuchKey')).toBe(false);
  });

  it('matches names and statuses exactly', () => {
    expect(isS3ErrorNamed(sdkError('PreconditionFailed', 412), 'PreconditionFailed')).toBe(true);
    expect(isS3ErrorNamed(sdkError('PreconditionFailedX'), 'PreconditionFailed')).toBe(false);
    expect(hasHttpStatus(sdkError('X', 409), 409, 412)).toBe(true);
    expect(hasHttpStatus(sdkError('X'), 409)).toBe(false);
  });
});
