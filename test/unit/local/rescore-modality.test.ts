/**
 * Re-scoring a store that holds both modalities: an expert scores only features of its own
 * modality, so an X-ray scan is skipped (with the reason, and counted) by ultrasound experts
 * instead of being read as ultrasound features. Real local stores (s3rver, dynalite) and the
 * shipped models.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { expertsFor, loadManifest } from '../../../core/manifest';
import { XRAY_FINDINGS } from '../../../core/modality';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { listExpertResultVersions, scanKey, type ScanItem } from '../../../core/results-store';
import { rescoreScan, type RescoreStore } from '../../../local/rescore';
import { ensureBucket, ensureResultsTable, startLocalServices, type LocalServices } from '../../../local/services';
import { tempDir } from '../../helpers/temp';
import { featuresDocument } from '../helpers/fakes';

jest.setTimeout(60_000);

const ARTIFACTS = 'artifacts';
const TABLE = 'results';
const SITE = 'site-a';
const loaded = loadManifest(DEFAULT_MODELS_DIR);
const x = loaded.manifest.extractors.ultrasound;
const extractor = { name: x.name, version: x.version, sha256: x.sha256 };

let services: LocalServices;
let store: RescoreStore;

beforeAll(async () => {
  services = await startLocalServices(tempDir());
  await ensureBucket(services.s3, ARTIFACTS);
  await ensureResultsTable(services.dynamo, TABLE);
  store = { s3: services.s3, doc: services.doc, table: TABLE, artifactsBucket: ARTIFACTS };
}, 60_000);
afterAll(async () => services?.close());

/** A COMPLETED scan item whose features document is `doc`, stored at its features key. */
async function storedScan(scanId: string, doc: unknown): Promise<ScanItem> {
  const featuresKey = `features/${SITE}/${scanId}.json`;
  await services.s3.send(new PutObjectCommand({ Bucket: ARTIFACTS, Key: featuresKey, Body: JSON.stringify(doc) }));
  return {
    ...scanKey(SITE, scanId),
    scanId,
    status: 'COMPLETED',
    siteId: SITE,
    extractor,
    featuresBucket: ARTIFACTS,
    featuresKey,
    updatedAt: new Date().toISOString(),
  } as ScanItem;
}

describe('rescoreScan across modalities', () => {
  it('scores an ultrasound scan with the ultrasound experts', async () => {
    // Prepare
    const scanId = '1'.repeat(32);
    const scan = await storedScan(scanId, featuresDocument(scanId, extractor, x.outputs.embedding.dim));

    // Act
    const r = await rescoreScan(store, loaded, expertsFor(loaded.manifest, 'ultrasound'), scan);

    // Assess
    expect(r.status).toBe('rescored');
    expect(Object.keys(r.moved).sort()).toEqual(
      expertsFor(loaded.manifest, 'ultrasound')
        .map((e) => e.name)
        .sort(),
    );
  });

  it('skips an X-ray scan none of the experts reads, saying why, and writes no result', async () => {
    // Prepare: an X-ray document (one image, the X-ray findings) from the same extractor ref
    const scanId = '2'.repeat(32);
    const us = featuresDocument(scanId, extractor, x.outputs.embedding.dim);
    const scan = await storedScan(scanId, {
      ...us,
      modality: 'xray',
      sampling: { ...us.sampling, decodedFrames: 1, frameIndices: [0] },
      biomarkers: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, us.biomarkers['a_lines']])),
      frames: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, [0.5]])),
    });

    // Act
    const r = await rescoreScan(store, loaded, expertsFor(loaded.manifest, 'ultrasound'), scan);

    // Assess
    expect(r).toMatchObject({ status: 'skipped', moved: {} });
    expect(r.reason).toMatch(/^its features are xray, and none of diagnosis@.* reads xray features$/);
    expect((await listExpertResultVersions(services.doc, TABLE, SITE, scanId)).results).toEqual([]);
  });
});
