/**
 * Cohort runs in the cloud (README "Cohorts and re-scoring"): the cohort state machine
 * (lib/constructs/cohort-workflow.ts), its three functions, and the schedules of config
 * `cohorts`. It reuses the pipeline's extractor (job queue and definition, in batch mode) and
 * network; nothing here costs anything at rest (functions, a state machine, schedules).
 */
import { Duration, Stack, type StackProps, TimeZone, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type { Construct } from 'constructs';
import type { SonomarkConfig } from '../config';
import { CohortWorkflow } from '../constructs/cohort-workflow';
import type { ExtractorFunction } from '../constructs/extractor-function';
import { onnxRuntimeCopyCommands } from '../constructs/expert-function';
import { grantReadObjects, grantWriteObjects } from '../constructs/grants';
import { SonomarkFunction } from '../constructs/sonomark-function';
import type { PipelineStack } from './pipeline-stack';
import { ENV, FUNCTIONS, MODELS } from '../../core/contract';
import { cohortScheduleInput, COHORTS_PREFIX } from '../../core/cohort-run';
import { FEATURES_PREFIX, UPLOADS_PREFIX } from '../../core/keys';

export interface CohortStackProps extends StackProps {
  readonly config: SonomarkConfig;
  readonly key: kms.IKey;
  readonly uploadsBucket: s3.IBucket;
  readonly artifactsBucket: s3.IBucket;
  readonly resultsTable: dynamodb.ITable;
  /** The extractor (batch mode), its network and the function security group. */
  readonly pipeline: PipelineStack;
}

export class CohortStack extends Stack {
  readonly planFunction: SonomarkFunction;
  readonly scoreFunction: SonomarkFunction;
  readonly reportFunction: SonomarkFunction;
  readonly workflow: CohortWorkflow;
  readonly schedules: scheduler.Schedule[];

  constructor(scope: Construct, id: string, props: CohortStackProps) {
    super(scope, id, props);
    const { config, key, pipeline } = props;
    const logRetention = config.logRetentionDays as logs.RetentionDays;
    const common = {
      encryptionKey: key,
      logRetention,
      vpc: pipeline.network.vpc,
      securityGroup: pipeline.network.functionSecurityGroup,
    };
    Validations.of(this).acknowledge({
      id: 'HIPAA.Security-IAMNoInlinePolicy',
      reason:
        'Inline policies here are the per-role DefaultPolicy documents CDK grants write, each scoped to named resources and deployed with its role; none is shared, so a managed policy would add indirection without narrowing access.',
    });

    // Plan: hashes each item's clip (the scan id, as Validate computes it), reads its scan item
    // and whether its features exist, writes the batch's extractor item list under cohorts/.
    this.planFunction = new SonomarkFunction(this, FUNCTIONS.cohortPlan.id, {
      ...common,
      handler: FUNCTIONS.cohortPlan,
      memorySize: 512,
      // A batch's clips are hashed one after another (each up to maxUploadBytes).
      timeout: Duration.minutes(15),
      reservedConcurrentExecutions: Math.max(2, config.cohortBatching.maxConcurrency),
    });
    this.planFunction.bindObjects(props.uploadsBucket, key, { read: UPLOADS_PREFIX, envVar: ENV.uploadsBucket });
    this.planFunction.bindObjects(props.artifactsBucket, key, {
      read: FEATURES_PREFIX,
      envVar: ENV.artifactsBucket,
    });
    grantReadObjects(this.planFunction.function, props.artifactsBucket, MODELS.bucketManifestKey, key);
    grantWriteObjects(this.planFunction.function, props.artifactsBucket, COHORTS_PREFIX, key);
    // The plan reads scan items and claims the ones it sends on (claimScan: a conditional PutItem,
    // as Validate's); it updates and deletes nothing.
    this.planFunction.function.addEnvironment(ENV.resultsTable, props.resultsTable.tableName);
    this.planFunction.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        resources: [props.resultsTable.tableArn],
      }),
    );

    // Score: the experts of the bucket's manifest on each scan's stored features (ONNX on CPU).
    this.scoreFunction = new SonomarkFunction(this, FUNCTIONS.cohortScore.id, {
      ...common,
      handler: FUNCTIONS.cohortScore,
      memorySize: 1024,
      timeout: Duration.minutes(15),
      reservedConcurrentExecutions: Math.max(2, config.cohortBatching.maxConcurrency),
      externalModules: ['onnxruntime-node'],
      afterBundling: onnxRuntimeCopyCommands,
    });
    this.scoreFunction.bindObjects(props.artifactsBucket, key, { read: FEATURES_PREFIX });
    this.scoreFunction.bindObjects(props.artifactsBucket, key, {
      read: MODELS.bucketPrefix,
      envVar: ENV.artifactsBucket,
    });
    grantWriteObjects(this.scoreFunction.function, props.artifactsBucket, COHORTS_PREFIX, key);
    this.scoreFunction.bindResultsTable(props.resultsTable, key);
    // The usage records of the scans a batch completes: the pipeline's Finalize rates, so a
    // cohort scan is estimated (and billed) exactly like an uploaded one.
    this.scoreFunction.function.addEnvironment(ENV.scanRates, pipeline.scanRatesJson);

    // Report: lists and reads the run's batch outcomes, writes cohort.csv, summary.json and the
    // HTML page (core/report; ECharts in the bundle renders its charts to SVG, no browser).
    this.reportFunction = new SonomarkFunction(this, FUNCTIONS.cohortReport.id, {
      ...common,
      handler: FUNCTIONS.cohortReport,
      memorySize: 1024,
      // The page loads every scan (item, results, features) and draws ~4 charts per scan.
      timeout: Duration.minutes(15),
      reservedConcurrentExecutions: 2,
    });
    this.reportFunction.bindObjects(props.artifactsBucket, key, { read: COHORTS_PREFIX, envVar: ENV.artifactsBucket });
    grantReadObjects(this.reportFunction.function, props.artifactsBucket, MODELS.bucketManifestKey, key);
    grantWriteObjects(this.reportFunction.function, props.artifactsBucket, COHORTS_PREFIX, key);
    this.reportFunction.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [props.artifactsBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${COHORTS_PREFIX}*`] } },
      }),
    );
    // The page's data, as `sonomark report` reads it: each scan's features document, and its scan
    // item and expert results (GetItem, and a Query of the scan's own partition); nothing written.
    grantReadObjects(this.reportFunction.function, props.artifactsBucket, FEATURES_PREFIX, key);
    this.reportFunction.function.addEnvironment(ENV.resultsTable, props.resultsTable.tableName);
    this.reportFunction.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:Query'],
        resources: [props.resultsTable.tableArn],
      }),
    );

    // The extractor reads a batch's item list (ITEMS_KEY) from cohorts/: a grant on the
    // pipeline's job role (or, in `lambda` mode, its function's role), written into that role's policy.
    grantReadObjects(
      pipeline.extractor?.jobRole ?? (pipeline.extractorFunction as ExtractorFunction).role,
      props.artifactsBucket,
      COHORTS_PREFIX,
      key,
    );

    this.workflow = new CohortWorkflow(this, 'CohortWorkflow', {
      planFunction: this.planFunction.function,
      scoreFunction: this.scoreFunction.function,
      reportFunction: this.reportFunction.function,
      extractor: pipeline.extractor
        ? { kind: 'batch', jobQueue: pipeline.extractor.jobQueue, jobDefinition: pipeline.extractor.jobDefinition }
        : { kind: 'lambda', function: (pipeline.extractorFunction as ExtractorFunction).function },
      extractTimeout: Duration.seconds(
        config.computeMode === 'lambda' ? config.lambdaExtractor.timeoutSeconds : config.extractTimeoutSeconds,
      ),
      uploadsBucket: props.uploadsBucket,
      artifactsBucket: props.artifactsBucket,
      batchSize: config.cohortBatching.batchSize,
      maxConcurrency: config.cohortBatching.maxConcurrency,
      toleratedFailurePercentage: config.cohortBatching.toleratedFailurePercentage,
      encryptionKey: key,
      logRetention,
    });

    // Scheduled runs: each starts the state machine with the input a manual start takes.
    this.schedules = config.cohorts.map(
      (cohort) =>
        new scheduler.Schedule(this, `Schedule-${cohort.name}`, {
          description: `sonomark cohort ${cohort.name} (site ${cohort.site})`,
          // The schedule's stored input (site, bucket, cohort spec) under the project key, like every store here.
          key,
          schedule: scheduler.ScheduleExpression.expression(`cron(${cohort.cron})`, TimeZone.ETC_UTC),
          target: new targets.StepFunctionsStartExecution(this.workflow.stateMachine, {
            input: scheduler.ScheduleTargetInput.fromObject(
              cohortScheduleInput(cohort, props.artifactsBucket.bucketName),
            ),
            retryAttempts: 3,
          }),
        }),
    );
  }
}
