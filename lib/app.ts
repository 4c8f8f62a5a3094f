/**
 * Builds the sonomark CDK app: used by bin/app.ts (cdk synth/deploy), the infra
 * tests, and local mode (which synthesizes the pipeline in-process, without
 * bundling, to extract the state machine's ASL).
 */
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { configFromContext, type SonomarkConfig } from './config';
import { addNagChecks } from './nag';
import { modelsDirFromEnv, PACKAGE_ROOT } from '../core/paths';
import { ApiStack } from './stacks/api-stack';
import { CohortStack } from './stacks/cohort-stack';
import { PipelineStack } from './stacks/pipeline-stack';
import { StorageStack } from './stacks/storage-stack';
import { TriggerStack } from './stacks/trigger-stack';

export const STACK_IDS = {
  storage: 'SonomarkStorage',
  pipeline: 'SonomarkPipeline',
  trigger: 'SonomarkTrigger',
  api: 'SonomarkApi',
  cohort: 'SonomarkCohort',
} as const;

export interface BuildAppOptions {
  /**
   * Run esbuild for the Lambda assets. `false` sets `aws:cdk:bundling-stacks` to
   * [] so synthesis is fast (asset contents are then placeholders).
   * @default true
   */
  readonly bundling?: boolean;
  /** Extra CDK context (e.g. `{ sonomark: {...} }`), merged over cdk.json's. */
  readonly context?: Record<string, unknown>;
  /** Cloud assembly directory. @default - the CDK CLI's, or a temp dir */
  readonly outdir?: string;
  /**
   * Models directory (manifest.json + ONNX files).
   * @default context `modelsDir`, else env MODELS_DIR, else <package>/models
   */
  readonly modelsDir?: string;
  /** Register the cdk-nag AwsSolutions and HIPAA Security packs. @default true */
  readonly nag?: boolean;
}

export interface BuiltApp {
  readonly app: App;
  readonly config: SonomarkConfig;
  readonly storage: StorageStack;
  readonly pipeline: PipelineStack;
  readonly trigger: TriggerStack;
  /** Cohort runs: a Distributed Map over a manifest or prefix, on schedules (config `cohorts`) or on demand. */
  readonly cohort: CohortStack;
  /** Only when the site registry (config `sites`) has sites. */
  readonly api?: ApiStack;
}

function resolveModelsDir(explicit: string | undefined): string {
  const dir = explicit ?? modelsDirFromEnv();
  return path.resolve(PACKAGE_ROOT, dir);
}

export function buildApp(opts: BuildAppOptions = {}): BuiltApp {
  const context: Record<string, unknown> = { ...opts.context };
  if (opts.bundling === false) context['aws:cdk:bundling-stacks'] = [];
  const app = new App({ context, ...(opts.outdir ? { outdir: opts.outdir } : {}) });
  const config = configFromContext(app.node);

  const storage = new StorageStack(app, STACK_IDS.storage, {
    description: 'sonomark: clips, features and results (retained)',
  });
  const pipeline = new PipelineStack(app, STACK_IDS.pipeline, {
    description: 'sonomark: validate → GPU feature extraction → expert scoring workflow',
    config,
    modelsDir: resolveModelsDir(opts.modelsDir ?? (app.node.tryGetContext('modelsDir') as string | undefined)),
    key: storage.key,
    uploadsBucket: storage.uploadsBucket,
    artifactsBucket: storage.artifactsBucket,
    resultsTable: storage.resultsTable,
  });
  pipeline.addStackDependency(storage);
  const trigger = new TriggerStack(app, STACK_IDS.trigger, {
    description: 'sonomark: S3 upload event → StartExecution (idempotent execution name)',
    config,
    key: storage.key,
    uploadsBucket: storage.uploadsBucket,
    stateMachine: pipeline.workflow.stateMachine,
    alarmTopic: pipeline.alarmTopic,
  });
  trigger.addStackDependency(pipeline);
  const cohort = new CohortStack(app, STACK_IDS.cohort, {
    description: 'sonomark: cohort runs (Distributed Map; score stored features, extract the rest in batches)',
    config,
    key: storage.key,
    uploadsBucket: storage.uploadsBucket,
    artifactsBucket: storage.artifactsBucket,
    resultsTable: storage.resultsTable,
    pipeline,
  });
  cohort.addStackDependency(pipeline);
  let api: ApiStack | undefined;
  if (config.sites.length > 0) {
    api = new ApiStack(app, STACK_IDS.api, {
      description: 'sonomark: multi-site API (IAM, one role per site) and monthly invoices',
      config,
      key: storage.key,
      uploadsBucket: storage.uploadsBucket,
      artifactsBucket: storage.artifactsBucket,
      resultsTable: storage.resultsTable,
      vpc: pipeline.network.vpc,
      securityGroup: pipeline.network.functionSecurityGroup,
      experts: pipeline.expertFunctions.map((e) => ({ name: e.expert.name, memoryMb: e.sizing.memoryMb })),
    });
    api.addStackDependency(pipeline);
  }

  if (opts.nag !== false) {
    addNagChecks(app);
  }
  return { app, config, storage, pipeline, trigger, cohort, ...(api ? { api } : {}) };
}
