/** Shared fakes for the handler unit tests: S3 bodies, events, a features document, a ScanRef. */
import { Readable } from 'node:stream';
import { BIOMARKERS } from '../../../core/biomarkers';
import type { FeaturesDocument, ModelRef, S3ObjectCreatedEvent, ScanRef } from '../../../core/schemas';

/** A GetObject Body: async-iterable like the SDK's stream, plus transformToString. */
export function s3Body(bytes: Buffer | string): never {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8');
  const stream = Readable.from(buf.length > 0 ? [buf] : []);
  return Object.assign(stream, {
    transformToString: async (enc?: BufferEncoding) => buf.toString(enc ?? 'utf8'),
    transformToByteArray: async () => new Uint8Array(buf),
  }) as never;
}

export function s3Error(name: string, status: number): Error {
  return Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
}

export function objectCreatedEvent(
  key: string,
  opts: { bucket?: string; versionId?: string; etag?: string; size?: number } = {},
): S3ObjectCreatedEvent {
  return {
    'detail-type': 'Object Created',
    source: 'aws.s3',
    detail: {
      bucket: { name: opts.bucket ?? 'sonomark-uploads' },
      object: {
        key,
        ...(opts.size !== undefined ? { size: opts.size } : {}),
        ...(opts.etag !== undefined ? { etag: opts.etag } : {}),
        ...(opts.versionId !== undefined ? { 'version-id': opts.versionId } : {}),
      },
    },
  };
}

export const EXTRACTOR_REF: ModelRef = { name: 'sonomark-fixture-extractor', version: '0.0.1', sha256: 'a'.repeat(64) };

export function scanRef(overrides: Partial<ScanRef> = {}): ScanRef {
  return {
    scanId: '0123456789abcdef0123456789abcdef',
    siteId: 'site-a',
    studyId: 'study-1',
    bucket: 'sonomark-uploads',
    key: 'uploads/site-a/study-1/clip.mp4',
    versionId: 'v1',
    sha256: 'b'.repeat(64),
    size: 1234,
    container: 'mp4',
    extractor: EXTRACTOR_REF,
    featuresBucket: 'sonomark-artifacts',
    featuresKey: 'features/site-a/sonomark-fixture-extractor-0.0.1/0123456789abcdef0123456789abcdef.json',
    receivedAt: '2025-01-02T03:04:05.000Z',
    ...overrides,
  };
}

export function featuresDocument(scanId: string, extractor: ModelRef, embeddingDim = 32): FeaturesDocument {
  const stats = { mean: 0.4, max: 0.9, p90: 0.8, fractionAbove: 0.25 };
  return {
    schemaVersion: 1,
    modality: 'ultrasound',
    scanId,
    extractor,
    sampling: {
      strategy: 'uniform',
      maxFrames: 64,
      decodedFrames: 4,
      frameIndices: [0, 1, 2, 3],
      width: 128,
      height: 128,
      colorspace: 'gray',
    },
    biomarkers: Object.fromEntries(BIOMARKERS.map((b) => [b, stats])) as FeaturesDocument['biomarkers'],
    embedding: {
      dim: embeddingDim,
      mean: Array.from({ length: embeddingDim }, (_, i) => Math.sin(i) / 2),
      max: Array.from({ length: embeddingDim }, (_, i) => Math.cos(i) / 2 + 0.5),
    },
    frames: Object.fromEntries(BIOMARKERS.map((b) => [b, [0.1, 0.6, 0.9, 0.2]])) as FeaturesDocument['frames'],
    runtime: { executionProvider: 'cpu', decodeMs: 10, inferMs: 5 },
    createdAt: '2025-01-02T03:05:00.000Z',
  };
}
