/**
 * Synthesizes the CDK app in-process, as `cdk synth` would (minus asset
 * bundling, which local mode does not need), and returns what local mode runs:
 * the pipeline's state-machine definition and the storage resources' shapes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CfnElement } from 'aws-cdk-lib';
import { buildApp } from '../lib/app';
import { ModelError } from '../core/errors';
import { extractDefinition, type CfnTemplate } from './asl';
import { localPermissions, type LocalPermissions, type LocalResourceNames } from './iam-policy';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE, LOCAL_UPLOADS_BUCKET } from './names';

export interface SynthesizedWorkflow {
  readonly definition: Record<string, unknown>;
  readonly pipelineTemplate: CfnTemplate;
  readonly storageTemplate: CfnTemplate;
  /** CloudFormation properties of the results table, so the local table has the same keys and indexes. */
  readonly tableProperties: Record<string, unknown>;
  /** Every workflow role's IAM policy, resolved to local ARNs (iam-policy.ts): local mode enforces it. */
  readonly permissions: LocalPermissions;
  /** Which storage-stack logical ids are the local buckets and table (for localPermissions of an edited template). */
  readonly localNames: LocalResourceNames;
}

export function synthesizeWorkflow(
  opts: {
    modelsDir?: string;
    /** CDK context over cdk.json's (e.g. `{ computeMode: 'lambda' }`). @default none */
    context?: Record<string, unknown>;
  } = {},
): SynthesizedWorkflow {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'sonomark-synth-'));
  try {
    const { app, storage, pipeline } = buildApp({
      bundling: false,
      // cdk-nag checks the infrastructure in `cdk synth` and the infra tests; local mode only needs the ASL.
      nag: false,
      outdir,
      // Path metadata names each function's role (bindings.ts); the CDK CLI sets this flag, in-process synth must.
      context: {
        ...opts.context,
        'aws:cdk:enable-path-metadata': true,
        ...(opts.modelsDir ? { modelsDir: opts.modelsDir } : {}),
      },
    });
    const assembly = app.synth();
    const pipelineTemplate = assembly.getStackArtifact(pipeline.artifactId).template as CfnTemplate;
    const storageTemplate = assembly.getStackArtifact(storage.artifactId).template as CfnTemplate;
    const tables = Object.values(storageTemplate.Resources).filter((r) => r.Type === 'AWS::DynamoDB::Table');
    if (tables.length !== 1)
      throw new ModelError(`Expected one DynamoDB table in the storage stack, found ${tables.length}.`);
    const idOf = (c: { node: { defaultChild?: unknown } }) => storage.getLogicalId(c.node.defaultChild as CfnElement);
    const localNames: LocalResourceNames = {
      buckets: {
        [idOf(storage.uploadsBucket)]: LOCAL_UPLOADS_BUCKET,
        [idOf(storage.artifactsBucket)]: LOCAL_ARTIFACTS_BUCKET,
      },
      tables: { [idOf(storage.resultsTable)]: LOCAL_TABLE },
    };
    return {
      permissions: localPermissions(pipelineTemplate, storageTemplate, localNames),
      localNames,
      definition: extractDefinition(pipelineTemplate),
      pipelineTemplate,
      storageTemplate,
      tableProperties: tables[0]!.Properties ?? {},
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
