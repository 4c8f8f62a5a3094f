/**
 * Local mode enforces the deployed permissions (local/iam-guard.ts): the same
 * run that passes with the synthesized templates fails, as it would in AWS, when
 * a role lacks a permission its handler uses. The case is the live bug of
 * cb2d16b: RecordFailure without s3:GetObject on features/ cannot read the
 * extractor's error document and records "exit code 1" instead of the reason.
 */
import { readFileSync } from 'node:fs';
import { localPermissions } from '../../local/iam-policy';
import { synthesizeWorkflow } from '../../local/synth';
import { LocalWorkflow } from '../../local/workflow';
import { generateClip, tempDir, writeFile } from './helpers';

jest.setTimeout(180_000);

type Statement = { Action?: string | string[]; Resource?: unknown };

describe('local mode with the IAM policies of the templates', () => {
  const work = tempDir();
  const good = generateClip(work, 'iam-good.mp4', 8, ['-pix_fmt', 'yuv420p']);
  // An mp4 cut short: the extractor fails and writes its reason next to the features key.
  const truncated = writeFile(work, 'iam-truncated.mp4', readFileSync(good).subarray(0, 1500));
  // One in-process synthesis for the tests that edit a template (each edits its own copy).
  let synthesized: ReturnType<typeof synthesizeWorkflow> | undefined;
  const synth = () => structuredClone((synthesized ??= synthesizeWorkflow()));

  it('passes with the real templates: a decode failure is recorded with its own reason', async () => {
    const workflow = await LocalWorkflow.start({ studyId: 'iam-real' });
    try {
      const ok = await workflow.analyze(good);
      const bad = await workflow.analyze(truncated);
      expect(ok.status).toBe('completed');
      expect(bad).toMatchObject({ status: 'failed', error: { code: 'DECODE_FAILED' } });
      expect(bad.error!.message).toMatch(/could not be decoded/);
    } finally {
      await workflow.close();
    }
  });

  it("fails as AWS did when RecordFailure's role lacks its S3 read (the template before cb2d16b)", async () => {
    // Prepare: the synthesized pipeline template, RecordFailure's S3 statement removed.
    const { pipelineTemplate: template, storageTemplate, localNames } = synth();
    const [policyId, policy] = Object.entries(template.Resources).find(
      ([id, r]) => r.Type === 'AWS::IAM::Policy' && id.startsWith('RecordFailureRole'),
    )!;
    const doc = policy.Properties!.PolicyDocument as { Statement: Statement[] };
    const isS3Read = (s: Statement) => [s.Action ?? []].flat().some((a) => a.startsWith('s3:'));
    expect(doc.Statement.filter(isS3Read)).toHaveLength(1);
    doc.Statement = doc.Statement.filter((s) => !isS3Read(s));
    const permissions = localPermissions(template, storageTemplate, localNames);
    expect(policyId).toMatch(/^RecordFailureRole/);

    // Act
    const workflow = await LocalWorkflow.start({ studyId: 'iam-missing', permissions });
    try {
      const ok = await workflow.analyze(good);
      const bad = await workflow.analyze(truncated);

      // Assess: the happy path never needs the read; the failure loses its reason to the access denial.
      expect(ok.status).toBe('completed');
      expect(bad).toMatchObject({ status: 'failed', error: { code: 'TASK_FAILED' } });
      expect(bad.error!.message).toMatch(/exit code 1/);
    } finally {
      await workflow.close();
    }
  });

  it("fails a handler outright when its role cannot reach the table: the expert's denied write fails the scan", async () => {
    // Prepare: the cached definition's permissions, the expert roles without DynamoDB.
    const { pipelineTemplate, storageTemplate, localNames } = synth();
    const base = localPermissions(pipelineTemplate, storageTemplate, localNames);
    const functions = Object.fromEntries(
      Object.entries(base.functions).map(([id, p]) => [
        id,
        id.startsWith('Expert')
          ? { ...p, statements: p.statements.filter((s) => !(s.Action ?? []).some((a) => a.startsWith('dynamodb:'))) }
          : p,
      ]),
    );
    const workflow = await LocalWorkflow.start({ studyId: 'iam-expert', permissions: { ...base, functions } });
    try {
      // Act
      const r = await workflow.analyze(good, 'iam-expert.mp4');

      // Assess
      expect(r.status).toBe('failed');
      expect(r.error!.message).toMatch(/AccessDeniedException.*not authorized to perform: dynamodb:/);
    } finally {
      await workflow.close();
    }
  });
});
