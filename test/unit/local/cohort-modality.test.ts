/**
 * The local cohort re-scores a stored scan under the modality Validate stored on it: an X-ray scan
 * by the X-ray experts, a scan stored before modalities (no `modality`) by the ultrasound ones,
 * and an explicit `--modality` (or sidecar) that contradicts the stored scan fails that item
 * instead of scoring it as the other modality. Real local stores (s3rver, dynalite), the shipped
 * ultrasound models and the X-ray fixture models; no workflow may start (every item is stored).
 */
import { cpSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { extractorFor, type LoadedManifest } from '../../../core/manifest';
import { XRAY_FINDINGS, type Modality } from '../../../core/modality';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { scanKey, type ScanItem } from '../../../core/results-store';
import { scanIdFromContent, sha256Hex } from '../../../core/scan-id';
import { CohortManifestError, itemHint, readCohortManifest, runCohort, type CohortInput } from '../../../local/cohort';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE } from '../../../local/names';
import { ensureBucket, ensureResultsTable, startLocalServices } from '../../../local/services';
import { addXrayFixtureModels, FIXTURE_XRAY_EXPERTS } from '../../../training/onnx/fixture-xray';
import { tempDir } from '../../helpers/temp';
import { featuresDocument } from '../helpers/fakes';

jest.setTimeout(120_000);

const work = tempDir();
const dataDir = path.join(work, 'data');
let loaded: LoadedManifest;
let xrayInput: CohortInput;
let legacyInput: CohortInput;

/** A file whose bytes name the scan, and that scan stored COMPLETED with features of `modality`. */
async function storedItem(
  name: string,
  modality: Modality,
  put: (key: string, doc: unknown, item: ScanItem) => Promise<void>,
  opts: { storeModality: boolean },
): Promise<CohortInput> {
  const bytes = Buffer.from(`${name}: bytes never decoded (the scan is stored)`);
  const file = path.join(work, name);
  writeFileSync(file, bytes);
  const scanId = scanIdFromContent('local', 'local', sha256Hex(bytes));
  const x = extractorFor(loaded.manifest, modality);
  const extractor = { name: x.name, version: x.version, sha256: x.sha256 };
  const us = featuresDocument(scanId, extractor, x.outputs.embedding.dim);
  const doc =
    modality === 'xray'
      ? {
          ...us,
          modality,
          sampling: { ...us.sampling, decodedFrames: 1, frameIndices: [0] },
          biomarkers: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, us.biomarkers['a_lines']])),
          frames: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, [0.5]])),
        }
      : us;
  const featuresKey = `features/local/${scanId}.json`;
  await put(featuresKey, doc, {
    ...scanKey('local', scanId),
    scanId,
    status: 'COMPLETED',
    siteId: 'local',
    studyId: 'local',
    ...(opts.storeModality ? { modality } : {}),
    extractor,
    featuresBucket: LOCAL_ARTIFACTS_BUCKET,
    featuresKey,
    updatedAt: new Date().toISOString(),
  });
  return { file, name };
}

beforeAll(async () => {
  const models = path.join(work, 'models');
  cpSync(DEFAULT_MODELS_DIR, models, { recursive: true });
  loaded = addXrayFixtureModels(models);
  const services = await startLocalServices(dataDir);
  try {
    await ensureBucket(services.s3, LOCAL_ARTIFACTS_BUCKET);
    await ensureResultsTable(services.dynamo, LOCAL_TABLE);
    const put = async (key: string, doc: unknown, item: ScanItem) => {
      await services.s3.send(
        new PutObjectCommand({ Bucket: LOCAL_ARTIFACTS_BUCKET, Key: key, Body: JSON.stringify(doc) }),
      );
      await services.doc.send(new PutCommand({ TableName: LOCAL_TABLE, Item: item }));
    };
    xrayInput = await storedItem('chest.png', 'xray', put, { storeModality: true });
    // Stored before modalities: no `modality` on the item, so ultrasound.
    legacyInput = await storedItem('clip.mp4', 'ultrasound', put, { storeModality: false });
  } finally {
    await services.close();
  }
}, 120_000);

const noWorkflow = async (): Promise<never> => {
  throw new Error('every item is stored: the workflow must not start');
};

