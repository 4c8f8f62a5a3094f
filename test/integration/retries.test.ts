/**
 * Retries run for real in local mode: the synthesized Retry blocks (scaled to
 * milliseconds, local/retry.ts) through aws-local-stepfunctions, s3rver and dynalite,
 * with faults injected where they arise (local/faults.ts): DynamoDB throttling and S3
 * errors answered to the SDK by middleware (the SDK retries them first, as in AWS), and
 * handlers throwing a transient error N times. Transient faults recover (COMPLETED,
 * retries counted); permanent ones, and transient ones that outlast every retry, are
 * recorded FAILED with their reason; no result is written twice.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { STATE } from '../../core/contract';
import { expertVersionSk, scanPk, TABLE_KEYS } from '../../core/keys';
import type { FaultPlan } from '../../local/faults';
import { LOCAL_TABLE, LocalWorkflow, type AnalyzeResult } from '../../local/workflow';
import { generateClip, tempDir } from './helpers';
import { expertsFor } from '../../core/manifest';

jest.setTimeout(180_000);

const work = tempDir();
let clipCounter = 0;
/** A clip of its own bytes (its own scan): 12 frames of a moving pattern, starting at a different frame. */
function freshClip(): string {
  clipCounter += 1;
  return generateClip(work, `retry-${clipCounter}.mp4`, 12 + clipCounter, ['-pix_fmt', 'yuv420p']);
}

async function withWorkflow(faults: FaultPlan, fn: (w: LocalWorkflow) => Promise<void>): Promise<void> {
  const workflow = await LocalWorkflow.start({ studyId: 'it-retries', faults });
  try {
    await fn(workflow);
  } finally {
    await workflow.close();
  }
}

/** Every item stored under the scan, by sort key: one scan item, one per expert, no duplicates. */
async function itemsOf(workflow: LocalWorkflow, scanId: string): Promise<string[]> {
  const out = await workflow.services.doc.send(
    new QueryCommand({
      TableName: LOCAL_TABLE,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey },
      ExpressionAttributeValues: { ':pk': scanPk(workflow.siteId, scanId) },
    }),
  );
  return (out.Items ?? []).map((i) => String(i[TABLE_KEYS.sortKey])).sort();
}

