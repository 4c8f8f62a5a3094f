/**
 * The stateless pipeline: functions, the extractor job, the workflow, the
 * EventBridge trigger and the alarms. It reads the model manifest at synth time
 * and creates one expert function per manifest expert.
 */
import { Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { SonomarkConfig } from '../config';
import { ExpertFunction, LAMBDA_MODELS_DIR, modelCopyCommands, pascalName } from '../constructs/expert-function';
import { GpuJob } from '../constructs/gpu-job';
import { grantReadObjects, grantTableItems } from '../constructs/grants';
import { Network } from '../constructs/network';
import { SonomarkFunction } from '../constructs/sonomark-function';
import { Workflow } from '../constructs/workflow';
import { ENV } from '../env';
import { UPLOADS_PREFIX } from '../keys';
import { loadManifest } from '../manifest';

export interface PipelineStackProps extends StackProps {
  readonly config: SonomarkConfig;
  /** Directory holding manifest.json and the ONNX files it names. */
  readonly modelsDir: string;
  readonly key: kms.IKey;
  readonly uploadsBucket: s3.IBucket;
  readonly artifactsBucket: s3.IBucket;
  readonly resultsTable: dynamodb.ITable;
}

/** Construct ids of the functions; local mode maps ARNs in the ASL back to handlers through them. */
export const FUNCTION_IDS = {
  validate: 'ValidateUpload',
  finalize: 'Finalize',
  recordFailure: 'RecordFailure',
  expert: (name: string) => `Expert${pascalName(name)}`,
} as const;

export class PipelineStack extends Stack {
  readonly validateFunction: SonomarkFunction;
  readonly finalizeFunction: SonomarkFunction;
  readonly recordFailureFunction: SonomarkFunction;
  readonly expertFunctions: ExpertFunction[];
  readonly extractor: GpuJob;
  readonly workflow: Workflow;
  readonly rule: events.Rule;
  readonly deadLetterQueue: sqs.Queue;
  readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, props);
    const { config, key } = props;
    const logRetention = config.logRetentionDays as logs.RetentionDays;
    const { manifest } = loadManifest(props.modelsDir);

    const network = new Network(this, 'Network', { encryptionKey: key, logRetention });
    Validations.of(this).acknowledge({
      id: 'HIPAA.Security-IAMNoInlinePolicy',
      reason:
        'Inline policies here are the per-role DefaultPolicy documents CDK grants write, each scoped to named resources and deployed with its role; none is shared, so a managed policy would add indirection without narrowing access.',
    });
    const common = {
      encryptionKey: key,
      logRetention,
      vpc: network.vpc,
      securityGroup: network.functionSecurityGroup,
    };
    const tableEnv = {
      [ENV.resultsTable]: props.resultsTable.tableName,
      [ENV.artifactsBucket]: props.artifactsBucket.bucketName,
    };

    // Validate reads the manifest for the extractor ref (name, version, sha256) only.
    this.validateFunction = new SonomarkFunction(this, FUNCTION_IDS.validate, {
      ...common,
      entry: 'lambdas/validate-upload/handler.ts',
      serviceName: 'validate-upload',
      memorySize: 512,
      timeout: Duration.seconds(60),
      reservedConcurrentExecutions: 50,
      environment: {
        ...tableEnv,
        [ENV.modelsDir]: LAMBDA_MODELS_DIR,
        [ENV.maxUploadBytes]: String(config.maxUploadBytes),
      },
      afterBundling: (_in, outputDir) => modelCopyCommands(props.modelsDir, outputDir, []),
    });
    grantReadObjects(this.validateFunction.function, props.uploadsBucket, UPLOADS_PREFIX, key);
    grantTableItems(this.validateFunction.function, props.resultsTable, key);

    this.finalizeFunction = new SonomarkFunction(this, FUNCTION_IDS.finalize, {
      ...common,
      entry: 'lambdas/finalize/handler.ts',
      serviceName: 'finalize',
      environment: tableEnv,
    });
    grantTableItems(this.finalizeFunction.function, props.resultsTable, key);

    this.recordFailureFunction = new SonomarkFunction(this, FUNCTION_IDS.recordFailure, {
      ...common,
      entry: 'lambdas/record-failure/handler.ts',
      serviceName: 'record-failure',
      environment: tableEnv,
    });
    grantTableItems(this.recordFailureFunction.function, props.resultsTable, key);

    this.expertFunctions = manifest.experts.map(
      (expert) =>
        new ExpertFunction(this, FUNCTION_IDS.expert(expert.name), {
          ...common,
          expert,
          modelsDir: props.modelsDir,
          artifactsBucket: props.artifactsBucket,
          resultsTable: props.resultsTable,
        }),
    );

    this.extractor = new GpuJob(this, 'Extractor', {
      vpc: network.vpc,
      securityGroup: network.computeSecurityGroup,
      uploadsBucket: props.uploadsBucket,
      artifactsBucket: props.artifactsBucket,
      encryptionKey: key,
      logRetention,
      computeMode: config.computeMode,
      instanceTypes: config.gpuInstanceTypes,
      maxvCpus: config.maxvCpus,
      timeout: Duration.seconds(config.extractTimeoutSeconds),
    });

    this.workflow = new Workflow(this, 'Workflow', {
      validateFunction: this.validateFunction.function,
      finalizeFunction: this.finalizeFunction.function,
      recordFailureFunction: this.recordFailureFunction.function,
      experts: this.expertFunctions.map((e) => ({ entry: e.expert, function: e.fn.function })),
      jobQueue: this.extractor.jobQueue,
      jobDefinition: this.extractor.jobDefinition,
      extractTimeout: Duration.seconds(config.extractTimeoutSeconds),
      encryptionKey: key,
      logRetention,
    });

    // -- trigger -----------------------------------------------------------
    this.deadLetterQueue = new sqs.Queue(this, 'TriggerDeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the EventBridge trigger.',
    });

    const keyPrefixes = config.siteIds ? config.siteIds.map((s) => `${UPLOADS_PREFIX}${s}/`) : [UPLOADS_PREFIX];
    this.rule = new events.Rule(this, 'UploadRule', {
      description: 'New clip in the uploads bucket starts one sonomark workflow execution',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [props.uploadsBucket.bucketName] },
          object: { key: keyPrefixes.map((prefix) => ({ prefix })) },
        },
      },
    });
    this.rule.addTarget(
      new targets.SfnStateMachine(this.workflow.stateMachine, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 185,
        maxEventAge: Duration.hours(24),
      }),
    );

    // -- alarms ------------------------------------------------------------
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'sonomark alarms',
      masterKey: key,
      enforceSSL: true,
    });
    if (config.alarmEmail) this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    const notify = new cwActions.SnsAction(this.alarmTopic);

    const failedExecutions = new cloudwatch.Alarm(this, 'ExecutionsFailedAlarm', {
      alarmDescription: 'A sonomark scan failed (its FAILED result item in the results table says why).',
      metric: this.workflow.stateMachine.metricFailed({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const deadLetters = new cloudwatch.Alarm(this, 'TriggerDeadLettersAlarm', {
      alarmDescription: 'Uploads whose workflow could not be started are waiting in the trigger dead-letter queue.',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: 'Maximum',
      }),
      threshold: 0,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const alarm of [failedExecutions, deadLetters]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}
