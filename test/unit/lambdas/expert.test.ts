import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { featureVector } from '../../../core/features';
import { currentExpertSk, expertVersionSk, scanPk } from '../../../core/keys';
import { extractorRef, findExpert, loadManifest, type LoadedManifest } from '../../../core/manifest';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { linearExpertWeights, runLinearExpertReference } from '../../../training/onnx/fixtures';
import { FIXTURE_EXPERTS } from '../../../training/onnx/fixture-models';
import { ExpertResult } from '../../../core/schemas';
import { scoreExpert, type ScoreDeps } from '../../../lambdas/expert/score';
import { featuresDocument, s3Body, scanRef } from '../helpers/fakes';

const s3Mock = mockClient(S3Client);
const ddbMock = mockClient(DynamoDBDocumentClient);

let dir: string;
let models: LoadedManifest;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sonomark-expert-'));
  writeFixtureModels(dir);
  models = loadManifest(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  s3Mock.reset();
  ddbMock.reset();
  ddbMock.on(PutCommand).resolves({});
});

function deps(): ScoreDeps {
  return {
    s3: new S3Client({ region: 'us-east-1' }),
    doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
    table: 'results',
    models,
    now: () => new Date('2025-01-02T03:06:00.000Z'),
    sessions: new Map(),
  };
}

function task(name: string, overrides: { version?: string; sha256?: string } = {}) {
  const entry = findExpert(models.manifest, name);
  const scan = scanRef({ extractor: extractorRef(models.manifest.extractors.ultrasound) });
  return {
    scan,
    expert: {
      name: entry.name,
      version: overrides.version ?? entry.version,
      file: entry.file,
      sha256: overrides.sha256 ?? entry.sha256,
    },
  };
}

function givenFeatures(doc: unknown): void {
  s3Mock.on(GetObjectCommand).callsFake(async () => ({ Body: s3Body(JSON.stringify(doc)) }));
}

describe('scoreExpert', () => {
  it.each(['diagnosis', 'severity', 'triage'])(
    'scores %s with the fixture ONNX and writes the result item',
    async (name) => {
      // Prepare
      const input = task(name);
      const features = featuresDocument(input.scan.scanId, input.scan.extractor);
      givenFeatures(features);
      const entry = findExpert(models.manifest, name);
      const spec = FIXTURE_EXPERTS.find((e) => e.name === name)!;
      const expected = runLinearExpertReference(
        linearExpertWeights({ inputDim: entry.input.dim, labels: spec.labels, seed: spec.seed }),
        featureVector(features, entry.input.blocks),
        1,
      );
      // Act
      const result = ExpertResult.parse(await scoreExpert(input, deps()));
      // Assess
      expect(result.expert).toEqual({ name, version: entry.version, sha256: entry.sha256 });
      expect(result.extractor).toEqual(input.scan.extractor);
      expect(result.output.kind).toBe(entry.task);
      if (result.output.kind === 'classification') {
        expect(result.output.probabilities.covid).toBeCloseTo(expected[0]!, 5);
      } else if (result.output.kind === 'binary') {
        expect(result.output.positive).toBe('abnormal');
        expect(result.output.probability).toBeCloseTo(expected[1]!, 5);
      } else {
        expect(result.output.score).toBeGreaterThanOrEqual(0);
        expect(result.output.score).toBeLessThanOrEqual(3);
      }
      expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, {
        Bucket: input.scan.featuresBucket,
        Key: input.scan.featuresKey,
      });
      expect(ddbMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: 'results',
        Item: expect.objectContaining({
          pk: scanPk(input.scan.siteId, input.scan.scanId),
          sk: expertVersionSk(name, entry.version),
          expert: result.expert,
          extractor: input.scan.extractor,
        }),
        // A version is written once: a later version is stored beside it, never over it.
        ConditionExpression: 'attribute_not_exists(pk)',
      });
      // The pointer moves to this version.
      expect(ddbMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: 'results',
        Item: expect.objectContaining({ sk: currentExpertSk(name), expert: result.expert }),
      });
    },
  );

  it('refuses a version the manifest does not have', async () => {
    await expect(scoreExpert(task('diagnosis', { version: '9.9.9' }), deps())).rejects.toMatchObject({
      name: 'ModelError',
      message: expect.stringMatching(/requested as version 9\.9\.9.*manifest has version 0\.0\.1/),
    });
    expect(s3Mock).not.toHaveReceivedCommand(GetObjectCommand);
  });

  it('refuses a sha256 the manifest does not have', async () => {
    await expect(scoreExpert(task('diagnosis', { sha256: 'f'.repeat(64) }), deps())).rejects.toMatchObject({
      name: 'ModelError',
    });
  });

  it('refuses an unknown expert', async () => {
    const input = { ...task('diagnosis'), expert: { ...task('diagnosis').expert, name: 'nope' } };
    await expect(scoreExpert(input, deps())).rejects.toMatchObject({
      name: 'ModelError',
      message: expect.stringMatching(/No expert named "nope"/),
    });
  });

  it('refuses features from another extractor version, saying which', async () => {
    const input = task('triage');
    givenFeatures(featuresDocument(input.scan.scanId, { ...input.scan.extractor, version: '0.0.2' }));
    await expect(scoreExpert(input, deps())).rejects.toMatchObject({
      name: 'ModelError',
      message: expect.stringMatching(
        /trained on sonomark-fixture-extractor@0\.0\.1 features, but this scan's features come from sonomark-fixture-extractor@0\.0\.2/,
      ),
    });
    expect(ddbMock).not.toHaveReceivedCommand(PutCommand);
  });

  it('refuses an embedding of the wrong size', async () => {
    const input = task('triage');
    givenFeatures(featuresDocument(input.scan.scanId, input.scan.extractor, 16));
    await expect(scoreExpert(input, deps())).rejects.toMatchObject({
      name: 'ModelError',
      message: expect.stringMatching(/expects 88 input values/),
    });
  });

  it('refuses an invalid features document as a PayloadError', async () => {
    const input = task('triage');
    givenFeatures({ schemaVersion: 1, scanId: input.scan.scanId });
    await expect(scoreExpert(input, deps())).rejects.toMatchObject({ name: 'PayloadError' });
  });
});
