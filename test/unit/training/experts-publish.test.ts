/**
 * `sonomark experts train` as a user runs it (the CLI's main), into a temp models
 * directory: the manifest still loads, the card carries the CV numbers, and the
 * expert Lambda's own scoring code (lambdas/expert/score.ts) runs the new model
 * and returns the probabilities the trainer computed.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../../cli/main';
import { featureVector } from '../../../core/features';
import { matrix, predictProba } from '../../../training/experts/model';
import { syntheticLabelsCsv, syntheticRows, type SyntheticRow } from '../../../training/experts/synthetic';
import { runExpertTraining } from '../../../training/experts/train-command';
import { extractorRef, findExpert, loadManifest } from '../../../core/manifest';
import { buildFixtureModelSet, writeFixtureModels } from '../../../training/onnx/fixture-models';
import { ExpertResult } from '../../../core/schemas';
import { scoreExpert } from '../../../lambdas/expert/score';
import { s3Body, scanRef } from '../helpers/fakes';

jest.setTimeout(60_000);

const s3Mock = mockClient(S3Client);
const ddbMock = mockClient(DynamoDBDocumentClient);

let dir: string;
let models: string;
let rows: SyntheticRow[];
let features: string;
let labels: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sonomark-publish-'));
  models = path.join(dir, 'models');
  const x = buildFixtureModelSet().manifest.extractors.ultrasound;
  rows = syntheticRows({ seed: 21, rows: 90, extractor: { name: x.name, version: x.version, sha256: x.sha256 } });
  features = path.join(dir, 'features.jsonl');
  writeFileSync(
    features,
    rows
      .map((r) =>
        JSON.stringify({ file: `/synthetic/${r.name}.mp4`, name: r.name, sha256: r.sha256, features: r.features }),
      )
      .join('\n') + '\n',
  );
  labels = path.join(dir, 'labels.csv');
  writeFileSync(labels, syntheticLabelsCsv(rows));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  // Each test trains into its own copy of the fixture models, whatever ran before it.
  rmSync(models, { recursive: true, force: true });
  writeFixtureModels(models);
  s3Mock.reset();
  ddbMock.reset();
  ddbMock.on(PutCommand).resolves({});
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  const code = await main(args, out, err);
  return { code, stdout: Buffer.concat(chunks.out).toString(), stderr: Buffer.concat(chunks.err).toString() };
}

const common = () => [
  'experts',
  'train',
  '--features',
  features,
  '--labels',
  labels,
  '--group-column',
  'group',
  '--fold-column',
  'fold',
  '--models-dir',
  models,
  '--bootstrap',
  '100',
];

async function score(name: string, doc: SyntheticRow['features']) {
  const loaded = loadManifest(models);
  const entry = findExpert(loaded.manifest, name);
  const scan = scanRef({ scanId: doc.scanId, extractor: extractorRef(loaded.manifest.extractors.ultrasound) });
  s3Mock.on(GetObjectCommand).callsFake(async () => ({ Body: s3Body(JSON.stringify(doc)) }));
  return ExpertResult.parse(
    await scoreExpert(
      { scan, expert: { name, version: entry.version, file: entry.file, sha256: entry.sha256 } },
      {
        s3: new S3Client({ region: 'us-east-1' }),
        doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
        table: 'results',
        models: loaded,
        sessions: new Map(),
      },
    ),
  );
}

describe('sonomark experts train', () => {
  it('adds a trained expert that loads through the manifest and scores through the expert Lambda code', async () => {
    // Act
    const report = path.join(dir, 'triage.json');
    const r = await cli([
      ...common(),
      '--target',
      'triage',
      '--kind',
      'binary',
      '--name',
      'triage',
      '--classes',
      '0=healthy,1=abnormal',
      '--source-column',
      'source',
      '--report',
      report,
    ]);

    // Assess: the CLI
    expect(r.stderr).toMatch(/90 rows × 88 features/);
    expect(r.stderr).toMatch(/ONNX verified against onnxruntime/);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as Record<string, any>;
    expect(summary).toMatchObject({ name: 'triage', version: '0.0.2', written: true });
    expect(summary.cv.auc.value).toBeGreaterThan(0.9);
    expect(summary.leaveOneSourceOut.auc.value).toBeGreaterThan(0.9);

    // Assess: the manifest
    const loaded = loadManifest(models);
    const entry = findExpert(loaded.manifest, 'triage');
    expect(entry).toMatchObject({
      version: '0.0.2',
      file: 'experts/triage-0.0.2.onnx',
      task: 'binary',
      extractor: {
        name: loaded.manifest.extractors.ultrasound.name,
        version: loaded.manifest.extractors.ultrasound.version,
      },
      input: { name: 'features', blocks: ['biomarker-stats', 'embedding-mean', 'embedding-max'], dim: 88 },
      output: { name: 'probabilities', labels: ['healthy', 'abnormal'], positive: 'abnormal' },
    });
    expect(entry.card.status).toBe('trained');
    const metrics = entry.card.metrics as Record<string, any>;
    expect(metrics.cv.auc.ci95).toHaveLength(2);
    expect(metrics.cv.scheme).toMatch(/fold column/);
    expect(metrics.leaveOneSourceOut.auc.value).toBeGreaterThan(0.9);
    // Per source, with intervals, and the source check: the synthetic sources hold both classes.
    expect(Object.keys(metrics.cv.perSource)).toEqual(['site-0', 'site-1', 'site-2', 'site-3']);
    expect(metrics.cv.perSource['site-0'].auc.ci95).toHaveLength(2);
    expect(metrics.sourceCheck).toMatchObject({ flags: [], scoredWithin: expect.any(Array) });
    expect(metrics.sourceCheck.sourceClassifier.chance).toBe(0.25);
    expect(metrics.sourceCheck.sourceClassifier.balancedAccuracy.ci95).toHaveLength(2);
    expect(metrics.sourceCheck.labelFromSourceAlone.auc.value).toEqual(expect.any(Number));
    expect(summary.sourceCheck).toEqual({ flags: [] });
    expect(metrics.trainingRows).toBe(90);
    expect(metrics.chosenModel).toMatch(/logistic regression|MLP/);
    expect(metrics.trainingSeconds).toBeGreaterThan(0);
    // The other experts are untouched.
    expect(findExpert(loaded.manifest, 'diagnosis').card.status).toBe('fixture');

    // Assess: the report
    const rep = JSON.parse(readFileSync(report, 'utf8')) as Record<string, any>;
    expect(Object.keys(rep.candidates).sort()).toEqual(['linear', 'mlp']);
    expect(rep.candidates.linear.evaluation.metrics.auc.value).toEqual(expect.any(Number));
    expect(rep.candidates.mlp.evaluation.metrics.auc.value).toEqual(expect.any(Number));
    expect(rep.selection.metric).toBe('auc');
    expect(rep.leaveOneSourceOut.perSource.length).toBe(4);
    expect(rep.sourceCheck.withinSource.length).toBe(4);
    expect(rep.onnx.verification.maxAbsDiff).toBeLessThan(1e-5);
    expect(rep.onnx.sha256).toBe(entry.sha256);

    // Assess: the Lambda's scoring code reads the same features, runs the new ONNX, and labels it.
    const sick = rows.find((x) => x.triage === 1)!;
    const result = await score('triage', sick.features);
    expect(result.expert).toEqual({ name: 'triage', version: '0.0.2', sha256: entry.sha256 });
    expect(result.output).toMatchObject({ kind: 'binary', positive: 'abnormal', label: 'abnormal' });
    const healthy = await score('triage', rows.find((x) => x.triage === 0)!.features);
    expect(healthy.output).toMatchObject({ kind: 'binary', label: 'healthy' });
  });

  it("scores with exactly the trainer's probabilities (severity, ordinal)", async () => {
    // Act
    const out = await runExpertTraining({
      features,
      labels,
      target: 'severity',
      kind: 'ordinal',
      name: 'severity',
      groupColumn: 'group',
      foldColumn: 'fold',
      modelsDir: models,
      bootstrap: 0,
      version: '1.0.0',
      candidates: ['linear'],
    });
    const doc = rows[4]!.features;
    const result = await score('severity', doc);

    // Assess
    const v = featureVector(doc, out.entry.input.blocks);
    const want = predictProba(out.result.model, matrix(1, v.length, Float64Array.from(v))).data;
    const output = result.output;
    if (output.kind !== 'ordinal') throw new Error('expected an ordinal output');
    expect(Object.keys(output.probabilities)).toEqual(['0', '1', '2', '3']);
    ['0', '1', '2', '3'].forEach((g, i) => expect(output.probabilities[g]).toBeCloseTo(want[i]!, 5));
    expect(output.score).toBe(want.indexOf(Math.max(...want)));
    expect(findExpert(loadManifest(models).manifest, 'severity').version).toBe('1.0.0');
  });

  it('--markdown-card writes the card beside the model, with the source check and the command that trained it', async () => {
    // Act
    const r = await cli([
      ...common(),
      '--target',
      'triage',
      '--kind',
      'binary',
      '--name',
      'triage',
      '--classes',
      '0=healthy,1=abnormal',
      '--source-column',
      'source',
      '--candidates',
      'linear',
      '--markdown-card',
    ]);

    // Assess
    expect(r.code).toBe(0);
    const entry = findExpert(loadManifest(models).manifest, 'triage');
    expect(entry.card.cardFile).toBe('experts/triage-0.0.2.md');
    const md = readFileSync(path.join(models, entry.card.cardFile!), 'utf8');
    expect(md.split('\n\n')[1]).toBe(entry.card.summary);
    expect(md).toMatch(
      /^\| source site-0 \| 24 \(healthy 6, abnormal 18\) \| [01]\.\d{3} \[[01]\.\d{3}, [01]\.\d{3}\] \|/m,
    );
    expect(md).toMatch(/## Does it read the source\?\n\nA linear source classifier on the same features/);
    expect(md).toMatch(/No flag raised\./);
    expect(md).toContain(
      `sonomark experts train --features ${features} --labels ${labels} --target triage --kind binary --name triage ` +
        '--classes 0=healthy,1=abnormal --group-column group --fold-column fold --source-column source --candidates linear --bootstrap 100 --markdown-card',
    );
  });

  it('--dry-run trains and reports but writes nothing', async () => {
    const before = readFileSync(path.join(models, 'manifest.json'));
    const r = await cli([
      ...common(),
      '--target',
      'diagnosis',
      '--kind',
      'classification',
      '--name',
      'diagnosis',
      '--dry-run',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'diagnosis', written: false });
    expect(readFileSync(path.join(models, 'manifest.json')).equals(before)).toBe(true);
  });

  it('refuses a models dir whose extractor is not the one the features came from', async () => {
    // Prepare
    const other = path.join(dir, 'other-models');
    writeFixtureModels(other);
    const manifest = JSON.parse(readFileSync(path.join(other, 'manifest.json'), 'utf8'));
    manifest.extractors.ultrasound.version = '9.9.9';
    for (const e of manifest.experts) e.extractor.version = '9.9.9';
    writeFileSync(path.join(other, 'manifest.json'), JSON.stringify(manifest));

    // Act
    const r = await cli([
      ...common().slice(0, -4),
      '--models-dir',
      other,
      '--target',
      'triage',
      '--kind',
      'binary',
      '--name',
      'triage',
      '--bootstrap',
      '0',
    ]);

    // Assess
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /The features come from sonomark-fixture-extractor@0\.0\.1 .* but the manifest in .*other-models runs sonomark-fixture-extractor@9\.9\.9/,
    );
  });

  it('exits 2 on a usage error and 1 on a data error', async () => {
    const noKind = await cli([...common(), '--target', 'x', '--name', 'x']);
    expect(noKind.code).toBe(2);
    expect(noKind.stderr).toMatch(/needs --kind/);
    const badKind = await cli([...common(), '--target', 'triage', '--kind', 'regression', '--name', 'triage']);
    expect(badKind.code).toBe(2);
    expect(badKind.stderr).toMatch(/kind/);
    const badColumn = await cli([...common(), '--target', 'nope', '--kind', 'binary', '--name', 'triage']);
    expect(badColumn.code).toBe(1);
    expect(badColumn.stderr).toMatch(/has no column "nope" \(--target\)/);
  });
});
