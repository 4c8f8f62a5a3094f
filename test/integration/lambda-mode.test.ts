/**
 * `computeMode: 'lambda'` end to end in local mode: the lambda-mode definition (Extract is a
 * lambda:invoke of the extractor's function, no Batch states) synthesized and run as is, with
 * the extractor's Lambda handler code (gpu-tasks/feature-extractor/src/lambda.ts) bound to the
 * function under its role's IAM policy from the template, on a real clip.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { readFileSync } from 'node:fs';
import { STATE } from '../../core/contract';
import { scanPk, TABLE_KEYS } from '../../core/keys';
import { FeaturesDocument } from '../../core/schemas';
import { LOCAL_TABLE, LocalWorkflow } from '../../local/workflow';
import { REAL_CLIPS, tempDir, writeFile } from './helpers';
import { expertsFor } from '../../core/manifest';

jest.setTimeout(240_000);

describe("local workflow, computeMode 'lambda'", () => {
  let workflow: LocalWorkflow;
  const work = tempDir();

  beforeAll(async () => {
    workflow = await LocalWorkflow.start({
      studyId: 'it-lambda',
      context: { sonomark: { computeMode: 'lambda' } },
      cacheDir: tempDir(),
    });
  });
  afterAll(async () => {
    await workflow?.close();
  });

  it('runs the lambda-mode definition: Extract invokes a function, and no Batch state exists', () => {
    // Assess
    const states = workflow.executedDefinition.States as Record<string, Record<string, unknown>>;
    expect(states[STATE.extract]).toMatchObject({ Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke' });
    expect(JSON.stringify(states)).not.toContain('batch:');
    expect(states[STATE.extractOnDemand]).toBeUndefined();
    expect(states[STATE.extractFailed]).toBeUndefined();
  });

  it('analyses a real clip end to end and prices its extraction as Lambda GB-seconds', async () => {
    // Act
    const r = await workflow.analyze(REAL_CLIPS.mp4);

    // Assess
    if (r.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(r.error)}`);
    expect(FeaturesDocument.safeParse(r.features).success).toBe(true);
    expect(r.features!.sampling.decodedFrames).toBeGreaterThan(1);
    expect(Object.keys(r.experts).sort()).toEqual(
      expertsFor(workflow.loaded.manifest, 'ultrasound')
        .map((e) => e.name)
        .sort(),
    );
    expect(r.timings.states[STATE.extract]).toBeGreaterThan(0);
    const items = await workflow.services.doc.send(
      new QueryCommand({
        TableName: LOCAL_TABLE,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey },
        ExpressionAttributeValues: { ':pk': scanPk('local', r.scanId!) },
      }),
    );
    const scan = (items.Items ?? []).find((i) => i[TABLE_KEYS.sortKey] === 'SCAN');
    const cost = scan?.usage?.estimatedCost as { basis: string; extractorUsd: number } | undefined;
    expect(cost?.basis).toMatch(/extractor at Lambda arm64 2048 MB/);
    expect(cost!.extractorUsd).toBeGreaterThan(0);
  });

  it("records a clip the extractor cannot decode as FAILED with the extractor's own reason", async () => {
    // Prepare: an mp4 cut off after its first kilobytes passes Validate's header check, then fails to decode.
    const truncated = writeFile(work, 'truncated.mp4', readFileSync(REAL_CLIPS.mp4).subarray(0, 3000));

    // Act
    const r = await workflow.analyze(truncated);

    // Assess: the error document the handler wrote (runExtractJob), read by RecordFailure.
    expect(r).toMatchObject({ status: 'failed', error: { code: 'DECODE_FAILED' } });
    expect(r.error!.message).not.toContain('truncated.mp4');
  });
});
