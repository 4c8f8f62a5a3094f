/**
 * Validate's RangeReader (core/byte-range.ts): S3 ranged GetObject on the uploaded object
 * (the same S3 client in the cloud and in local mode, where s3rver answers), pinned to
 * the version Validate hashed when the bucket gives one. A body is read up to the bytes
 * asked for and no further, whatever the server sends.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { RangeReader } from '../../core/byte-range';

export function s3RangeReader(s3: S3Client, bucket: string, key: string, versionId: string | undefined): RangeReader {
  return {
    async read(offset, length) {
      if (length <= 0 || offset < 0) return new Uint8Array(0);
      let out;
      try {
        out = await s3.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            Range: `bytes=${offset}-${offset + length - 1}`,
            ...(versionId ? { VersionId: versionId } : {}),
          }),
        );
      } catch (err) {
        // Past the end of the object: no bytes there.
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) {
          return new Uint8Array(0);
        }
        throw err;
      }
      const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
      if (!body) return new Uint8Array(0);
      const chunks: Buffer[] = [];
      let got = 0;
      for await (const chunk of body) {
        const take = Buffer.from(chunk).subarray(0, length - got);
        chunks.push(take);
        got += take.length;
        if (got >= length) break;
      }
      body.destroy?.();
      return Buffer.concat(chunks, got);
    },
  };
}
