/**
 * DICOM through the local workflow (the synthesized state machine, s3rver, dynalite,
 * the real decoder and models): every shared sample that carries an image completes, the
 * others fail with a specific reason, and the salted pseudonyms link scans of one study.
 */
import { data } from 'dcmjs';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { identifyingValues } from '../../core/dicom/deidentify';
import { FeaturesDocument } from '../../core/schemas';
import { LocalWorkflow, type AnalyzeResult } from '../../local/workflow';
import { DICOM_PSEUDONYM_SALT_KEY } from '../../core/keys';
import { pseudonym } from '../../core/dicom/pseudonym';
import { LEGACY_SALT_FILE } from '../../local/pseudonym-salt';
import { LOCAL_ARTIFACTS_BUCKET } from '../../local/names';
import { buildDicom, DICOM_SAMPLE_OUTCOMES, DICOM_SAMPLES, requireDicomSamples } from '../helpers/dicom';
import { tempDir, writeFile } from './helpers';

jest.setTimeout(180_000);

describe('local workflow on DICOM', () => {
  let workflow: LocalWorkflow;
  const dataDir = tempDir();
  const work = tempDir();

  beforeAll(async () => {
    requireDicomSamples();
    workflow = await LocalWorkflow.start({ studyId: 'it-dicom', dataDir });
  });
  afterAll(async () => {
    await workflow?.close();
  });

  function completed(r: AnalyzeResult): FeaturesDocument {
    if (r.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(r.error)}`);
    return FeaturesDocument.parse(r.features);
  }

  it.each(Object.entries(DICOM_SAMPLE_OUTCOMES))('%s → %j', async (name, outcome) => {
    // Act
    const r = await workflow.analyze(path.join(DICOM_SAMPLES, name));

    // Assess
    if ('frames' in outcome) {
      const doc = completed(r);
      expect(doc.sampling.decodedFrames).toBe(outcome.frames);
      expect(doc.dicom?.transferSyntaxUid).toMatch(/^1\.2\.840\.10008\.1\.2/);
      // The Leadtools sample has no StudyInstanceUID: no pseudonym then, never a made-up one.
      if (headerOf(readFileSync(path.join(DICOM_SAMPLES, name))).StudyInstanceUID) {
        expect(doc.dicom?.studyPseudonym).toMatch(/^[0-9a-f]{32}$/);
      } else {
        expect(doc.dicom?.studyPseudonym).toBeUndefined();
      }
      expect(r.experts.diagnosis).toBeDefined();
      expect(r.timings.states.Extract).toBeGreaterThan(0);
    } else {
      // Refused by Validate from the header, before any GPU job.
      expect(r).toMatchObject({ status: 'failed', error: { code: outcome.code } });
      expect(r.timings.states.Extract).toBeUndefined();
    }
    // Nothing from the header in what the user gets back (result, features, error).
    const bytes = readFileSync(path.join(DICOM_SAMPLES, name));
    const text = JSON.stringify(r);
    for (const v of identifyingValues(headerOf(bytes))) expect(text.includes(v) ? v : '').toBe('');
  });

  it('Validate refuses a DICOM without pixel data (FAILED, no GPU job)', async () => {
    const file = writeFile(work, 'report.dcm', buildDicom({ rows: 16, columns: 16 }));
    const r = await workflow.analyze(file);
    expect(r).toMatchObject({ status: 'failed', error: { code: 'DICOM_NO_PIXEL_DATA' } });
    expect(r.timings.states.Extract).toBeUndefined();
  });

  it('two series of one study share the study pseudonym; the salt is the local artifacts bucket object', async () => {
    const frames = (seed: number) => [new Uint8Array(64 * 64).map((_, i) => (i * seed) & 0xff)];
    const a = writeFile(work, 'a.dcm', buildDicom({ rows: 64, columns: 64, frames: frames(3) }));
    const b = writeFile(
      work,
      'b.dcm',
      buildDicom({
        rows: 64,
        columns: 64,
        frames: frames(5),
        extra: { SeriesInstanceUID: '1.2.826.0.1.3680043.8.498.9' },
      }),
    );
    const [da, db] = [completed(await workflow.analyze(a)), completed(await workflow.analyze(b))];
    expect(da.dicom?.studyPseudonym).toBe(db.dicom?.studyPseudonym);
    expect(da.dicom?.seriesPseudonym).not.toBe(db.dicom?.seriesPseudonym);
    // The cloud's code path: the extractor created the salt object (through its role's IAM check), not a file.
    const object = await workflow.services.s3.send(
      new GetObjectCommand({ Bucket: LOCAL_ARTIFACTS_BUCKET, Key: DICOM_PSEUDONYM_SALT_KEY }),
    );
    const salt = (await object.Body!.transformToString()).trim();
    expect(salt).toMatch(/^[0-9a-f]{64}$/);
    expect(da.dicom?.studyPseudonym).toBe(pseudonym(salt, 'study', String(headerOf(readFileSync(a)).StudyInstanceUID)));
    expect(existsSync(path.join(dataDir, LEGACY_SALT_FILE))).toBe(false);
  });

  it('a data dir from an earlier version keeps its salt file’s pseudonyms: the file seeds the salt object', async () => {
    // Prepare: a data dir an earlier version used, with its salt file
    const oldDir = tempDir();
    const legacySalt = 'e'.repeat(64);
    writeFile(oldDir, LEGACY_SALT_FILE, `${legacySalt}\n`);
    const clip = writeFile(
      work,
      'c.dcm',
      // A picture (a grey ramp), not a flat frame: a flat one is refused as BLANK, as a blank clip is.
      buildDicom({ rows: 64, columns: 64, frames: [Uint8Array.from({ length: 64 * 64 }, (_, i) => (i * 7) % 256)] }),
    );
    const w = await LocalWorkflow.start({ studyId: 'it-dicom-salt', dataDir: oldDir });
    try {
      // Act
      const doc = completed(await w.analyze(clip));
      // Assess: the old pseudonyms, and the object (kept in the data dir) now holds that salt
      expect(doc.dicom?.studyPseudonym).toBe(
        pseudonym(legacySalt, 'study', String(headerOf(readFileSync(clip)).StudyInstanceUID)),
      );
      const object = await w.services.s3.send(
        new GetObjectCommand({ Bucket: LOCAL_ARTIFACTS_BUCKET, Key: DICOM_PSEUDONYM_SALT_KEY }),
      );
      expect((await object.Body!.transformToString()).trim()).toBe(legacySalt);
    } finally {
      await w.close();
    }
  });
});

function headerOf(bytes: Buffer) {
  // The header only: a sample whose pixel data is refused still has identifiers to look for.
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return data.DicomMetaDictionary.naturalizeDataset(data.DicomMessage.readFile(ab, { untilTag: '7FE00010' }).dict);
}
