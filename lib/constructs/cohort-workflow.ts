/**
 * The cohort state machine: a STANDARD workflow whose Distributed Map runs a cohort in batches.
 *
 *   InitRun → Source (Choice on the input) → one Distributed Map per item source
 *   (CSV manifest, JSONL manifest, S3 prefix listing) → CohortReport → CohortDone
 *
 * Each map batches its items (ItemBatcher), runs at most `maxConcurrency` batches at once,
 * tolerates `toleratedFailurePercentage` failed batches, and writes its results (counts and
 * batch ids only) to the artifacts bucket under cohorts/{site}/{runId}/ (ResultWriter). The
 * item processor of a batch:
 *
 *   PlanBatch → NeedsExtract (Choice) ─ extractCount > 0 → ExtractBatch (one Batch job) ─┐
 *                                     └ otherwise ────────────────────────────────────────┴→ ScoreBatch
 *
 * so a batch whose items all have features for the current extractor reaches ScoreBatch without
 * any Batch state: re-scoring a cohort after a new expert version runs no GPU (test/infra/cohort.test.ts
 * walks the definition to prove it). The three maps share one processor shape; their states carry
 * the source as a prefix because a state machine's state names must be unique.
 *
 * Local mode does not run this state machine (aws-local-stepfunctions has no Distributed Map):
 * `sonomark cohort run` (local/cohort.ts) runs the same per-item semantics against the local
 * stores, and the handlers here are unit-tested against s3rver and dynalite.
 */
import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as batch from 'aws-cdk-lib/aws-batch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { COHORT_STATE, EXTRACT_ENV } from '../../core/contract';
import { COHORT_LEASE_SECONDS, COHORT_MANIFESTS_PREFIX, COHORTS_PREFIX } from '../../core/cohort-run';
import { UPLOADS_PREFIX } from '../../core/keys';
import { BATCH_JOB_TIMES, BATCH_RETRY, LAMBDA_RETRY, TRANSIENT_RETRY } from './workflow';

export interface CohortWorkflowProps {
  readonly planFunction: lambda.IFunction;
  readonly scoreFunction: lambda.IFunction;
  readonly reportFunction: lambda.IFunction;
  /**
   * The extractor, run in batch mode (an item list): the pipeline's spot queue and job
   * definition, or in `computeMode: 'lambda'` its function (one invocation per batch, so
   * `cohortBatching.batchSize` clips must fit the function's timeout).
   */
  readonly extractor:
    | { readonly kind: 'batch'; readonly jobQueue: batch.IJobQueue; readonly jobDefinition: batch.IJobDefinition }
    | { readonly kind: 'lambda'; readonly function: lambda.IFunction };
  /** Per-attempt limit of one batch's extractor job. */
  readonly extractTimeout: Duration;
  readonly uploadsBucket: s3.IBucket;
  readonly artifactsBucket: s3.IBucket;
  readonly batchSize: number;
  readonly maxConcurrency: number;
  readonly toleratedFailurePercentage: number;
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
}

/** The item sources, each a Distributed Map with its reader; the item becomes `{key}` whatever the reader. */
const SOURCES = [
  { label: 'Csv', map: COHORT_STATE.mapCsv, itemKey: 'key' },
  { label: 'Jsonl', map: COHORT_STATE.mapJsonl, itemKey: 'key' },
  { label: 'Prefix', map: COHORT_STATE.mapPrefix, itemKey: 'Key' },
] as const;

/** The prefix listing without CDK's grant (s3:ListBucket on every bucket with a bucket path): grantReads scopes it. */
class ScopedObjectsReader extends sfn.S3ObjectsItemReader {
  override providePolicyStatements(): iam.PolicyStatement[] {
    return [];
  }
}

/** The ResultWriter without CDK's grant (bucket/*): grantReads scopes it to cohorts/. */
class ScopedResultWriter extends sfn.ResultWriterV2 {
  override providePolicyStatements(): iam.PolicyStatement[] {
    return [];
  }
}

/** The name of a processor state in the map of source `label` (e.g. `CsvPlanBatch`). */
export const cohortStateName = (label: (typeof SOURCES)[number]['label'], state: string): string => `${label}${state}`;

export class CohortWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: CohortWorkflowProps) {
    super(scope, id);
    // ResultWriterV2 renders only under this feature flag (new apps get it from `cdk init`); set
    // here, before the maps exist, so it applies to this construct alone.
    this.node.setContext('@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2', true);

