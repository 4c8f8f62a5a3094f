/**
 * The DICOM pseudonym salt object (core/dicom/salt-object.ts): created once with a conditional
 * write, adopted from a concurrent creator after 412, refused when malformed, cached per client.
 * The S3 mock keeps one object and honours If-None-Match like S3 does.
 */
import { GetObjectCommand, PutObjectCommand, S3Client, type PutObjectCommandInput } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { ConfigError } from '../../../core/errors';
import { DICOM_PSEUDONYM_SALT_KEY } from '../../../core/keys';
import { cachedPseudonymSalt, readOrCreatePseudonymSalt } from '../../../core/dicom/salt-object';
import { s3Body, s3Error } from '../helpers/fakes';

const BUCKET = 'artifacts';
const s3Mock = mockClient(S3Client);
const client = () => new S3Client({ region: 'us-east-1' });
const OTHER_SALT = 'b'.repeat(64);

/** One stored object; GetObject without ListBucket answers a missing key with 403 unless `missing404`. */
function fakeStore(opts: { initial?: string; missing404?: boolean; beforePut?: () => void } = {}) {
  const store: { body?: string } = opts.initial === undefined ? {} : { body: opts.initial };
  s3Mock.on(GetObjectCommand, { Bucket: BUCKET, Key: DICOM_PSEUDONYM_SALT_KEY }).callsFake(async () => {
    if (store.body === undefined) throw opts.missing404 ? s3Error('NoSuchKey', 404) : s3Error('AccessDenied', 403);
    return { Body: s3Body(store.body) };
  });
  s3Mock
    .on(PutObjectCommand, { Bucket: BUCKET, Key: DICOM_PSEUDONYM_SALT_KEY })
    .callsFake(async (input: PutObjectCommandInput) => {
      opts.beforePut?.();
      if (input.IfNoneMatch === '*' && store.body !== undefined) throw s3Error('PreconditionFailed', 412);
      store.body = String(input.Body);
    });
  return store;
}

beforeEach(() => s3Mock.reset());

describe('the DICOM pseudonym salt object', () => {
  it('is created once, with If-None-Match, as 32 random bytes in hex; concurrent and later uses read that one', async () => {
    // Prepare
    const store = fakeStore({ missing404: true });
    const s3 = client();
    // Act: two scans of one container ask at once, a third later
    const [a, b] = await Promise.all([cachedPseudonymSalt(s3, BUCKET), cachedPseudonymSalt(s3, BUCKET)]);
    const c = await cachedPseudonymSalt(s3, BUCKET);
    // Assess
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect([b, c]).toEqual([a, a]);
    expect(store.body).toBe(`${a}\n`);
    expect(s3Mock).toHaveReceivedCommandTimes(PutObjectCommand, 1);
    expect(s3Mock).toHaveReceivedCommandWith(PutObjectCommand, {
      Bucket: BUCKET,
      Key: DICOM_PSEUDONYM_SALT_KEY,
      IfNoneMatch: '*',
    });
    // Read, create, read back: then never again in this container.
    expect(s3Mock).toHaveReceivedCommandTimes(GetObjectCommand, 2);
    // Another container (client) reads the stored salt and writes nothing.
    await expect(cachedPseudonymSalt(client(), BUCKET)).resolves.toBe(a);
    expect(s3Mock).toHaveReceivedCommandTimes(PutObjectCommand, 1);
  });

  it('adopts the salt of a concurrent creator whose write landed first (412 PreconditionFailed)', async () => {
    // Prepare: the other container's write lands between our read and our write
    const store = fakeStore({ beforePut: () => (store.body ??= `${OTHER_SALT}\n`) });
    // Act
    const salt = await readOrCreatePseudonymSalt(client(), BUCKET);
    // Assess
    expect(salt).toBe(OTHER_SALT);
    expect(store.body).toBe(`${OTHER_SALT}\n`);
  });

  it('reads 403 on a missing key (no s3:ListBucket) as "maybe missing" and creates it', async () => {
    const store = fakeStore();
    const salt = await readOrCreatePseudonymSalt(client(), BUCKET);
    expect(store.body).toBe(`${salt}\n`);
  });

  it('uses the given initial salt when it creates the object (local mode: an earlier salt file)', async () => {
    const store = fakeStore({ missing404: true });
    await expect(readOrCreatePseudonymSalt(client(), BUCKET, { create: () => OTHER_SALT })).resolves.toBe(OTHER_SALT);
    expect(store.body).toBe(`${OTHER_SALT}\n`);
  });

  it('refuses a malformed object with a clear ConfigError that does not quote it, and never overwrites it', async () => {
    // Prepare
    const secretish = 'not-a-salt-but-secret-0123456789';
    fakeStore({ initial: secretish });
    // Act
    const result = readOrCreatePseudonymSalt(client(), BUCKET);
    // Assess
    await expect(result).rejects.toThrow(ConfigError);
    await expect(result).rejects.toThrow(
      /salt object s3:\/\/artifacts\/secrets\/dicom-pseudonym-salt is malformed .*expected 64 lowercase hex characters/,
    );
    await expect(result).rejects.not.toThrow(secretish);
    expect(s3Mock).not.toHaveReceivedCommand(PutObjectCommand);
  });

  it('reports a real denial (read and write both 403) as the read error, with no salt made', async () => {
    s3Mock.on(GetObjectCommand).rejects(s3Error('AccessDenied', 403));
    s3Mock.on(PutObjectCommand).rejects(s3Error('AccessDenied', 403));
    await expect(readOrCreatePseudonymSalt(client(), BUCKET)).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('an existing object the role may not decrypt is not overwritten: 412, then the denial again', async () => {
    const getDenied = s3Error('AccessDenied', 403);
    s3Mock.on(GetObjectCommand).rejects(getDenied);
    s3Mock.on(PutObjectCommand).rejects(s3Error('PreconditionFailed', 412));
    await expect(readOrCreatePseudonymSalt(client(), BUCKET)).rejects.toBe(getDenied);
    expect(s3Mock).toHaveReceivedCommandTimes(PutObjectCommand, 1);
  });

  it('retries a write that met a concurrent one in flight (409 ConditionalRequestConflict)', async () => {
    const store = fakeStore({ missing404: true });
    s3Mock
      .on(PutObjectCommand)
      .rejectsOnce(s3Error('ConditionalRequestConflict', 409))
      .callsFake(async (input: PutObjectCommandInput) => {
        store.body = String(input.Body);
      });
    const salt = await readOrCreatePseudonymSalt(client(), BUCKET);
    expect(store.body).toBe(`${salt}\n`);
    expect(s3Mock).toHaveReceivedCommandTimes(PutObjectCommand, 2);
  });

  it('does not cache a failed read: the next scan tries again (a throttled first read)', async () => {
    const s3 = client();
    s3Mock
      .on(GetObjectCommand)
      .rejectsOnce(s3Error('SlowDown', 503))
      .resolves({ Body: s3Body(OTHER_SALT) });
    await expect(cachedPseudonymSalt(s3, BUCKET)).rejects.toMatchObject({ name: 'SlowDown' });
    await expect(cachedPseudonymSalt(s3, BUCKET)).resolves.toBe(OTHER_SALT);
    expect(s3Mock).not.toHaveReceivedCommand(PutObjectCommand);
  });
});
