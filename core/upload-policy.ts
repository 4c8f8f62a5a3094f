/**
 * What an upload link allows: exactly one key `uploads/{siteId}/{studyId}/{file}`, one content
 * type that matches the file's ending (core/formats.ts), at most the deployment's upload limit
 * (core/limits.ts), for a few minutes. S3 enforces each of these on the POST itself
 * (the presigned POST policy), so a link cannot be stretched to another key, site or size.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { z } from 'zod';
import { ACCEPTED_FORMAT_ROWS } from './formats';
import { SIDECAR_SUFFIX, uploadKey } from './keys';

/**
 * The content type an upload must declare, by file ending. Every accepted format's endings
 * (formats.ts) are here (a unit test checks it); `.meta.json` is the sidecar.
 */
export const UPLOAD_CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.mp4': 'video/mp4',
  '.m4v': 'video/x-m4v',
  '.mov': 'video/quicktime',
  '.qt': 'video/quicktime',
  '.avi': 'video/x-msvideo',
  '.mpeg': 'video/mpeg',
  '.mpg': 'video/mpeg',
  '.m1v': 'video/mpeg',
  '.m2v': 'video/mpeg',
  '.ts': 'video/mp2t',
  '.mts': 'video/mp2t',
  '.gif': 'image/gif',
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.bmp': 'image/bmp',
  '.dcm': 'application/dicom',
  [SIDECAR_SUFFIX]: 'application/json',
};

/** Endings an upload link is given for: the accepted formats' and the sidecar's. */
export const UPLOAD_ENDINGS: readonly string[] = [
  ...new Set([...ACCEPTED_FORMAT_ROWS.flatMap((f) => f.extensions), SIDECAR_SUFFIX]),
];

/** A sidecar is a small JSON document (schemas.ts SidecarMetadata). */
export const MAX_SIDECAR_BYTES = 64 * 1024;
/** How long an upload link is valid: long enough to start a large upload, short enough to be useless when leaked. */
export const UPLOAD_LINK_SECONDS = 300;

/**
 * One segment of a file path below the study: letters, digits, `.`, `_`, `-` and spaces,
 * not starting with a dot (so neither `.` nor `..`, nor hidden files). No `/` or `\`,
 * no `%` (an encoded slash cannot survive into the key), no control characters.
 */
const FILE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9 ._-]{0,127}$/;

/** A file name under the study, e.g. `clip.mp4` or `day1/clip.mp4` (at most 4 levels, 512 characters). */
export const UploadFileName = z
  .string()
  .min(1)
  .max(512)
  .refine(
    (name) => {
      const parts = name.split('/');
      return parts.length <= 4 && parts.every((p) => FILE_SEGMENT.test(p) && !p.endsWith(' ') && !p.endsWith('.'));
    },
    {
      message:
        'must be a file name (optionally below up to 3 folders, separated by "/") of letters, digits, spaces, ".", "_" or "-", each part starting with a letter, digit or "_"; no "..", "\\", "%" or empty parts',
    },
  )
  .refine((name) => uploadEnding(name) !== undefined, {
    message: `must end in one of ${UPLOAD_ENDINGS.join(' ')}`,
  });

/** The upload ending of a file name (the sidecar suffix wins over `.json`), lower-cased; undefined when none. */
export function uploadEnding(fileName: string): string | undefined {
  const lower = fileName.toLowerCase();
  if (lower.endsWith(SIDECAR_SUFFIX)) return SIDECAR_SUFFIX;
  const dot = lower.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const ending = lower.slice(dot);
  return UPLOAD_ENDINGS.includes(ending) ? ending : undefined;
}

export interface UploadLinkRequest {
  readonly siteId: string;
  readonly studyId: string;
  readonly fileName: string;
  /** The bucket the link is for. */
  readonly bucket: string;
  /** The deployment's upload limit for clips (MAX_UPLOAD_BYTES). */
  readonly maxUploadBytes: number;
  readonly expiresSeconds?: number;
  readonly now?: Date;
}

export interface UploadLink {
  /** POST a multipart form here: every field of `fields`, then `file` last. */
  readonly url: string;
  readonly fields: Record<string, string>;
  readonly key: string;
  readonly contentType: string;
  readonly maxBytes: number;
  readonly expiresAt: string;
}

/** A presigned POST for exactly `uploads/{siteId}/{studyId}/{fileName}`; the name must already be valid. */
export async function createUploadLink(s3: S3Client, req: UploadLinkRequest): Promise<UploadLink> {
  const ending = uploadEnding(req.fileName);
  const contentType = ending ? UPLOAD_CONTENT_TYPES[ending] : undefined;
  if (!ending || !contentType) throw new Error(`No upload content type for ${req.fileName.slice(-16)}.`);
  const key = uploadKey(req.siteId, req.studyId, req.fileName);
  const maxBytes = ending === SIDECAR_SUFFIX ? MAX_SIDECAR_BYTES : req.maxUploadBytes;
  const expires = req.expiresSeconds ?? UPLOAD_LINK_SECONDS;
  const post = await createPresignedPost(s3, {
    Bucket: req.bucket,
    // createPresignedPost adds the exact-key condition {key: Key} to the policy.
    Key: key,
    Conditions: [
      ['content-length-range', 1, maxBytes],
      ['eq', '$Content-Type', contentType],
    ],
    Fields: { 'Content-Type': contentType },
    Expires: expires,
  });
  const now = req.now ?? new Date();
  return {
    url: post.url,
    fields: post.fields,
    key,
    contentType,
    maxBytes,
    expiresAt: new Date(now.getTime() + expires * 1000).toISOString(),
  };
}