function expectCompleted(r: AnalyzeResult): void {
  if (r.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(r.error)}`);
}

async function expectOneResultPerExpert(workflow: LocalWorkflow, scanId: string): Promise<void> {
  const sks = await itemsOf(workflow, scanId);
  const experts = sks.filter((sk) => sk.startsWith('EXPERT#'));
  expect(experts).toEqual(
    expertsFor(workflow.loaded.manifest, 'ultrasound')
      .map((e) => expertVersionSk(e.name, e.version))
      .sort(),
  );
  expect(new Set(sks).size).toBe(sks.length);
}

describe('transient faults recover through the Retry blocks', () => {
  it('DynamoDB throttling of the claim, beyond the SDK retries: Validate is retried and the scan completes', async () => {
    await withWorkflow(
      // The SDK makes 3 attempts; 4 throttles make Validate fail once with Sonomark.TransientError.
      { sdk: [{ service: 'dynamodb', operation: 'PutItem', kind: 'throttle', times: 4 }] },
      async (workflow) => {
        // Act
        const r = await workflow.analyze(freshClip());
        // Assess
        expectCompleted(r);
        expect(workflow.faults.injected).toEqual({ 'dynamodb:PutItem': 4 });
        expect(r.retries).toEqual({ [STATE.validate]: 1 });
        await expectOneResultPerExpert(workflow, r.scanId!);
      },
    );
  });

  it('S3 500s on reading the upload: retried, completed, one result per expert', async () => {
    await withWorkflow(
      { sdk: [{ service: 's3', operation: 'GetObject', kind: 'server-error', times: 7, keyPrefix: 'uploads/' }] },
      async (workflow) => {
        // Act
        const r = await workflow.analyze(freshClip());
        // Assess
        expectCompleted(r);
        expect(workflow.faults.injected).toEqual({ 's3:GetObject': 7 });
        // 7 failed attempts at 3 SDK attempts per run of the state: it failed twice, then worked.
        expect(r.retries?.[STATE.validate]).toBe(2);
        await expectOneResultPerExpert(workflow, r.scanId!);
      },
    );
  });

  it('an expert throwing a transient error 3 times: ScoreExpert is retried 3 times, no duplicate result', async () => {
    await withWorkflow({ handlers: [{ role: 'expert', expert: 'diagnosis', times: 3 }] }, async (workflow) => {
      // Act
      const r = await workflow.analyze(freshClip());
      // Assess
      expectCompleted(r);
      expect(workflow.faults.injected).toEqual({ 'handler:expert:diagnosis': 3 });
      expect(r.retries).toEqual({ [STATE.scoreExpert]: 3 });
      await expectOneResultPerExpert(workflow, r.scanId!);
    });
  });

  it('the extractor failing transiently is run again, and the scan completes', async () => {
    await withWorkflow({ handlers: [{ role: 'extract', times: 2 }] }, async (workflow) => {
      // Act
      const r = await workflow.analyze(freshClip());
      // Assess
      expectCompleted(r);
      expect(r.retries).toEqual({ [STATE.extract]: 2 });
    });
  });
});

describe('GPU capacity', () => {
  it('a job the spot queue cancels for want of capacity is resubmitted on demand, and the scan completes', async () => {
    await withWorkflow({ handlers: [{ role: 'extract', kind: 'no-spot-capacity', times: 1 }] }, async (workflow) => {
      // Act
      const r = await workflow.analyze(freshClip());
      // Assess
      expectCompleted(r);
      expect(workflow.faults.injected).toEqual({ 'batch:no-spot-capacity': 1 });
      // Both submits ran (the spot one failed, the on-demand one worked); neither was retried.
      expect(Object.keys(r.timings.states)).toEqual(expect.arrayContaining([STATE.extract, STATE.extractOnDemand]));
      expect(r.retries).toEqual({});
      await expectOneResultPerExpert(workflow, r.scanId!);
    });
  });
});

describe('permanent faults are recorded FAILED with their reason', () => {
  it('access denied to the features is not retried: FAILED, naming AccessDenied', async () => {
    await withWorkflow(
      { sdk: [{ service: 's3', operation: 'GetObject', kind: 'access-denied', times: 1000, keyPrefix: 'features/' }] },
      async (workflow) => {
        // Act
        const r = await workflow.analyze(freshClip());
        // Assess
        expect(r.status).toBe('failed');
        expect(r.error?.message).toMatch(/AccessDenied/);
        // At most one attempt per expert, plus RecordFailure's read of the extractor's error
        // document (also under features/): neither the SDK nor the state machine retried a 403.
        expect(workflow.faults.injected['s3:GetObject']).toBeLessThanOrEqual(
          expertsFor(workflow.loaded.manifest, 'ultrasound').length + 1,
        );
        expect(r.retries).toEqual({});
        const sks = await itemsOf(workflow, r.scanId!);
        expect(sks.filter((sk) => sk.startsWith('EXPERT#'))).toEqual([]);
      },
    );
  });

  it('a transient fault that outlasts every retry is recorded FAILED as RETRIES_EXHAUSTED', async () => {
    await withWorkflow({ handlers: [{ role: 'finalize', times: 1000 }] }, async (workflow) => {
      // Act
      const r = await workflow.analyze(freshClip());
      // Assess
      expect(r.status).toBe('failed');
      expect(r.error).toMatchObject({ code: 'RETRIES_EXHAUSTED' });
      expect(r.error?.message).toMatch(/Sonomark\.TransientError/);
      // The TransientError retrier's MaxAttempts (workflow.ts TRANSIENT_RETRY): 8 retries, 9 runs.
      expect(r.retries).toEqual({ [STATE.finalize]: 8 });
      expect(workflow.faults.injected).toEqual({ 'handler:finalize': 9 });
    });
  });
});