describe('local cohort: stored scans under their own modality', () => {
  it('scores the X-ray scan with exactly the X-ray experts and the legacy scan with exactly the ultrasound ones', async () => {
    // Act
    const outcomes = await runCohort([xrayInput, legacyInput], { dataDir, loaded, startWorkflow: noWorkflow });

    // Assess
    const [xray, legacy] = outcomes;
    expect(outcomes.map((o) => o.action)).toEqual(['scored', 'scored']);
    const x = extractorFor(loaded.manifest, 'xray');
    expect(xray?.extractor).toBe(`${x.name}@${x.version}`);
    expect(Object.keys(xray?.current ?? {}).sort()).toEqual(FIXTURE_XRAY_EXPERTS.map((e) => e.name).sort());
    const u = extractorFor(loaded.manifest, 'ultrasound');
    expect(legacy?.extractor).toBe(`${u.name}@${u.version}`);
    expect(Object.keys(legacy?.current ?? {}).sort()).toEqual(
      loaded.manifest.experts
        .filter((e) => e.extractor.modality === 'ultrasound')
        .map((e) => e.name)
        .sort(),
    );
  });

  it('fails an item whose explicit --modality or sidecar contradicts its stored scan (MODALITY_CONFLICT); the default hint does not', async () => {
    // Act
    const explicit = await runCohort([xrayInput], {
      dataDir,
      loaded,
      modality: { modality: 'ultrasound', explicit: true },
      startWorkflow: noWorkflow,
    });
    const sidecar = await runCohort(
      [{ ...legacyInput, sidecar: JSON.stringify({ modality: 'xray', unknownField: 1 }) }],
      {
        dataDir,
        loaded,
        startWorkflow: noWorkflow,
      },
    );
    const byDefault = await runCohort([xrayInput], {
      dataDir,
      loaded,
      modality: { modality: 'ultrasound', explicit: false },
      startWorkflow: noWorkflow,
    });

    // Assess
    expect(explicit[0]).toMatchObject({ action: 'failed', error: { code: 'MODALITY_CONFLICT' } });
    expect(explicit[0]?.error?.message).toMatch(/stored scan of these bytes is xray, but --modality says ultrasound/);
    expect(sidecar[0]).toMatchObject({ action: 'failed', error: { code: 'MODALITY_CONFLICT' } });
    expect(sidecar[0]?.error?.message).toMatch(/is ultrasound, but its sidecar says xray/);
    expect(byDefault[0]?.action).toBe('done');
  });
});

describe('cohort manifests: a modality per row', () => {
  it('reads an optional "modality" column (CSV) or field (JSONL); empty or absent leaves the run\'s hint', () => {
    // Prepare
    const csv = path.join(work, 'rows.csv');
    writeFileSync(csv, 'file,modality\na.png,xray\nb.mp4,\nc.mp4,ultrasound\n');
    const jsonl = path.join(work, 'rows.jsonl');
    writeFileSync(jsonl, '{"file":"a.png","modality":"xray"}\n{"file":"b.mp4"}\n');

    // Act
    const fromCsv = readCohortManifest(csv);
    const fromJsonl = readCohortManifest(jsonl);

    // Assess
    expect(fromCsv.map((i) => [i.name, i.modality])).toEqual([
      ['a.png', 'xray'],
      ['b.mp4', undefined],
      ['c.mp4', 'ultrasound'],
    ]);
    expect(fromJsonl.map((i) => [i.name, i.modality])).toEqual([
      ['a.png', 'xray'],
      ['b.mp4', undefined],
    ]);
    // A row's modality is an explicit hint for that item alone; a row without one keeps the run's.
    const run = { modality: 'ultrasound', explicit: false } as const;
    expect(itemHint(fromCsv[0]!, run)).toEqual({ modality: 'xray', explicit: true });
    expect(itemHint(fromCsv[1]!, run)).toBe(run);
  });

  it('refuses a row whose modality is neither, naming the line and what is accepted (not the value)', () => {
    // Prepare
    const csv = path.join(work, 'bad.csv');
    writeFileSync(csv, 'file,modality\na.png,xray\nb.png,PATIENT-X\n');

    // Act / Assess
    expect(() => readCohortManifest(csv)).toThrow(
      new CohortManifestError(
        `${csv} line 3: "modality" must be ultrasound or xray (or empty: the run's --modality applies).`,
      ),
    );
  });
});
