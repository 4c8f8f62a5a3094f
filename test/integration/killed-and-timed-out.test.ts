/**
 * Two faults the cloud meets and a local run never did, through the real local workflow
 * (synthesized definition with its Retry blocks scaled to milliseconds, s3rver, dynalite,
 * ffmpeg, ONNX):
 * - the extractor's decoder (ffmpeg) killed mid-clip from outside (the OOM killer, an
 *   operator): the extraction is retried and the scan completes; killed every time, the
 *   scan is recorded FAILED naming the kill, never left RUNNING.
 * - a Lambda invocation that runs past its timeout (Sandbox.Timedout, as Step Functions
 *   reports it): retried twice (workflow.ts LAMBDA_TIMEOUT_RETRY), no result written twice;
 *   timing out every time, the scan is recorded FAILED with code TIMEOUT.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { STATE } from '../../core/contract';
import { scanPk, TABLE_KEYS } from '../../core/keys';
import { getScan } from '../../core/results-store';
import { killDecoders, runningDecoderCount } from '../../gpu-tasks/feature-extractor/src/decode';
import type { FaultPlan } from '../../local/faults';
import { LOCAL_TABLE, LocalWorkflow, type AnalyzeResult } from '../../local/workflow';
import { generateClip, tempDir } from './helpers';
import { expertsFor } from '../../core/manifest';

jest.setTimeout(180_000);

const work = tempDir();
let clipCounter = 0;
/** A clip of its own bytes (its own scan), long enough that its decode can be caught running. */
function freshClip(): string {
  clipCounter += 1;
  return generateClip(work, `killed-${clipCounter}.mp4`, 150 + clipCounter, ['-pix_fmt', 'yuv420p']);
}

async function withWorkflow(faults: FaultPlan, fn: (w: LocalWorkflow) => Promise<void>): Promise<void> {
  const workflow = await LocalWorkflow.start({ studyId: 'it-killed', faults });
  try {
    await fn(workflow);
  } finally {
    await workflow.close();
  }
}

/**
 * Kills every ffmpeg decoder it sees running (SIGKILL, from outside the decode), at most
 * `times` times, polling every millisecond until stopped. Returns the number killed.
 */
function decoderKiller(times: number): { stop: () => number } {
  let kills = 0;
  const timer = setInterval(() => {
    if (kills < times && runningDecoderCount() > 0) kills += killDecoders();
  }, 1);
  return {
    stop: () => {
      clearInterval(timer);
      return kills;
    },
  };
}

async function expectOneResultPerExpert(workflow: LocalWorkflow, scanId: string): Promise<void> {
  const out = await workflow.services.doc.send(
    new QueryCommand({
      TableName: LOCAL_TABLE,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey },
      ExpressionAttributeValues: { ':pk': scanPk(workflow.siteId, scanId) },
    }),
  );
  const sks = (out.Items ?? []).map((i) => String(i[TABLE_KEYS.sortKey]));
  const experts = sks.filter((sk) => sk.startsWith('EXPERT#')).map((sk) => sk.split('#')[1]);
  expect(experts.sort()).toEqual(
    expertsFor(workflow.loaded.manifest, 'ultrasound')
      .map((e) => e.name)
      .sort(),
  );
}

function expectCompleted(r: AnalyzeResult): void {
  if (r.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(r.error)}`);
}

describe('the extractor process killed mid-clip', () => {
  it('killed once: Extract is run again and the scan completes', async () => {
    await withWorkflow({}, async (workflow) => {
      // Prepare
      const killer = decoderKiller(1);
      // Act
      const r = await workflow.analyze(freshClip());
      const kills = killer.stop();
      // Assess
      expect(kills).toBe(1);
      expectCompleted(r);
      expect(r.retries?.[STATE.extract]).toBe(1);
      await expectOneResultPerExpert(workflow, r.scanId!);
    });
  });

  it('killed every time: FAILED with a reason naming the kill once retries run out, never RUNNING', async () => {
    await withWorkflow({}, async (workflow) => {
      // Prepare
      const killer = decoderKiller(Number.POSITIVE_INFINITY);
      // Act
      const r = await workflow.analyze(freshClip());
      const kills = killer.stop();
      // Assess
      expect(r.status).toBe('failed');
      expect(r.error?.code).toBe('RETRIES_EXHAUSTED');
      expect(r.error?.message).toMatch(/decoder \(ffmpeg\) was killed by SIGKILL/);
      // The TransientError retrier's 8 retries: 9 extractions, each with its decoder killed
      // (an extraction may start ffmpeg more than once: the option probe of an old build).
      expect(r.retries).toEqual({ [STATE.extract]: 8 });
      expect(kills).toBeGreaterThanOrEqual(9);
      expect(await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, r.scanId!)).toMatchObject({
        status: 'FAILED',
        error: { code: 'RETRIES_EXHAUSTED' },
      });
      expect(runningDecoderCount()).toBe(0);
    });
  });
});

describe('a Lambda invocation that runs past its timeout (Sandbox.Timedout)', () => {
  it('an expert timing out once is retried; one result per expert, though the timed-out run wrote its own', async () => {
    await withWorkflow(
      { handlers: [{ role: 'expert', expert: 'diagnosis', kind: 'timeout', times: 1 }] },
      async (w) => {
        // Act
        const r = await w.analyze(freshClip());
        // Assess
        expectCompleted(r);
        expect(w.faults.injected).toEqual({ 'timeout:expert:diagnosis': 1 });
        expect(r.retries).toEqual({ [STATE.scoreExpert]: 1 });
        await expectOneResultPerExpert(w, r.scanId!);
      },
    );
  });

  it('an expert timing out every time: retried twice, then FAILED with code TIMEOUT and the runtime message', async () => {
    await withWorkflow(
      { handlers: [{ role: 'expert', expert: 'diagnosis', kind: 'timeout', times: 1000, timeoutSeconds: 60 }] },
      async (w) => {
        // Act
        const r = await w.analyze(freshClip());
        // Assess
        expect(r.status).toBe('failed');
        expect(r.error?.code).toBe('TIMEOUT');
        expect(r.error?.message).toMatch(/Sandbox\.Timedout.*Task timed out after 60\.00 seconds/);
        expect(r.retries).toEqual({ [STATE.scoreExpert]: 2 });
        expect(w.faults.injected).toEqual({ 'timeout:expert:diagnosis': 3 });
        expect(await getScan(w.services.doc, LOCAL_TABLE, w.siteId, r.scanId!)).toMatchObject({
          status: 'FAILED',
          error: { code: 'TIMEOUT' },
        });
      },
    );
  });

  it('Finalize timing out every time after its write landed: the scan stays COMPLETED, the execution FAILED', async () => {
    // A timed-out invocation's writes stand (Lambda stops the function, it does not undo it): the
    // COMPLETED record Finalize wrote is not downgraded by RecordFailure, and the execution ends
    // FAILED, so the executions-failed alarm still fires.
    await withWorkflow({ handlers: [{ role: 'finalize', kind: 'timeout', times: 1000 }] }, async (w) => {
      // Act
      const r = await w.analyze(freshClip());
      // Assess
      expect(r.retries).toEqual({ [STATE.finalize]: 2 });
      expect(w.faults.injected).toEqual({ 'timeout:finalize': 3 });
      expect(r.execution?.status).toBe('FAILED');
      expectCompleted(r);
      await expectOneResultPerExpert(w, r.scanId!);
    });
  });
});
