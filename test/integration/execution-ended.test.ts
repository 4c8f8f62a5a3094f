/**
 * Nothing stuck, through the real local workflow (the synthesized state machine, s3rver,
 * dynalite, ffmpeg, ONNX): an execution aborted during Extract is recorded FAILED by the
 * same ExecutionEnded handler the cloud's rule runs, and the same bytes are analysed
 * again; a scan RUNNING under an expired lease is claimed again; a live lease is respected.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { claimScan, getScan, putExecutionPointer } from '../../core/results-store';
import { scanIdFromContent } from '../../core/scan-id';
import { LOCAL_TABLE, localExecutionId, LocalWorkflow } from '../../local/workflow';
import { STATE } from '../../core/contract';
import { executionEnded } from '../../lambdas/execution-ended/execution-ended';
import { generateClip, tempDir } from './helpers';

jest.setTimeout(180_000);

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('local workflow: executions that end without finishing', () => {
  const work = tempDir();
  const dataDir = tempDir('sonomark-ended-data-');
  let workflow: LocalWorkflow;

  beforeAll(async () => {
    workflow = await LocalWorkflow.start({ dataDir, studyId: 'it-ended' });
  });
  afterAll(async () => {
    await workflow?.close();
  });

  /** A RUNNING claim of `file`'s scan held by `executionId` until `expiresAt`, as Validate writes it. */
  async function claimAs(file: string, executionId: string, expiresAt: string): Promise<string> {
    const scanId = scanIdFromContent('local', 'it-ended', sha256(file));
    await putExecutionPointer(workflow.services.doc, LOCAL_TABLE, executionId, workflow.siteId, scanId);
    const claimed = await claimScan(workflow.services.doc, LOCAL_TABLE, {
      scanId,
      siteId: 'local',
      studyId: 'it-ended',
      bucket: 'b'.repeat(3),
      key: 'uploads/local/it-ended/x.avi',
      versionId: '',
      sha256: sha256(file),
      size: 1,
      extractor: { name: 'x', version: '1.0.0', sha256: '0'.repeat(64) },
      receivedAt: new Date().toISOString(),
      lease: { executionId, expiresAt },
    });
    expect(claimed.claimed).toBe(true);
    return scanId;
  }

  it('aborted during Extract: FAILED (EXECUTION_ABORTED) after the task settles; the same bytes then complete', async () => {
    // Prepare
    const clip = generateClip(work, 'aborted.avi', 30);
    // Act
    const aborted = await workflow.analyze(clip, 'aborted.avi', {
      onStateEntered: (state, executionId) => {
        if (state === STATE.extract) workflow.abort(executionId);
      },
    });
    // Assess
    expect(aborted.execution?.status).toBe('ABORTED');
    expect(aborted).toMatchObject({ status: 'failed', error: { code: 'EXECUTION_ABORTED' } });
    const stored = await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, aborted.scanId!);
    expect(stored).toMatchObject({ status: 'FAILED', attempts: 1, lease: { executionId: aborted.execution!.id } });

    // Act: the same bytes again (a re-upload).
    const again = await workflow.analyze(clip, 'aborted-again.avi');
    // Assess
    expect(again).toMatchObject({ scanId: aborted.scanId, status: 'completed', reused: false });
    expect(await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, aborted.scanId!)).toMatchObject({
      status: 'COMPLETED',
      attempts: 2,
    });
  });

  it('aborted during Validate: the claim it was making is recorded once Validate settles, so a re-upload runs', async () => {
    // Prepare
    const clip = generateClip(work, 'aborted-in-validate.avi', 18);
    const scanId = scanIdFromContent('local', 'it-ended', sha256(clip));
    // Act
    const aborted = await workflow.analyze(clip, 'aborted-in-validate.avi', {
      onStateEntered: (state, executionId) => {
        if (state === STATE.validate) workflow.abort(executionId);
      },
    });
    // Assess: no Extract ran; the claim Validate made is FAILED, not RUNNING.
    expect(aborted).toMatchObject({ status: 'failed', error: { code: 'EXECUTION_ABORTED' } });
    expect(aborted.timings.states[STATE.extract]).toBeUndefined();
    expect(await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, scanId)).toMatchObject({
      status: 'FAILED',
      error: { code: 'EXECUTION_ABORTED' },
    });
    expect(await workflow.analyze(clip)).toMatchObject({ scanId, status: 'completed', reused: false });
  });

  it('concurrent executions: aborting one leaves the other to complete', async () => {
    // Prepare
    const a = generateClip(work, 'concurrent-a.avi', 22);
    const b = generateClip(work, 'concurrent-b.avi', 24);
    // Act
    const [stopped, finished] = await Promise.all([
      workflow.analyze(a, 'concurrent-a.avi', {
        onStateEntered: (state, executionId) => {
          if (state === STATE.extract) workflow.abort(executionId);
        },
      }),
      workflow.analyze(b, 'concurrent-b.avi'),
    ]);
    // Assess
    expect(stopped).toMatchObject({ status: 'failed', error: { code: 'EXECUTION_ABORTED' } });
    expect(finished).toMatchObject({ status: 'completed', execution: { status: 'SUCCEEDED' } });
  });

  it('a scan RUNNING under an expired lease (its execution died) is claimed again and completes', async () => {
    // Prepare
    const clip = generateClip(work, 'expired.avi', 12);
    const scanId = await claimAs(clip, localExecutionId('crashed'), new Date(Date.now() - 1000).toISOString());
    // Act
    const r = await workflow.analyze(clip);
    // Assess
    expect(r).toMatchObject({ scanId, status: 'completed', reused: false });
  });

  it('a scan RUNNING under a live lease is skipped, and the ended event of another execution leaves it alone', async () => {
    // Prepare
    const clip = generateClip(work, 'live.avi', 14);
    const holder = localExecutionId('still-running');
    const scanId = await claimAs(clip, holder, new Date(Date.now() + 3600_000).toISOString());
    // Act
    const r = await workflow.analyze(clip);
    // Assess: skipped ("in progress").
    expect(r.reused).toBe(true);
    expect(r.execution?.status).toBe('SUCCEEDED');
    // Act: an ended event for the skipping execution (its pointer names this scan).
    const ended = await executionEnded(
      {
        'detail-type': 'Step Functions Execution Status Change',
        source: 'aws.states',
        detail: { executionArn: r.execution!.id, status: 'ABORTED' },
      },
      { doc: workflow.services.doc, table: LOCAL_TABLE },
    );
    // Assess: nothing recorded, the holder's claim intact.
    expect(ended.result).toEqual({ recorded: false, reason: 'not-running-under-execution', scanId });
    expect(await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, scanId)).toMatchObject({
      status: 'RUNNING',
      lease: { executionId: holder },
    });
  });

  it('on start-up under the lock, scans left RUNNING by a dead run are recorded FAILED (INTERRUPTED)', async () => {
    // Prepare: a live lease, but no process runs it (this workflow is closed and restarted).
    const clip = generateClip(work, 'orphan.avi', 16);
    const scanId = await claimAs(clip, localExecutionId('killed-run'), new Date(Date.now() + 3600_000).toISOString());
    await workflow.close();
    // Act
    workflow = await LocalWorkflow.start({ dataDir, studyId: 'it-ended' });
    // Assess
    expect(await getScan(workflow.services.doc, LOCAL_TABLE, workflow.siteId, scanId)).toMatchObject({
      status: 'FAILED',
      error: { code: 'INTERRUPTED' },
    });
    expect((await workflow.analyze(clip)).status).toBe('completed');
  });
});
