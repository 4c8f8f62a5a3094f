import { makeLavfiClip } from '../../helpers/clips';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { ConfigError, TransientError } from '../../../core/errors';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { extractErrorKey } from '../../../core/keys';
import { FeaturesDocument, ProblemDetail } from '../../../core/schemas';
import { ENV as CONTRACT_ENV, EXTRACT_ENV, EXTRACTOR_EXIT_TRANSIENT } from '../../../core/contract';
import { errorLogLine, exitCodeFor, problemFor, readExtractEnv } from '../../../gpu-tasks/feature-extractor/src/main';
import { releaseCachedSessions, runExtractJob } from '../../../gpu-tasks/feature-extractor/src';
import { s3Body } from '../../helpers/s3';

const SCAN_ID = 'fedcba9876543210fedcba9876543210';
const s3Mock = mockClient(S3Client);

let work: string;
let clipBytes: Buffer;

const ENV = {
  [EXTRACT_ENV.scanId]: SCAN_ID,
  [EXTRACT_ENV.inputBucket]: 'uploads-bucket',
  [EXTRACT_ENV.inputKey]: 'uploads/site-a/study-1/Patient_Jane_Doe.mp4',
  [EXTRACT_ENV.inputVersionId]: 'v123',
  [EXTRACT_ENV.featuresBucket]: 'artifacts-bucket',
  [EXTRACT_ENV.featuresKey]: `features/site-a/sonomark-fixture-extractor-0.0.1/${SCAN_ID}.json`,
  // As the job definition sets it: where the DICOM pseudonym salt object lives.
  [CONTRACT_ENV.artifactsBucket]: 'artifacts-bucket',
};

const body = s3Body;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'sonomark-job-test-'));
  writeFixtureModels(path.join(work, 'models'));
  const clip = path.join(work, 'clip.mp4');
  makeLavfiClip(clip, 'testsrc=size=128x96:rate=10:duration=2');
  clipBytes = readFileSync(clip);
});
afterAll(async () => {
  await releaseCachedSessions();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  s3Mock.reset();
});

describe('extractor job: runExtractJob', () => {
  it('reads the clip version from S3 and writes a valid features document', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand).resolves({ Body: body(clipBytes) });
    s3Mock.on(PutObjectCommand).resolves({});
    const logs: string[] = [];

    // Act
    const result = await runExtractJob(ENV, {
      s3: new S3Client({ region: 'us-east-1' }),
      modelsDir: path.join(work, 'models'),
      executionProvider: 'cpu',
      log: (l) => logs.push(l),
    });

    // Assess
    const get = s3Mock.commandCalls(GetObjectCommand)[0]?.args[0].input;
    expect(get).toEqual({ Bucket: 'uploads-bucket', Key: ENV.INPUT_KEY, VersionId: 'v123' });
    // An mp4 needs no DICOM pseudonym salt: the clip is the only object read.
    expect(s3Mock.commandCalls(GetObjectCommand)).toHaveLength(1);
    const puts = s3Mock.commandCalls(PutObjectCommand);
    expect(puts).toHaveLength(1);
    const put = puts[0]?.args[0].input;
    expect(put).toMatchObject({ Bucket: 'artifacts-bucket', Key: ENV.FEATURES_KEY, ContentType: 'application/json' });
    const doc = FeaturesDocument.parse(JSON.parse(String(put?.Body)));
    expect(doc.scanId).toBe(SCAN_ID);
    expect(doc.sampling.decodedFrames).toBe(20);
    expect(result).toMatchObject({ bucket: 'artifacts-bucket', key: ENV.FEATURES_KEY });
    expect(logs).toHaveLength(1);
    expect(JSON.parse(logs[0] as string)).toMatchObject({ level: 'INFO', scanId: SCAN_ID, executionProvider: 'cpu' });
    expect(logs[0]).not.toMatch(/Patient|uploads\/|features\//);
  });

  it('omits VersionId for an unversioned bucket', async () => {
    // Prepare
    s3Mock.on(GetObjectCommand).resolves({ Body: body(clipBytes) });
    s3Mock.on(PutObjectCommand).resolves({});

    // Act
    await runExtractJob(
      { ...ENV, [EXTRACT_ENV.inputVersionId]: '' },
      {
        s3: new S3Client({ region: 'us-east-1' }),
        modelsDir: path.join(work, 'models'),
        executionProvider: 'cpu',
        log: () => undefined,
      },
    );

    // Assess
    expect(s3Mock.commandCalls(GetObjectCommand)[0]?.args[0].input).not.toHaveProperty('VersionId');
  });

  it('writes no features but a problem document for RecordFailure when the clip cannot be decoded', async () => {
    // Prepare
    // An MP4 signature followed by nothing a decoder can read.
    const garbage = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom'), Buffer.alloc(2000, 7)]);
    s3Mock.on(GetObjectCommand).resolves({ Body: body(garbage) });
    s3Mock.on(PutObjectCommand).resolves({});

    // Act
    const result = runExtractJob(ENV, {
      s3: new S3Client({ region: 'us-east-1' }),
      modelsDir: path.join(work, 'models'),
      executionProvider: 'cpu',
      log: () => undefined,
    });

    // Assess
    await expect(result).rejects.toMatchObject({ name: 'DecodeError', code: 'DECODE_FAILED' });
    const puts = s3Mock.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(puts).toHaveLength(1);
    expect(puts[0]).toMatchObject({
      Bucket: 'artifacts-bucket',
      Key: extractErrorKey(ENV.FEATURES_KEY),
      ContentType: 'application/json',
    });
    const problem = ProblemDetail.parse(JSON.parse(String(puts[0]?.Body)));
    expect(problem.code).toBe('DECODE_FAILED');
    expect(problem.message).toMatch(/^The clip could not be decoded/);
  });

  it('still throws the original error when the problem document cannot be written', async () => {
    // Prepare
    s3Mock
      .on(GetObjectCommand)
      .rejects(Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' }));
    s3Mock.on(PutObjectCommand).rejects(new Error('network down'));
    const logs: string[] = [];

    // Act
    const result = runExtractJob(ENV, {
      s3: new S3Client({ region: 'us-east-1' }),
      modelsDir: path.join(work, 'models'),
      executionProvider: 'cpu',
      log: (l) => logs.push(l),
    });

    // Assess
    await expect(result).rejects.toMatchObject({ name: 'NoSuchKey' });
    expect(logs.join('\n')).toMatch(/error document not written/);
  });
});

