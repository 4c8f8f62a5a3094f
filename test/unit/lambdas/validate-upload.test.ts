import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { featuresKey, scanPk, SCAN_SK } from '../../../core/keys';
import { extractorRef, loadManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR, PACKAGE_ROOT } from '../../../core/paths';
import { scanIdFromContent, scanIdFromObjectIdentity, sha256Hex } from '../../../core/scan-id';
import { ValidateOutput } from '../../../core/schemas';
import { validateUpload, type ValidateDeps } from '../../../lambdas/validate-upload/validate';
import { objectCreatedEvent, s3Body, s3Error } from '../helpers/fakes';
import { buildDicom } from '../../helpers/dicom';
import { encodeLavfi } from '../../helpers/clips';
import { tempDir } from '../../helpers/temp';

const s3Mock = mockClient(S3Client);
const ddbMock = mockClient(DynamoDBDocumentClient);

const TABLE = 'results';
const KEY = 'uploads/site-a/study-1/day1/clip.mp4';
const MP4 = readFileSync(
  path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus', 'videos', 'convex', 'Cov-Atlas-suspectedCovid.mp4'),
);
const NOW = new Date('2025-01-02T03:04:05.000Z');
const manifest = loadManifest(DEFAULT_MODELS_DIR).manifest;

function deps(overrides: Partial<ValidateDeps> = {}): ValidateDeps {
  return {
    s3: new S3Client({ region: 'us-east-1' }),
    doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
    table: TABLE,
    artifactsBucket: 'sonomark-artifacts',
    manifest,
    maxUploadBytes: 2 * 1024 ** 3,
    now: () => NOW,
    ...overrides,
  };
}

/** The object, answering ranged reads (Range: bytes=a-b) as S3 does. */
function givenObject(bytes: Buffer, key = KEY): void {
  s3Mock.on(GetObjectCommand, { Key: key }).callsFake(async (input: { Range?: string }) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? '');
    const body = m ? bytes.subarray(Number(m[1]), Number(m[2]) + 1) : bytes;
    return { Body: s3Body(body), ContentLength: body.length };
  });
}
function givenNoSidecar(key = KEY): void {
  s3Mock.on(GetObjectCommand, { Key: `${key}.meta.json` }).rejects(s3Error('NoSuchKey', 404));
}
function givenSidecar(json: string, key = KEY): void {
  s3Mock
    .on(GetObjectCommand, { Key: `${key}.meta.json` })
    .callsFake(async () => ({ Body: s3Body(json), ContentLength: json.length }));
}
/** The re-claim's condition: FAILED, or RUNNING under a lapsed lease (core/results-store.ts claimScan). */
const RECLAIM =
  '#status = :failed OR (#status = :running AND (#lease.#expiresAt < :now OR ' +
  '(attribute_not_exists(#lease) AND #updatedAt < :legacyCutoff)))';
const conditionFailed = (): Error =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

async function run(key = KEY, d = deps()): Promise<ValidateOutput> {
  const out = await validateUpload({ event: objectCreatedEvent(key, { versionId: 'v1', etag: 'e1' }) }, d);
  return ValidateOutput.parse(out);
}

beforeEach(() => {
  s3Mock.reset();
  ddbMock.reset();
  ddbMock.on(PutCommand).resolves({});
  // Validate reads the sidecar before it claims; an object a test does not give is absent.
  s3Mock.on(GetObjectCommand).rejects(s3Error('NoSuchKey', 404));
});

