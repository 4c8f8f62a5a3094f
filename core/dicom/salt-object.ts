/**
 * Where the DICOM pseudonym salt (pseudonym.ts) lives: one object in the artifacts bucket
 * (DICOM_PSEUDONYM_SALT_KEY), 32 random bytes as 64 hex characters, encrypted by the bucket's
 * default KMS key. The extractor creates it on first use and then reads it once per process.
 *
 * Why an S3 object made at run time, not a secret store or a deploy-time custom resource:
 * - The Lambdas and the GPU job run in isolated subnets whose only route to AWS services are
 *   the VPC endpoints; S3's gateway endpoint is free and already there, while Secrets
 *   Manager or SSM would need an interface endpoint (about $7.30 per AZ per month).
 * - A custom resource would add a provider Lambda, its role and log group to every stack
 *   just to write 32 bytes once; and local mode could not share its code path.
 * - Created here, the salt never appears in a template, an environment variable or a log,
 *   and local mode runs the same code against its own artifacts bucket (s3rver, in the
 *   data dir), so it keeps one salt per data dir.
 *
 * Concurrent first uses (two GPU jobs starting together) agree on one salt: the object is
 * written with `If-None-Match: *`, S3 refuses the second writer with 412 Precondition
 * Failed, and that writer adopts the stored salt. After any write the object is read back
 * and what is stored wins, which also covers a store that ignores the condition (s3rver
 * does; local mode's data-dir lock keeps a second process off that dir).
 *
 * The salt is never replaced: pseudonyms made with another salt would no longer link to
 * earlier scans. A malformed object is an error saying so, never overwritten.
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../errors';
import { DICOM_PSEUDONYM_SALT_KEY } from '../keys';
import { hasHttpStatus, isMissingObject, isS3ErrorNamed } from '../s3-errors';

/** 256 bits of randomness, as 64 lowercase hex characters. */
export const SALT_OBJECT_BYTES = 32;
const SALT_TEXT = /^[0-9a-f]{64}$/;

/** A new random salt in the object's format. */
export function newSaltText(): string {
  return randomBytes(SALT_OBJECT_BYTES).toString('hex');
}

/** The salt an object holds (64 hex characters, an optional trailing newline); a ConfigError otherwise. */
export function parseSaltObject(text: string, where: string): string {
  const salt = text.trim();
  if (!SALT_TEXT.test(salt)) {
    // Says what is wrong and what is accepted, never what the object holds.
    throw new ConfigError(
      `The DICOM pseudonym salt object ${where} is malformed (${text.length} characters): expected 64 lowercase hex characters (a 32-byte random salt). It is never replaced automatically, since pseudonyms made with another salt would not link to earlier scans: restore its previous version, or delete it to start a new salt.`,
    );
  }
  return salt;
}

export interface SaltObjectOptions {
  /**
   * The salt to store when none exists yet. @default newSaltText
   * (local mode passes a data dir's earlier salt file, so its pseudonyms stay the same).
   */
  readonly create?: () => string;
}

const preconditionFailed = (err: unknown) => isS3ErrorNamed(err, 'PreconditionFailed') || hasHttpStatus(err, 412);
/** 409: another conditional write (or a delete) to the key was in flight; S3 asks to retry. */
const conflict = (err: unknown) => isS3ErrorNamed(err, 'ConditionalRequestConflict') || hasHttpStatus(err, 409);

/**
 * Reads the salt object of `bucket`, creating it first when there is none. Errors that are
 * not about the object's absence (throttling, KMS, a malformed object) are thrown as they are,
 * so the caller's transient classification still sees them.
 */
export async function readOrCreatePseudonymSalt(
  s3: S3Client,
  bucket: string,
  options: SaltObjectOptions = {},
): Promise<string> {
  const where = `s3://${bucket}/${DICOM_PSEUDONYM_SALT_KEY}`;
  const read = async () => {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: DICOM_PSEUDONYM_SALT_KEY }));
    return parseSaltObject((await out.Body?.transformToString('utf8')) ?? '', where);
  };
  try {
    return await read();
  } catch (err) {
    if (!isMissingObject(err)) throw err;
    // A 403 may be a real denial of an existing object: the conditional write below cannot
    // overwrite it (412), and the read after it reports the denial again.
    const missing = err;
    const salt = parseSaltObject((options.create ?? newSaltText)(), 'to be created');
    for (let attempt = 1; ; attempt++) {
      try {
        await s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: DICOM_PSEUDONYM_SALT_KEY,
            Body: `${salt}\n`,
            ContentType: 'text/plain',
            // Create only: a concurrent first use that wrote first keeps its salt.
            IfNoneMatch: '*',
            // Encryption: the bucket's default KMS key.
          }),
        );
        break;
      } catch (putErr) {
        if (preconditionFailed(putErr)) break;
        if (conflict(putErr) && attempt < 3) continue;
        // Denied both ways: the original error says more (it names the read).
        throw hasHttpStatus(putErr, 403) && hasHttpStatus(missing, 403) ? missing : putErr;
      }
    }
    // Whatever is stored now is the salt: ours, or the one a concurrent first use wrote.
    return read();
  }
}

// Per S3 client: the container has one (its region's endpoint); local mode has one per run
// and principal, so two data dirs opened in one process never share a salt.
const cache = new WeakMap<S3Client, Map<string, Promise<string>>>();

/**
 * The salt of `bucket` for this client's process: read (or created, with `options`) on first
 * use, then cached. A failed read is not cached, so the next scan tries again.
 */
export function cachedPseudonymSalt(s3: S3Client, bucket: string, options: SaltObjectOptions = {}): Promise<string> {
  let byBucket = cache.get(s3);
  if (!byBucket) cache.set(s3, (byBucket = new Map()));
  const salts = byBucket;
  let salt = salts.get(bucket);
  if (!salt) {
    const pending = readOrCreatePseudonymSalt(s3, bucket, options);
    pending.catch(() => {
      if (salts.get(bucket) === pending) salts.delete(bucket);
    });
    salts.set(bucket, pending);
    salt = pending;
  }
  return salt;
}
