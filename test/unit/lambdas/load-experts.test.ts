/** LoadExperts: the Score step's expert list from the manifest in the artifacts bucket, read when the scan runs. */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MODELS } from '../../../core/contract';
import { validateManifest } from '../../../core/manifest';
import { XRAY_FINDINGS } from '../../../core/modality';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { loadExperts, readBucketManifest } from '../../../lambdas/load-experts/load-experts';
import { s3Body, scanRef } from '../helpers/fakes';

const s3Mock = mockClient(S3Client);
const manifestText = readFileSync(path.join(DEFAULT_MODELS_DIR, MODELS.manifestFile), 'utf8');
const shipped = JSON.parse(manifestText);
const x = shipped.extractors.ultrasound;
const scan = scanRef({ extractor: { name: x.name, version: x.version, sha256: x.sha256 } });
const functions = {
  diagnosis: 'arn:fn:diagnosis',
  severity: 'arn:fn:severity',
  triage: 'arn:fn:triage',
  'b-lines': 'arn:fn:b-lines',
};
const s3 = () => new S3Client({ region: 'us-east-1' });

beforeEach(() => s3Mock.reset());

describe('LoadExperts', () => {
  it('lists the bucket manifest’s experts, each with its function, as published now', async () => {
    // Prepare: the bucket holds a manifest where diagnosis was published as a new version
    // A diagnosis version the shipped manifest does not have; the other experts as shipped.
    const version = (name: string): string => shipped.experts.find((e: any) => e.name === name).version;
    const next = '9.9.9';
    const published = {
      ...shipped,
      experts: shipped.experts.map((e: any) =>
        e.name === 'diagnosis' ? { ...e, version: next, file: `experts/diagnosis-${next}.onnx` } : e,
      ),
    };
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(JSON.stringify(published)) });
    // Act
    const out = await loadExperts({ scan }, { manifest: () => readBucketManifest(s3(), 'artifacts'), functions });
    // Assess
    expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, { Bucket: 'artifacts', Key: 'models/manifest.json' });
    expect(out.list.map((e) => `${e.name}@${e.version} ${e.functionArn}`)).toEqual([
      `diagnosis@${next} arn:fn:diagnosis`,
      `severity@${version('severity')} arn:fn:severity`,
      `triage@${version('triage')} arn:fn:triage`,
      `b-lines@${version('b-lines')} arn:fn:b-lines`,
    ]);
    expect(out.list[0]).toEqual({
      name: 'diagnosis',
      version: next,
      file: `experts/diagnosis-${next}.onnx`,
      sha256: shipped.experts[0].sha256,
      functionArn: 'arn:fn:diagnosis',
    });
  });

  it('refuses an expert this deployment has no function for, saying to deploy', async () => {
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(manifestText) });
    await expect(
      loadExperts({ scan }, { manifest: () => readBucketManifest(s3(), 'artifacts'), functions: { diagnosis: 'a' } }),
    ).rejects.toMatchObject({ name: 'ModelError', message: expect.stringMatching(/"severity".*deploy the pipeline/) });
  });

  it('refuses experts of another extractor than the scan’s', async () => {
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(manifestText) });
    const other = scanRef({ extractor: { name: x.name, version: '9.9.9', sha256: x.sha256 } });
    await expect(
      loadExperts({ scan: other }, { manifest: () => readBucketManifest(s3(), 'artifacts'), functions }),
    ).rejects.toMatchObject({ message: expect.stringMatching(/extracted by .*@9\.9\.9/) });
  });

  describe('by modality: a scan is scored by the experts of its own modality only', () => {
    const xray = {
      ...x,
      name: 'xray-extractor',
      version: '1.0.0',
      input: { ...x.input, maxFrames: 1 },
      outputs: { ...x.outputs, biomarkers: { ...x.outputs.biomarkers, labels: [...XRAY_FINDINGS] } },
    };
    const xrayExpert = {
      ...shipped.experts[0],
      name: 'xray-pneumonia',
      extractor: { modality: 'xray', name: xray.name, version: xray.version },
      input: { ...shipped.experts[0].input, blocks: ['embedding-mean'], dim: x.outputs.embedding.dim },
    };
    // The shipped manifest's ultrasound half, with a made-up X-ray extractor and expert beside it.
    const usExperts = shipped.experts.filter((e: any) => e.extractor.modality === 'ultrasound');
    const both = { ...shipped, extractors: { ultrasound: x, xray }, experts: [...usExperts, xrayExpert] };
    const xrayScan = scanRef({
      modality: 'xray',
      extractor: { name: xray.name, version: xray.version, sha256: x.sha256 },
    });
    const deps = (manifest: unknown) => ({
      manifest: async () => validateManifest(manifest, 'test manifest'),
      functions: { ...functions, 'xray-pneumonia': 'arn:fn:xray-pneumonia' },
    });

    it('an X-ray gets the X-ray experts, an ultrasound scan the ultrasound ones', async () => {
      expect((await loadExperts({ scan: xrayScan }, deps(both))).list.map((e) => e.name)).toEqual(['xray-pneumonia']);
      expect((await loadExperts({ scan }, deps(both))).list.map((e) => e.name)).toEqual(
        usExperts.map((e: any) => e.name),
      );
    });

    it('an X-ray with no X-ray expert in the manifest fails, saying so plainly', async () => {
      const none = { ...both, experts: usExperts };
      await expect(loadExperts({ scan: xrayScan }, deps(none))).rejects.toMatchObject({
        name: 'ModelError',
        message: expect.stringMatching(/lists no xray experts \(only ultrasound ones\): publish one/),
      });
    });
  });

  it('names the object when the bucket has no manifest or a broken one', async () => {
    s3Mock.on(GetObjectCommand).rejects(Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' }));
    await expect(readBucketManifest(s3(), 'artifacts')).rejects.toThrow(
      /Cannot read the model manifest s3:\/\/artifacts\/models\/manifest\.json: NoSuchKey/,
    );
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body('{"schemaVersion": 1}') });
    await expect(readBucketManifest(s3(), 'artifacts')).rejects.toThrow(/s3:\/\/artifacts\/models\/manifest\.json/);
  });
});
