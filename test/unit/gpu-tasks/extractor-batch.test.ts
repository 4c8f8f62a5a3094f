/**
 * The extractor job's batch mode (a cohort batch): a list of items in S3, extracted in one
 * process; a bad item gets its own error document and the others their features (s3rver).
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { EXTRACT_ENV } from '../../../core/contract';
import { extractErrorKey, featuresKey } from '../../../core/keys';
import { loadManifest } from '../../../core/manifest';
import { FeaturesDocument } from '../../../core/schemas';
import { isBatchJob } from '../../../gpu-tasks/feature-extractor/src/batch';
import { runExtractItems } from '../../../gpu-tasks/feature-extractor/src/main';
import { ensureBucket, startLocalServices, type LocalServices } from '../../../local/services';
import { POCUS, requirePocus } from '../../helpers/pocus';
import { tempDir } from '../../helpers/temp';

jest.setTimeout(120_000);
let services: LocalServices;
beforeAll(async () => {
  requirePocus();
  services = await startLocalServices(tempDir());
  await ensureBucket(services.s3, 'uploads');
  await ensureBucket(services.s3, 'artifacts');
});
afterAll(async () => services?.close());

const text = async (key: string) =>
  (await services.s3.send(new GetObjectCommand({ Bucket: 'artifacts', Key: key }))).Body!.transformToString();

describe('extractor batch mode', () => {
  it('extracts every item of the list in one process (one cached model session); a bad item fails alone', async () => {
    // Prepare: two real clips, one text file named like a clip, and the list
    const x = loadManifest().manifest.extractors.ultrasound;
    const clips = {
      ['a'.repeat(32)]: path.join(POCUS, 'videos/convex/Pneu-Atlas-pneumonia.gif'),
      ['b'.repeat(32)]: path.join(POCUS, 'videos/convex/Reg-NormalLungs.mp4'),
    };
    const items = [];
    for (const [scanId, file] of Object.entries(clips)) {
      await services.s3.send(
        new PutObjectCommand({ Bucket: 'uploads', Key: `uploads/s/c/${scanId}`, Body: readFileSync(file) }),
      );
      items.push({
        scanId,
        inputBucket: 'uploads',
        inputKey: `uploads/s/c/${scanId}`,
        featuresBucket: 'artifacts',
        featuresKey: featuresKey('s', x, scanId),
      });
    }
    const bad = 'c'.repeat(32);
    await services.s3.send(new PutObjectCommand({ Bucket: 'uploads', Key: 'uploads/s/c/bad.mp4', Body: 'not a clip' }));
    items.splice(1, 0, {
      scanId: bad,
      inputBucket: 'uploads',
      inputKey: 'uploads/s/c/bad.mp4',
      featuresBucket: 'artifacts',
      featuresKey: featuresKey('s', x, bad),
    });
    await services.s3.send(
      new PutObjectCommand({ Bucket: 'artifacts', Key: 'cohorts/run-1/batch-0.json', Body: JSON.stringify(items) }),
    );
    const env = { [EXTRACT_ENV.itemsBucket]: 'artifacts', [EXTRACT_ENV.itemsKey]: 'cohorts/run-1/batch-0.json' };
    expect(isBatchJob(env)).toBe(true);

    // Act
    const result = await runExtractItems(env, { s3: services.s3, executionProvider: 'cpu', log: () => {} });

    // Assess
    expect(result).toEqual({ succeeded: ['a'.repeat(32), 'b'.repeat(32)], failed: [bad] });
    for (const scanId of result.succeeded) {
      const doc = FeaturesDocument.parse(JSON.parse(await text(featuresKey('s', x, scanId))));
      expect(doc.scanId).toBe(scanId);
      expect(doc.extractor.version).toBe(x.version);
    }
    expect(JSON.parse(await text(extractErrorKey(featuresKey('s', x, bad)))).code).toMatch(/^[A-Z_]+$/);
  });

  it('refuses a list that is not one, naming it', async () => {
    await services.s3.send(new PutObjectCommand({ Bucket: 'artifacts', Key: 'cohorts/bad.json', Body: '{"a":1}' }));
    await expect(
      runExtractItems(
        { [EXTRACT_ENV.itemsBucket]: 'artifacts', [EXTRACT_ENV.itemsKey]: 'cohorts/bad.json' },
        { s3: services.s3, executionProvider: 'cpu', log: () => {} },
      ),
    ).rejects.toThrow(/extractor item list/);
  });
});
