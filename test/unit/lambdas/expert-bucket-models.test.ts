/**
 * The expert function's models from the artifacts bucket (s3rver here): the manifest read at run
 * time, the model fetched once and sha256-checked on load, so a version published into the bucket
 * is scored without a redeploy and a swapped file never runs.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BucketModels, readBucketManifest } from '../../../core/bucket-models';
import { runCli } from '../../helpers/cli';
import { MODELS } from '../../../core/contract';
import { featuresKey } from '../../../core/keys';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { listExpertResults } from '../../../core/results-store';
import { scoreExpert } from '../../../lambdas/expert/score';
import { ensureBucket, ensureResultsTable, startLocalServices, type LocalServices } from '../../../local/services';
import { tempDir } from '../../helpers/temp';
import { featuresDocument, scanRef } from '../helpers/fakes';

const BUCKET = 'artifacts';
const TABLE = 'results';
let services: LocalServices;
const shipped = JSON.parse(readFileSync(path.join(DEFAULT_MODELS_DIR, MODELS.manifestFile), 'utf8'));
/** A shipped expert's manifest entry (its `file` is relative to the models dir, as in the bucket under models/). */
const shippedExpert = (name: string): { version: string; file: string } =>
  shipped.experts.find((e: { name: string }) => e.name === name);
const diagnosisBytes = readFileSync(path.join(DEFAULT_MODELS_DIR, shippedExpert('diagnosis').file));
const x = shipped.extractors.ultrasound;

const put = (key: string, body: string | Buffer) =>
  services.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));

beforeAll(async () => {
  services = await startLocalServices(tempDir());
  await ensureBucket(services.s3, BUCKET);
  await ensureResultsTable(services.dynamo, TABLE);
}, 30_000);
afterAll(async () => services?.close());

describe('expert models from the artifacts bucket', () => {
  it('scores with a version published into the bucket after the container started', async () => {
    // Prepare: the bucket's manifest names the shipped diagnosis; a scan's features are stored
    const scan = scanRef({
      extractor: { name: x.name, version: x.version, sha256: x.sha256 },
      featuresBucket: BUCKET,
      featuresKey: featuresKey(scanRef().siteId, x, '0123456789abcdef0123456789abcdef'),
    });
    await put(scan.featuresKey, JSON.stringify(featuresDocument(scan.scanId, scan.extractor, 48)));
    await put('models/manifest.json', JSON.stringify(shipped));
    await put(`models/${shippedExpert('diagnosis').file}`, diagnosisBytes);
    const models = new BucketModels(services.s3, BUCKET, tempDir());
    const deps = {
      s3: services.s3,
      doc: services.doc,
      table: TABLE,
      resolveModels: (e: { name: string; version: string; sha256: string }) => models.forExpert(e),
    };
    const entry = shipped.experts.find((e: any) => e.name === 'diagnosis');
    const task = (e: any) => ({ scan, expert: { name: e.name, version: e.version, file: e.file, sha256: e.sha256 } });
    await scoreExpert(task(entry), deps);

    // Act: diagnosis 1.2.0 published into the bucket (same weights, a new version), then scored
    const v2 = { ...entry, version: '1.2.0', file: 'experts/diagnosis-1.2.0.onnx' };
    await put('models/experts/diagnosis-1.2.0.onnx', diagnosisBytes);
    await put(
      'models/manifest.json',
      JSON.stringify({ ...shipped, experts: shipped.experts.map((e: any) => (e.name === 'diagnosis' ? v2 : e)) }),
    );
    const result = await scoreExpert(task(v2), deps);

    // Assess
    expect(result.expert.version).toBe('1.2.0');
    expect(
      (await listExpertResults(services.doc, TABLE, scan.siteId, scan.scanId)).map((r) => r.expert.version),
    ).toEqual(['1.2.0']);
  });

  it('refuses a model file whose sha256 is not the manifest’s', async () => {
    const v3 = { ...shipped.experts[2], version: '1.3.0', file: 'experts/triage-1.3.0.onnx' };
    await put('models/experts/triage-1.3.0.onnx', diagnosisBytes); // the wrong bytes
    await put(
      'models/manifest.json',
      JSON.stringify({ ...shipped, experts: shipped.experts.map((e: any) => (e.name === 'triage' ? v3 : e)) }),
    );
    // The scan of the first test, its features stored there
    const scan = scanRef({
      extractor: { name: x.name, version: x.version, sha256: x.sha256 },
      featuresBucket: BUCKET,
      featuresKey: featuresKey(scanRef().siteId, x, '0123456789abcdef0123456789abcdef'),
    });
    const models = new BucketModels(services.s3, BUCKET, tempDir());
    await expect(
      scoreExpert(
        { scan, expert: { name: 'triage', version: '1.3.0', file: v3.file, sha256: v3.sha256 } },
        { s3: services.s3, doc: services.doc, table: TABLE, resolveModels: (e) => models.forExpert(e) },
      ),
    ).rejects.toThrow(/has sha256 [0-9a-f]{64}, but the manifest says/);
  });

  it('sonomark experts publish --bucket puts the model, then the manifest, where LoadExperts and the experts read', async () => {
    // Prepare: the CLI's S3 client aimed at s3rver through the SDK's own endpoint variable
    const env = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_S3: services.s3Endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    });
    try {
      // Act
      const r = await runCli([
        'experts',
        'publish',
        'severity@2.0.0',
        '--file',
        path.join(DEFAULT_MODELS_DIR, shippedExpert('severity').file),
        '--models-dir',
        await copyOfShippedModels(),
        '--bucket',
        BUCKET,
      ]);
      // Assess
      expect(r.stderr).toMatch(
        /uploaded 2 objects to s3:\/\/artifacts\/ \(models\/experts\/severity-2\.0\.0\.onnx, models\/manifest\.json\)/,
      );
      expect(r.code).toBe(0);
      const manifest = await readBucketManifest(services.s3, BUCKET);
      expect(manifest.experts.find((e) => e.name === 'severity')?.version).toBe('2.0.0');
      const entry = manifest.experts.find((e) => e.name === 'severity')!;
      await expect(new BucketModels(services.s3, BUCKET, tempDir()).forExpert(entry)).resolves.toBeDefined();
    } finally {
      process.env = env;
    }
  });
});

/** A writable copy of the shipped models (manifest and expert files). */
async function copyOfShippedModels(): Promise<string> {
  const { ensureDataDirModels } = await import('../../../local/models');
  return ensureDataDirModels(tempDir(), DEFAULT_MODELS_DIR);
}