    const processor = (label: (typeof SOURCES)[number]['label']): sfn.IChainable => {
      const name = (s: string) => cohortStateName(label, s);
      const plan = new tasks.LambdaInvoke(this, name(COHORT_STATE.plan), {
        lambdaFunction: props.planFunction,
        // No payload: the function gets the whole batch state (a `payload` of `$` with
        // payloadResponseOnly would render as `"Parameters": "$"`, which is not an object).
        payloadResponseOnly: true,
        retryOnServiceExceptions: false,
        resultPath: '$.plan',
      })
        .addRetry(TRANSIENT_RETRY)
        .addRetry(LAMBDA_RETRY);
      const score = new tasks.LambdaInvoke(this, name(COHORT_STATE.score), {
        lambdaFunction: props.scoreFunction,
        // No payload: the function gets the whole batch state. `extract` (the job's timing, for
        // the usage records) is there only when the job succeeded, and a path to an absent
        // field would fail the state.
        payloadResponseOnly: true,
        retryOnServiceExceptions: false,
      })
        .addRetry(TRANSIENT_RETRY)
        .addRetry(LAMBDA_RETRY);
      const extractor = props.extractor;
      const extractTask =
        extractor.kind === 'lambda'
          ? new tasks.LambdaInvoke(this, name(COHORT_STATE.extract), {
              lambdaFunction: extractor.function,
              payload: sfn.TaskInput.fromObject({
                itemsBucket: sfn.JsonPath.stringAt('$.plan.itemsBucket'),
                itemsKey: sfn.JsonPath.stringAt('$.plan.itemsKey'),
              }),
              payloadResponseOnly: false,
              retryOnServiceExceptions: false,
              // The invocation's run time, divided over its clips as a job's is (same fields).
              resultSelector: {
                jobId: sfn.JsonPath.stringAt('$.Payload.jobId'),
                startedAt: sfn.JsonPath.numberAt('$.Payload.startedAt'),
                stoppedAt: sfn.JsonPath.numberAt('$.Payload.stoppedAt'),
              },
              resultPath: '$.extract',
            })
              .addRetry(TRANSIENT_RETRY)
              .addRetry(LAMBDA_RETRY)
          : new tasks.BatchSubmitJob(this, name(COHORT_STATE.extract), {
              jobName: sfn.JsonPath.format('cohort-{}', sfn.JsonPath.stringAt('$.plan.batchId')),
              jobQueueArn: extractor.jobQueue.jobQueueArn,
              jobDefinitionArn: extractor.jobDefinition.jobDefinitionArn,
              integrationPattern: sfn.IntegrationPattern.RUN_JOB,
              containerOverrides: {
                environment: {
                  [EXTRACT_ENV.itemsBucket]: sfn.JsonPath.stringAt('$.plan.itemsBucket'),
                  [EXTRACT_ENV.itemsKey]: sfn.JsonPath.stringAt('$.plan.itemsKey'),
                },
              },
              taskTimeout: sfn.Timeout.duration(props.extractTimeout),
              // The job's run time, divided over its clips in their usage records (as Finalize bills one scan's job).
              resultSelector: BATCH_JOB_TIMES,
              resultPath: '$.extract',
            })
              .addRetry(TRANSIENT_RETRY)
              .addRetry(BATCH_RETRY);
      const extract = extractTask
        // A failed or cancelled job still goes on to ScoreBatch: the items it extracted are
        // scored, the others are reported EXTRACT_FAILED (with the extractor's own reason
        // when it left an error document), and a later run extracts only those.
        .addCatch(score, { errors: [sfn.Errors.ALL], resultPath: '$.extractError' });
      const needsExtract = new sfn.Choice(this, name(COHORT_STATE.needsExtract))
        .when(sfn.Condition.numberGreaterThan('$.plan.extractCount', 0), extract.next(score))
        .otherwise(score);
      return plan.next(needsExtract);
    };

    const resultPrefix = sfn.JsonPath.stringAt('$.run.runPrefix');
    const maps = SOURCES.map((source) => {
      const reader =
        source.label === 'Prefix'
          ? new ScopedObjectsReader({
              // grantReads below grants s3:ListBucket for uploads/ only.
              bucketNamePath: sfn.JsonPath.stringAt('$.run.uploadsBucket'),
              prefix: sfn.JsonPath.stringAt('$.prefix'),
            })
          : source.label === 'Csv'
            ? new sfn.S3CsvItemReader({
                bucketNamePath: sfn.JsonPath.stringAt('$.manifest.bucket'),
                key: sfn.JsonPath.stringAt('$.manifest.key'),
                csvHeaders: sfn.CsvHeaders.useFirstRow(),
              })
            : new sfn.S3JsonLItemReader({
                bucketNamePath: sfn.JsonPath.stringAt('$.manifest.bucket'),
                key: sfn.JsonPath.stringAt('$.manifest.key'),
              });
      return new sfn.DistributedMap(this, source.map, {
        itemReader: reader,
        itemSelector: { key: sfn.JsonPath.stringAt(`$$.Map.Item.Value.${source.itemKey}`) },
        itemBatcher: new sfn.ItemBatcher({
          maxItemsPerBatch: props.batchSize,
          // Rendered as written: the `.$` keys make Step Functions read the paths.
          batchInput: { 'site.$': '$.site', 'runPrefix.$': '$.run.runPrefix' },
        }),
        maxConcurrency: props.maxConcurrency,
        toleratedFailurePercentage: props.toleratedFailurePercentage,
        resultWriterV2: new ScopedResultWriter({ bucket: props.artifactsBucket, prefix: resultPrefix }),
        resultPath: '$.map',
        // STANDARD child runs: a batch waits on a GPU job (.sync), longer than an EXPRESS run may last.
        mapExecutionType: sfn.StateMachineType.STANDARD,
      }).itemProcessor(processor(source.label));
    });