describe('extractor job: configuration and error logs', () => {
  it.each([
    EXTRACT_ENV.scanId,
    EXTRACT_ENV.inputBucket,
    EXTRACT_ENV.inputKey,
    EXTRACT_ENV.featuresBucket,
    EXTRACT_ENV.featuresKey,
  ])('fails fast naming %s when it is missing', (name) => {
    // Prepare
    const env: Record<string, string | undefined> = { ...ENV, [name]: undefined };

    // Act / Assess
    expect(() => readExtractEnv(env)).toThrow(ConfigError);
    expect(() => readExtractEnv(env)).toThrow(name);
  });

  it('rejects a malformed scan id', () => {
    // Prepare / Act / Assess
    expect(() => readExtractEnv({ ...ENV, [EXTRACT_ENV.scanId]: 'not-a-scan' })).toThrow(/SCAN_ID/);
  });

  it.each([
    [
      Object.assign(new Error('The clip is empty (0 bytes).'), { name: 'DecodeError', code: 'EMPTY_INPUT' }),
      'EMPTY_INPUT',
    ],
    [Object.assign(new Error('bad model'), { name: 'ModelError' }), 'MODEL_ERROR'],
    [
      Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey', code: 'NoSuchKey' }),
      'CLIP_NOT_FOUND',
    ],
    [new TypeError('x is undefined'), 'EXTRACT_FAILED'],
    [new TransientError('The decoder (ffmpeg) was killed by SIGKILL.', 'DecoderKilled'), 'RETRIES_EXHAUSTED'],
  ])('maps %s to problem code %s', (err, code) => {
    // Prepare / Act
    const problem = problemFor(err);

    // Assess
    expect(problem.code).toBe(code);
    expect(problem.message.length).toBeGreaterThan(0);
  });

  it('logs one JSON error line without object keys or ARNs', () => {
    // Prepare
    const err = Object.assign(
      new Error(
        `User: arn:aws:sts::123:assumed-role/x is not authorized on resource: arn:aws:s3:::uploads-bucket/${ENV.INPUT_KEY} (key ${ENV.INPUT_KEY})`,
      ),
      { name: 'AccessDenied' },
    );

    // Act
    const line = errorLogLine(err, SCAN_ID, [ENV.INPUT_KEY, ENV.FEATURES_KEY]);

    // Assess
    expect(line.split('\n')).toHaveLength(1);
    expect(JSON.parse(line)).toMatchObject({ level: 'ERROR', scanId: SCAN_ID, error: { name: 'AccessDenied' } });
    expect(line).not.toMatch(/Patient|uploads\//);
  });
});

describe('extractor job: exit status', () => {
  it.each([
    [
      'an S3 503 SlowDown',
      Object.assign(new Error('Please reduce your request rate.'), {
        name: 'SlowDown',
        $metadata: { httpStatusCode: 503 },
      }),
      EXTRACTOR_EXIT_TRANSIENT,
    ],
    [
      'a reset connection',
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      EXTRACTOR_EXIT_TRANSIENT,
    ],
    ['a decode error', Object.assign(new Error('no video stream'), { name: 'DecodeError' }), 1],
    [
      'access denied (HTTP 403)',
      Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }),
      1,
    ],
    ['a configuration error', new ConfigError('SCAN_ID is not set'), 1],
  ])('%s: Batch retries only the transient exit', (_what, err, code) => {
    // Act / Assess
    expect(exitCodeFor(err)).toBe(code);
  });
});