describe('validateUpload', () => {
  it('accepts a real MP4: content-derived scan id, claim, ScanRef for the extractor', async () => {
    // Prepare
    givenObject(MP4);
    givenNoSidecar();
    const scanId = scanIdFromContent('site-a', 'study-1', sha256Hex(MP4));
    // Act
    const out = await run();
    // Assess
    const ext = extractorRef(manifest.extractors.ultrasound);
    expect(out).toEqual({
      action: 'analyze',
      scan: {
        scanId,
        siteId: 'site-a',
        studyId: 'study-1',
        bucket: 'sonomark-uploads',
        key: KEY,
        versionId: 'v1',
        sha256: sha256Hex(MP4),
        size: MP4.length,
        container: 'mp4',
        extractor: ext,
        featuresBucket: 'sonomark-artifacts',
        featuresKey: featuresKey('site-a', ext, scanId),
        receivedAt: NOW.toISOString(),
      },
    });
    expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, {
      Bucket: 'sonomark-uploads',
      Key: KEY,
      VersionId: 'v1',
    });
    expect(ddbMock).toHaveReceivedCommandWith(PutCommand, {
      TableName: TABLE,
      ConditionExpression: 'attribute_not_exists(pk)',
      Item: expect.objectContaining({
        pk: scanPk('site-a', scanId),
        sk: SCAN_SK,
        status: 'RUNNING',
        sitePk: 'SITE#site-a',
        container: 'mp4',
      }),
    });
  });

  it('includes a valid sidecar', async () => {
    givenObject(MP4);
    givenSidecar(JSON.stringify({ probe: 'convex', zone: 'R2' }));
    const out = await run();
    expect(out.action === 'analyze' && out.scan.sidecar).toEqual({ probe: 'convex', zone: 'R2' });
  });

  it('ignores sidecar objects without reading them', async () => {
    const out = await run(`${KEY}.meta.json`);
    expect(out.action).toBe('ignore');
    expect(s3Mock).not.toHaveReceivedCommand(GetObjectCommand);
  });

  it.each(['RUNNING', 'COMPLETED'] as const)('skips when the scan is already %s', async (status) => {
    // Prepare
    givenObject(MP4);
    ddbMock.on(PutCommand).rejects(conditionFailed());
    ddbMock
      .on(GetCommand)
      .resolves({ Item: { pk: 'x', sk: SCAN_SK, scanId: 'x', status, updatedAt: NOW.toISOString() } });
    // Act
    const out = await run();
    // Assess
    expect(out).toMatchObject({
      action: 'skip',
      existingStatus: status,
      scanId: scanIdFromContent('site-a', 'study-1', sha256Hex(MP4)),
    });
    expect(ddbMock).toHaveReceivedCommandTimes(PutCommand, 1);
  });

  it('re-claims a FAILED scan with a conditional write and analyses it again', async () => {
    // Prepare
    givenObject(MP4);
    givenNoSidecar();
    ddbMock.on(PutCommand, { ConditionExpression: 'attribute_not_exists(pk)' }).rejects(conditionFailed());
    ddbMock.on(PutCommand, { ConditionExpression: RECLAIM }).resolves({});
    ddbMock.on(GetCommand).resolves({
      Item: { pk: 'x', sk: SCAN_SK, scanId: 'x', status: 'FAILED', attempts: 1, updatedAt: NOW.toISOString() },
    });
    // Act
    const out = await run();
    // Assess
    expect(out.action).toBe('analyze');
    expect(ddbMock).toHaveReceivedCommandWith(PutCommand, {
      ConditionExpression: RECLAIM,
      ExpressionAttributeValues: expect.objectContaining({ ':failed': 'FAILED', ':running': 'RUNNING' }),
      Item: expect.objectContaining({ status: 'RUNNING', attempts: 2 }),
    });
  });

  it('with the execution id: writes the execution pointer first, then a claim leased to it for leaseSeconds', async () => {
    // Prepare
    givenObject(MP4);
    givenNoSidecar();
    const execution = 'arn:aws:states:us-east-1:123456789012:execution:sm:scan-obj-1';
    const scanId = scanIdFromContent('site-a', 'study-1', sha256Hex(MP4));
    // Act
    const out = await validateUpload(
      { event: objectCreatedEvent(KEY, { versionId: 'v1', etag: 'e1' }), execution },
      deps({ leaseSeconds: 600 }),
    );
    // Assess
    const puts = ddbMock.commandCalls(PutCommand).map((c) => c.args[0].input.Item as Record<string, any>);
    expect(puts.map((i) => i.pk)).toEqual([`EXECUTION#${execution}`, scanPk('site-a', scanId)]);
    expect(puts[0]).toMatchObject({ executionId: execution, siteId: 'site-a', scanId });
    expect(puts[1]!.lease).toEqual({ executionId: execution, expiresAt: '2025-01-02T03:14:05.000Z' });
    // The lease stays in the table: the workflow's ScanRef does not carry it.
    expect(out.action === 'analyze' && 'lease' in out.scan).toBe(false);
  });

  it('re-claims a RUNNING scan whose lease has expired (its execution died), and skips one whose lease holds', async () => {
    // Prepare
    givenObject(MP4);
    givenNoSidecar();
    const running = (expiresAt: string) => ({
      Item: {
        pk: 'x',
        sk: SCAN_SK,
        scanId: 'x',
        status: 'RUNNING',
        attempts: 1,
        updatedAt: '2025-01-02T00:00:00.000Z',
        lease: { executionId: 'arn:old', expiresAt },
      },
    });
    ddbMock.on(PutCommand, { ConditionExpression: 'attribute_not_exists(pk)' }).rejects(conditionFailed());
    ddbMock.on(PutCommand, { ConditionExpression: RECLAIM }).resolves({});
    ddbMock.on(GetCommand).resolves(running('2025-01-02T03:00:00.000Z'));
    // Act
    const expired = await run();
    // Assess
    expect(expired.action).toBe('analyze');
    expect(ddbMock).toHaveReceivedCommandWith(PutCommand, {
      ConditionExpression: RECLAIM,
      ExpressionAttributeValues: expect.objectContaining({ ':now': NOW.toISOString() }),
    });

    // Prepare: a lease that runs until after NOW.
    ddbMock.on(GetCommand).resolves(running('2025-01-02T04:00:00.000Z'));
    // Act
    const live = await run();
    // Assess
    expect(live).toMatchObject({ action: 'skip', existingStatus: 'RUNNING' });
  });

  it('skips when another execution wins the re-claim race', async () => {
    givenObject(MP4);
    ddbMock.on(PutCommand).rejects(conditionFailed());
    ddbMock
      .on(GetCommand)
      .resolvesOnce({ Item: { pk: 'x', sk: SCAN_SK, scanId: 'x', status: 'FAILED', updatedAt: '' } })
      .resolves({ Item: { pk: 'x', sk: SCAN_SK, scanId: 'x', status: 'RUNNING', updatedAt: '' } });
    const out = await run();
    expect(out).toMatchObject({ action: 'skip', existingStatus: 'RUNNING' });
  });

  describe('rejects, after claiming, with a specific message', () => {
    it('EMPTY_FILE', async () => {
      givenObject(Buffer.alloc(0));
      const out = await run();
      expect(out).toMatchObject({
        action: 'reject',
        problem: { code: 'EMPTY_FILE', message: expect.stringMatching(/empty \(0 bytes\)/) },
      });
      expect(ddbMock).toHaveReceivedCommandWith(PutCommand, {
        Item: expect.objectContaining({ status: 'RUNNING', size: 0 }),
      });
    });

    it('TOO_LARGE, without reading the body, with an id from the object identity', async () => {
      // Prepare
      const destroy = jest.fn();
      s3Mock.on(GetObjectCommand, { Key: KEY }).resolves({ Body: { destroy } as never, ContentLength: 3 * 1024 ** 3 });
      // Act
      const out = await run();
      // Assess
      expect(out).toEqual({
        action: 'reject',
        scanId: scanIdFromObjectIdentity('sonomark-uploads', KEY, 'v1', 'e1'),
        problem: { code: 'TOO_LARGE', message: expect.stringMatching(/3 GiB, over the 2 GiB limit/) },
      });
      expect(destroy).toHaveBeenCalled();
    });

    it('TOO_LARGE with a configured limit', async () => {
      givenObject(MP4);
      const out = await run(KEY, deps({ maxUploadBytes: 1000 }));
      expect(out).toMatchObject({
        action: 'reject',
        problem: { code: 'TOO_LARGE', message: expect.stringMatching(/over the 1000 bytes limit/) },
      });
    });

    it('TOO_LONG for an MP4 whose index (moov) is at the end, read with ranged GetObjects of the hashed version', async () => {
      // Prepare: 5010 frames in 501 s, written without +faststart (about 1 MB, moov last).
      const clip = readFileSync(
        encodeLavfi(path.join(tempDir(), 'late.mp4'), 'testsrc=size=32x32:rate=10:duration=501', ['-c:v', 'mpeg4']),
      );
      expect(clip.lastIndexOf(Buffer.from('moov'))).toBeGreaterThan(256 * 1024);
      givenObject(clip);
      givenNoSidecar();
      // Act
      const out = await run();
      // Assess
      expect(out).toMatchObject({
        action: 'reject',
        problem: { code: 'TOO_LONG', message: expect.stringMatching(/5010 frames, over the 5000-frame limit/) },
      });
      expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, {
        Key: KEY,
        VersionId: 'v1',
        Range: expect.stringMatching(/^bytes=\d+-\d+$/),
      });
    });

    it('TOO_LONG for an MKV over the duration limit, and TOO_SMALL for a 1×1 one (Matroska header)', async () => {
      const dir = tempDir();
      givenObject(
        readFileSync(
          encodeLavfi(path.join(dir, 'long.mkv'), 'testsrc=size=64x64:rate=1:duration=601', ['-c:v', 'mpeg4']),
        ),
      );
      givenNoSidecar();
      expect(await run()).toMatchObject({
        action: 'reject',
        problem: { code: 'TOO_LONG', message: expect.stringMatching(/lasts 601 s, over the 600 s limit/) },
      });
      givenObject(
        readFileSync(encodeLavfi(path.join(dir, 'tiny.mkv'), 'testsrc=size=1x1:rate=10:duration=1', ['-c:v', 'ffv1'])),
      );
      expect(await run()).toMatchObject({ action: 'reject', problem: { code: 'TOO_SMALL' } });
    });

    it('accepts an MP4 whose index is too big to read, saying the extractor checks the limits (no key in the reason)', async () => {
      // Prepare: ftyp, mdat, and a moov one byte over the 8 MiB Validate reads.
      const box = (type: string, payload: Buffer) => {
        const h = Buffer.alloc(8);
        h.writeUInt32BE(8 + payload.length);
        h.write(type, 4, 'latin1');
        return Buffer.concat([h, payload]);
      };
      givenObject(
        Buffer.concat([
          box('ftyp', Buffer.from('isom\0\0\0\0isom')),
          box('mdat', Buffer.alloc(300 * 1024)),
          box('moov', Buffer.alloc(8 * 1024 ** 2 - 7)),
        ]),
      );
      givenNoSidecar();
      const notes: string[] = [];
      // Act
      const out = await run(KEY, deps({ onLimitsUnchecked: (_id, reason) => notes.push(reason) }));
      // Assess
      expect(out.action).toBe('analyze');
      expect(notes).toEqual([expect.stringMatching(/over the 8 MiB Validate reads; the extractor checks the limits/)]);
      expect(notes[0]).not.toContain('clip');
    });

    it('UNSUPPORTED_FORMAT for unknown bytes, whatever the extension says', async () => {
      givenObject(Buffer.from('%PDF-1.7 this is not a clip'));
      const out = await run();
      expect(out).toMatchObject({
        action: 'reject',
        problem: { code: 'UNSUPPORTED_FORMAT', message: expect.stringMatching(/Accepted: MP4/) },
      });
      expect(ddbMock).toHaveReceivedCommandWith(PutCommand, {
        Item: expect.not.objectContaining({ container: expect.anything() }),
      });
    });

    it('DICOM_NO_PIXEL_DATA for a DICOM file without an image, before any GPU job', async () => {
      givenObject(buildDicom({ rows: 16, columns: 16 }));
      const out = await run();
      expect(out).toMatchObject({
        action: 'reject',
        problem: {
          code: 'DICOM_NO_PIXEL_DATA',
          message: expect.stringMatching(/no pixel data.*Accepted: DICOM Part 10/),
        },
      });
    });

    it('DICOM_UNSUPPORTED_TRANSFER_SYNTAX naming the encoding and the accepted ones', async () => {
      const mpeg2 = buildDicom({
        rows: 16,
        columns: 16,
        transferSyntax: '1.2.840.10008.1.2.4.100',
        frames: [new Uint8Array(8)],
      });
      givenObject(mpeg2);
      const out = await run();
      expect(out).toMatchObject({
        action: 'reject',
        problem: {
          code: 'DICOM_UNSUPPORTED_TRANSFER_SYNTAX',
          message: expect.stringMatching(
            /MPEG-2 Main Profile \(1\.2\.840\.10008\.1\.2\.4\.100\).*Accepted encodings: .*RLE Lossless/,
          ),
        },
      });
    });

    it('accepts a decodable DICOM as container "dicom"', async () => {
      // 64×64: above the smallest picture Validate accepts (core/limits.ts).
      givenObject(buildDicom({ rows: 64, columns: 64, frames: [new Uint8Array(64 * 64)] }));
      givenNoSidecar();
      const out = await run();
      expect(out).toMatchObject({ action: 'analyze', scan: { container: 'dicom' } });
    });

    it('UNSUPPORTED_FORMAT for a text file named .dcm (the extension is never trusted)', async () => {
      givenObject(Buffer.from('This is a text file, not DICOM.\n'));
      const out = await run();
      expect(out).toMatchObject({
        action: 'reject',
        problem: { code: 'UNSUPPORTED_FORMAT', message: expect.stringMatching(/DICOM Part 10/) },
      });
    });

    it('INVALID_SIDECAR counting the unknown fields (a key can name a patient) and listing accepted keys', async () => {
      givenObject(MP4);
      givenSidecar(JSON.stringify({ probe: 'convex', patientName: 'x', 'Jane Doe': 1 }));
      const out = await run();
      expect(out).toMatchObject({ action: 'reject', problem: { code: 'INVALID_SIDECAR' } });
      const message = out.action === 'reject' ? out.problem.message : '';
      expect(message).toMatch(/2 unknown key\(s\)/);
      expect(message).not.toMatch(/patientName|Jane/);
      expect(message).toMatch(/Accepted keys: probe, bodyRegion, frameRate, zone/);
      expect(message).not.toMatch(/"x"/);
    });

    it('INVALID_SIDECAR naming a bad value', async () => {
      givenObject(MP4);
      givenSidecar(JSON.stringify({ probe: 'sector' }));
      const out = await run();
      expect(out.action === 'reject' && out.problem.message).toMatch(/"probe"/);
    });

    it('INVALID_SIDECAR for malformed JSON', async () => {
      givenObject(MP4);
      givenSidecar('{probe: convex');
      const out = await run();
      expect(out).toMatchObject({
        action: 'reject',
        problem: { code: 'INVALID_SIDECAR', message: expect.stringMatching(/not valid JSON/) },
      });
    });

    it('INVALID_KEY with a content-derived id and no claim', async () => {
      givenObject(MP4, 'elsewhere/clip.mp4');
      const out = await run('elsewhere/clip.mp4');
      expect(out).toMatchObject({
        action: 'reject',
        scanId: scanIdFromContent('', '', sha256Hex(MP4)),
        problem: {
          code: 'INVALID_KEY',
          message: expect.stringMatching(/expected "uploads\/\{siteId\}\/\{studyId\}\/\{file\}"/),
        },
      });
      expect(ddbMock).not.toHaveReceivedCommand(PutCommand);
    });

    it('INVALID_KEY with an object-identity id when the object cannot be read', async () => {
      const key = 'uploads/bad site/study/clip.mp4';
      s3Mock.on(GetObjectCommand).rejects(s3Error('NoSuchKey', 404));
      const out = await run(key);
      expect(out).toMatchObject({
        action: 'reject',
        scanId: scanIdFromObjectIdentity('sonomark-uploads', key, 'v1', 'e1'),
        problem: { code: 'INVALID_KEY' },
      });
    });
  });

  it('rethrows S3 errors other than not-found, for Step Functions to retry', async () => {
    s3Mock.on(GetObjectCommand).rejects(s3Error('AccessDenied', 403));
    await expect(run()).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('fails on a sidecar read error before it claims, so the retried Validate can claim the scan', async () => {
    // Prepare
    givenObject(MP4);
    s3Mock.on(GetObjectCommand, { Key: `${KEY}.meta.json` }).rejects(s3Error('SlowDown', 503));
    // Act / Assess
    await expect(run()).rejects.toMatchObject({ name: 'SlowDown' });
    expect(ddbMock).not.toHaveReceivedCommand(PutCommand);
  });

  it('rejects a malformed event as a PayloadError', async () => {
    await expect(validateUpload({ event: { source: 'aws.s3' } }, deps())).rejects.toMatchObject({
      name: 'PayloadError',
    });
  });
});