    const report = new tasks.LambdaInvoke(this, COHORT_STATE.report, {
      lambdaFunction: props.reportFunction,
      payload: sfn.TaskInput.fromObject({
        site: sfn.JsonPath.stringAt('$.site'),
        runPrefix: sfn.JsonPath.stringAt('$.run.runPrefix'),
        startedAt: sfn.JsonPath.stringAt('$.run.startedAt'),
        source: sfn.JsonPath.stringAt('$.run.source'),
      }),
      payloadResponseOnly: true,
      retryOnServiceExceptions: false,
      resultPath: '$.report',
    })
      .addRetry(TRANSIENT_RETRY)
      .addRetry(LAMBDA_RETRY);
    const done = new sfn.Succeed(this, COHORT_STATE.done, { outputPath: '$.report' });
    report.next(done);

    /** The run's own values, at `$.run`: its folder (the execution name is the run id), start time and source. */
    const init = (label: (typeof SOURCES)[number]['label'], sourcePath: string) =>
      new sfn.Pass(this, cohortStateName(label, COHORT_STATE.init), {
        parameters: {
          runPrefix: sfn.JsonPath.format(
            `${COHORTS_PREFIX}{}/{}/`,
            sfn.JsonPath.stringAt('$.site'),
            sfn.JsonPath.executionName,
          ),
          startedAt: sfn.JsonPath.executionStartTime,
          source: sfn.JsonPath.stringAt(sourcePath),
          uploadsBucket: props.uploadsBucket.bucketName,
        },
        resultPath: '$.run',
      });
    const [csvMap, jsonlMap, prefixMap] = maps as [sfn.DistributedMap, sfn.DistributedMap, sfn.DistributedMap];
    const badInput = new sfn.Fail(this, 'BadInput', {
      error: 'CohortInputError',
      cause:
        'The input must be {"site": SITE, "manifest": {"bucket", "key", "format": "csv"|"jsonl"}} or {"site": SITE, "prefix": "uploads/SITE/..."}.',
    });
    const manifestOf = (format: string) =>
      sfn.Condition.and(
        sfn.Condition.isString('$.site'),
        sfn.Condition.isString('$.manifest.bucket'),
        sfn.Condition.isString('$.manifest.key'),
        sfn.Condition.stringEquals('$.manifest.format', format),
      );
    const source = new sfn.Choice(this, COHORT_STATE.source)
      .when(manifestOf('csv'), init('Csv', '$.manifest.key').next(csvMap).next(report))
      .when(manifestOf('jsonl'), init('Jsonl', '$.manifest.key').next(jsonlMap).next(report))
      .when(
        sfn.Condition.and(
          sfn.Condition.isString('$.site'),
          sfn.Condition.isString('$.prefix'),
          // Only uploads: the listing never reaches features, models or other cohorts.
          sfn.Condition.stringMatches('$.prefix', `${UPLOADS_PREFIX}*`),
        ),
        init('Prefix', '$.prefix').next(prefixMap).next(report),
      )
      .otherwise(badInput);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/sonomark-cohort-${Aws.STACK_NAME}`,
      retention: props.logRetention,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(source),
      stateMachineType: sfn.StateMachineType.STANDARD,
      tracingEnabled: true,
      // Batch inputs and plans hold object keys, and a key can name a patient: no execution data in the log.
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      // A cohort of thousands of clips in batches of GPU jobs: bounded anyway. A batch's claims
      // on its scans hold as long (COHORT_LEASE_SECONDS).
      timeout: Duration.seconds(COHORT_LEASE_SECONDS),
    });

    this.grantReads(props);
  }

  /** What CDK cannot infer from the readers and the .sync Batch task, each scoped as far as AWS allows. */
  private grantReads(props: CohortWorkflowProps): void {
    const role = this.stateMachine;
    // The manifest reader: manifests only in the artifacts bucket's cohorts/manifests/ (the
    // input names bucket and key; any other place is denied).
    role.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [props.artifactsBucket.arnForObjects(`${COHORT_MANIFESTS_PREFIX}*`)],
      }),
    );
    // The prefix listing: the uploads bucket, keys under uploads/ only.
    role.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [props.uploadsBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${UPLOADS_PREFIX}*`] } },
      }),
    );
    role.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [props.encryptionKey.keyArn],
      }),
    );
    // ResultWriter: the map's result files (and their multipart uploads) under cohorts/ only.
    role.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
        resources: [props.artifactsBucket.arnForObjects(`${COHORTS_PREFIX}*`)],
      }),
    );
    // .sync Batch: terminate the job of a stopped run (job ids are known only at run time) and poll it.
    role.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['batch:TerminateJob'],
        resources: [Stack.of(this).formatArn({ service: 'batch', resource: 'job', resourceName: '*' })],
      }),
    );
    role.addToRolePolicy(new iam.PolicyStatement({ actions: ['batch:DescribeJobs'], resources: ['*'] }));
  }
}
