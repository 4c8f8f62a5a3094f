/**
 * Property-based fuzzing of the validate step (lambdas/validate-upload/validate.ts)
 * over fake S3 and DynamoDB clients: any key, any bytes (random, magic-prefixed, or
 * mutated real clip headers), any sidecar, and malformed events. Each ends in a
 * valid ValidateOutput or, for a malformed event only, a PayloadError; a refusal
 * carries a stable code and a message that never repeats the key, file name or
 * sidecar content (the marker stands for a patient's name).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client, type GetObjectCommandInput } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { closeSync, openSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { PayloadError } from '../../../core/errors';
import { loadManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { ValidateOutput } from '../../../core/schemas';
import { validateUpload, type ValidateDeps } from '../../../lambdas/validate-upload/validate';
import { POCUS } from '../../helpers/pocus';
import { fuzzParams, MARKER, mediaBytes, mutated, objectKey, withinBudgetAsync } from '../helpers/fuzz';
import { objectCreatedEvent, s3Body, s3Error } from '../helpers/fakes';

const s3Mock = mockClient(S3Client);
const ddbMock = mockClient(DynamoDBDocumentClient);
const manifest = loadManifest(DEFAULT_MODELS_DIR).manifest;

const deps: ValidateDeps = {
  s3: new S3Client({ region: 'us-east-1' }),
  doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
  table: 'results',
  artifactsBucket: 'sonomark-artifacts',
  manifest,
  maxUploadBytes: 1024 * 1024,
  now: () => new Date('2025-01-02T03:04:05.000Z'),
};

function head(file: string, bytes = 16 * 1024): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}
const REAL_HEADS = [
  'videos/convex/Reg-NormalLungs.mp4',
  'videos/convex/Pneu-Atlas-pneumonia.gif',
  'videos/convex/Pneu_northumbria_0409_set1_vid2.avi',
].map((f) => head(path.join(POCUS, f)));

const PROBLEM_CODES =
  /^(INVALID_KEY|OBJECT_MISSING|TOO_LARGE|EMPTY_FILE|UNSUPPORTED_FORMAT|INVALID_SIDECAR|NO_FRAMES|NO_VIDEO_STREAM|TOO_LARGE_PICTURE|TOO_LONG|TOO_MANY_FRAMES|[A-Z_]+)$/;

/** A sidecar: absent, any text, or a JSON object whose keys and values may carry the marker. */
const sidecar = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 100 }),
  fc
    .dictionary(
      fc.constantFrom('probe', 'zone', 'frameRate', 'bodyRegion', 'patientName', MARKER),
      fc.oneof(fc.constantFrom<unknown>('convex', 'R2', MARKER, 30, -1, null), fc.jsonValue({ maxDepth: 1 })),
      { maxKeys: 4 },
    )
    .map((o) => JSON.stringify(o)),
);
const bytes = fc.oneof(
  mediaBytes(2048),
  fc.constantFrom(...REAL_HEADS.keys()).chain((i) => mutated(REAL_HEADS[i]!)),
);
const event = fc.oneof(
  {
    weight: 8,
    arbitrary: objectKey().map((key) => ({ event: objectCreatedEvent(key, { versionId: 'v1', etag: 'e' }) })),
  },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: objectKey().map((key) => ({
      event: { ...objectCreatedEvent(key), detail: { bucket: {}, object: { key } } },
    })),
  },
);

beforeEach(() => {
  s3Mock.reset();
  ddbMock.reset();
  ddbMock.on(PutCommand).resolves({});
});

describe('validateUpload under fuzzing', () => {
  it('ends in a valid output or, for a malformed event, a PayloadError; refusals never echo identifiers', async () => {
    await fc.assert(
      fc.asyncProperty(event, bytes, sidecar, async (input, body, meta) => {
        s3Mock.reset();
        s3Mock.on(GetObjectCommand).callsFake(async (req: GetObjectCommandInput) => {
          if (
            req.Key?.endsWith('.meta.json') &&
            !(input as { event?: { detail?: { object?: { key?: string } } } }).event?.detail?.object?.key?.endsWith(
              '.meta.json',
            )
          ) {
            if (meta === undefined) throw s3Error('NoSuchKey', 404);
            return { Body: s3Body(meta), ContentLength: Buffer.byteLength(meta) };
          }
          return { Body: s3Body(Buffer.from(body)), ContentLength: body.length };
        });
        let out: unknown;
        try {
          out = await withinBudgetAsync(() => validateUpload(input, deps), 'validateUpload');
        } catch (err) {
          expect(err).toBeInstanceOf(PayloadError);
          expect((err as Error).message).toMatch(/^Invalid Validate input: /);
          expect((err as Error).message).not.toContain(MARKER);
          return;
        }
        const parsed = ValidateOutput.parse(out);
        if (parsed.action === 'reject') {
          expect(parsed.problem.code).toMatch(PROBLEM_CODES);
          expect(parsed.problem.message.length).toBeGreaterThan(15);
          expect(parsed.problem.message).not.toContain(MARKER);
        }
        if (parsed.action === 'analyze') {
          expect(parsed.scan.key).toBe(
            (input as { event: { detail: { object: { key: string } } } }).event.detail.object.key,
          );
          if (parsed.scan.sidecar) expect(JSON.stringify(parsed.scan.sidecar)).not.toContain(MARKER);
        }
      }),
      {
        ...fuzzParams(300),
        // Known shapes first: an unknown sidecar key, and a bad sidecar value, both carrying the marker.
        examples: [
          [
            { event: objectCreatedEvent(`uploads/s/st/${MARKER}.mp4`, { versionId: 'v1' }) },
            REAL_HEADS[0]!,
            JSON.stringify({ [MARKER]: 1 }),
          ],
          [
            { event: objectCreatedEvent(`uploads/s/st/${MARKER}.mp4`, { versionId: 'v1' }) },
            REAL_HEADS[0]!,
            JSON.stringify({ zone: MARKER + ' x', probe: MARKER }),
          ],
        ],
      },
    );
  });
});
