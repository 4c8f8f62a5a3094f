/**
 * Synthesizes the CDK app in-process, as `cdk synth` would (minus asset
 * bundling, which local mode does not need), and returns what local mode runs:
 * the pipeline's state-machine definition and the storage resources' shapes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildApp } from '../lib/app';
import { ModelError } from '../core/errors';
import { extractDefinition, type CfnTemplate } from './asl';

export interface SynthesizedWorkflow {
  readonly definition: Record<string, unknown>;
  readonly pipelineTemplate: CfnTemplate;
  readonly storageTemplate: CfnTemplate;
  /** CloudFormation properties of the results table, so the local table has the same keys and indexes. */
  readonly tableProperties: Record<string, unknown>;
}

export function synthesizeWorkflow(opts: { modelsDir?: string } = {}): SynthesizedWorkflow {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'sonomark-synth-'));
  try {
    const { app, storage, pipeline } = buildApp({
      bundling: false,
      // cdk-nag checks the infrastructure in `cdk synth` and the infra tests; local mode only needs the ASL.
      nag: false,
      outdir,
      // Path metadata names each function's role (bindings.ts); the CDK CLI sets this flag, in-process synth must.
      context: { 'aws:cdk:enable-path-metadata': true, ...(opts.modelsDir ? { modelsDir: opts.modelsDir } : {}) },
    });
    const assembly = app.synth();
    const pipelineTemplate = assembly.getStackArtifact(pipeline.artifactId).template as CfnTemplate;
    const storageTemplate = assembly.getStackArtifact(storage.artifactId).template as CfnTemplate;
    const tables = Object.values(storageTemplate.Resources).filter((r) => r.Type === 'AWS::DynamoDB::Table');
    if (tables.length !== 1)
      throw new ModelError(`Expected one DynamoDB table in the storage stack, found ${tables.length}.`);
    return {
      definition: extractDefinition(pipelineTemplate),
      pipelineTemplate,
      storageTemplate,
      tableProperties: tables[0]!.Properties ?? {},
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
