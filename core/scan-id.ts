/**
 * Scan ids are derived from content, so a re-delivered event or a re-upload of
 * the same bytes to the same study maps to one scan (DESIGN.md "Contracts").
 *
 * The site and study are part of the id on purpose: two sites uploading the same
 * public teaching clip get two scans, each billed and visible to its own site,
 * and no site can learn that another holds the same bytes.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

const DOMAIN = 'sonomark/scan/v1';

export function scanIdFromContent(siteId: string, studyId: string, contentSha256: string): string {
  return createHash('sha256').update(`${DOMAIN}\0${siteId}\0${studyId}\0${contentSha256}`).digest('hex').slice(0, 32);
}

/**
 * Fallback id for an object whose bytes could not be read (deleted before
 * validation, access denied): S3 key + versionId + ETag, as DESIGN.md allows.
 */
export function scanIdFromObjectIdentity(bucket: string, key: string, versionId?: string, etag?: string): string {
  return createHash('sha256')
    .update(`${DOMAIN}/object\0${bucket}\0${key}\0${versionId ?? ''}\0${etag ?? ''}`)
    .digest('hex')
    .slice(0, 32);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface HashedStream {
  readonly sha256: string;
  readonly size: number;
  /** The first bytes of the stream, for format sniffing. */
  readonly head: Buffer;
}

/** Hashes a stream without holding it in memory, keeping its first `headBytes` for sniffing. */
export async function hashStream(
  stream: Readable | AsyncIterable<Uint8Array>,
  headBytes = 4096,
): Promise<HashedStream> {
  const hash = createHash('sha256');
  const headChunks: Buffer[] = [];
  let headLength = 0;
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    const buf = Buffer.from(chunk);
    hash.update(buf);
    size += buf.length;
    if (headLength < headBytes) {
      const take = buf.subarray(0, headBytes - headLength);
      headChunks.push(take);
      headLength += take.length;
    }
  }
  return { sha256: hash.digest('hex'), size, head: Buffer.concat(headChunks) };
}
