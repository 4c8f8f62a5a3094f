/**
 * What starts the workflow: the EventBridge rule on the uploads bucket's "Object
 * Created" events, the SQS upload queue it feeds, the StartExecution function that
 * drains the queue under the admission cap (lambdas/start-execution/admission.ts),
 * their shared dead-letter queue and its alarm.
 *
 *   EventBridge rule ─▶ upload queue (KMS, TLS only) ─▶ starter (≤ starterConcurrency,
 *   ≤ maxRunningScans executions RUNNING) ─▶ StartExecution
 *        └─ undeliverable ─▶ dead-letter queue ◀─ maxReceiveCount receives ─┘
 *
 * A stack of its own, for two reasons. Local mode runs PipelineStack's state
 * machine and binds every Lambda function of that template to a local handler;
 * the starter is no workflow task, and local mode starts executions itself. And
 * it is a lifecycle of its own: deleting this stack stops new uploads from
 * starting scans while the pipeline finishes the ones in flight.
 */
import { Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { ENV, FUNCTIONS } from '../../core/contract';
import { uploadSiteIds, type SonomarkConfig } from '../config';
import { SonomarkFunction } from '../constructs/sonomark-function';
import { UPLOADS_PREFIX } from '../../core/keys';

export interface TriggerStackProps extends StackProps {
  readonly config: SonomarkConfig;
  readonly key: kms.IKey;
  readonly uploadsBucket: s3.IBucket;
  readonly stateMachine: sfn.IStateMachine;
  /** Where the dead-letter alarm notifies (PipelineStack's alarm topic). */
  readonly alarmTopic: sns.ITopic;
}

/**
 * The starter's timeout. It waits for a free slot for all but STARTER_WAIT_MARGIN of it, so a
 * saturated fleet costs one receive per message per ~5 minutes (config admission.maxReceiveCount).
 */
export const STARTER_TIMEOUT = Duration.minutes(5);
/** What the starter keeps of its timeout for the starts after its wait. */
export const STARTER_WAIT_MARGIN = Duration.seconds(30);

export class TriggerStack extends Stack {
  readonly startFunction: SonomarkFunction;
  readonly rule: events.Rule;
  /** Uploads waiting to be admitted: the rule's target, the starter's event source. */
  readonly uploadQueue: sqs.Queue;
  /** Events that could not start an execution: undeliverable to the queue, or failing in the starter maxReceiveCount times. */
  readonly deadLetterQueue: sqs.Queue;
  readonly deadLettersAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: TriggerStackProps) {
    super(scope, id, props);
    const { config, key } = props;
    Validations.of(this).acknowledge({
      id: 'HIPAA.Security-IAMNoInlinePolicy',
      reason:
        "The only inline policy is the starter role's DefaultPolicy that CDK grants write (states:StartExecution and states:ListExecutions on the one state machine, consuming its upload queue, its log group and key), deployed with its role; a managed policy would add indirection without narrowing access.",
    });

    this.deadLetterQueue = new sqs.Queue(this, 'TriggerDeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the upload queue and of the EventBridge rule target.',
    });

    const { admission } = config;
    this.uploadQueue = new sqs.Queue(this, 'UploadQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      // Data keys are reused for 5 minutes: fewer KMS calls per message under a burst.
      dataKeyReuse: Duration.minutes(5),
      enforceSSL: true,
      // A backlog of 100k uploads at the default fleet's rate drains in days, not weeks.
      retentionPeriod: Duration.days(14),
      // Above the starter's timeout (Lambda requires it): a message a starter held comes back
      // one minute after the starter had to give it up.
      visibilityTimeout: STARTER_TIMEOUT.plus(Duration.minutes(1)),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: admission.maxReceiveCount },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.startFunction = new SonomarkFunction(this, FUNCTIONS.startExecution.id, {
      handler: FUNCTIONS.startExecution,
      encryptionKey: key,
      logRetention: config.logRetentionDays as logs.RetentionDays,
      timeout: STARTER_TIMEOUT,
      // As many as the event source may run: the event source's maximumConcurrency, not
      // throttling, bounds the starters, so no message is received only to be throttled.
      reservedConcurrentExecutions: admission.starterConcurrency,
      outsideVpcReason:
        'The starter reads no bucket and no table: it counts running executions and starts new ones (ListExecutions, StartExecution), and drains its SQS queue through the Lambda event source. In the VPC it would need a Step Functions interface endpoint (~$7.30 per AZ per month) for those calls alone.',
    });
    // StartExecution and ListExecutions on exactly one state machine.
    this.startFunction.bindStateMachine(props.stateMachine);
    props.stateMachine.grant(this.startFunction.function, 'states:ListExecutions');
    this.startFunction.function.addEnvironment(ENV.maxRunningScans, String(admission.maxRunningScans));
    this.startFunction.function.addEnvironment(
      ENV.admissionWaitSeconds,
      String(STARTER_TIMEOUT.toSeconds() - STARTER_WAIT_MARGIN.toSeconds()),
    );
    this.startFunction.function.addEventSource(
      new lambdaEvents.SqsEventSource(this.uploadQueue, {
        batchSize: admission.batchSize,
        reportBatchItemFailures: true,
        maxConcurrency: admission.starterConcurrency,
      }),
    );

    const siteIds = uploadSiteIds(config);
    const keyPrefixes = siteIds ? siteIds.map((s) => `${UPLOADS_PREFIX}${s}/`) : [UPLOADS_PREFIX];
    this.rule = new events.Rule(this, 'UploadRule', {
      description: 'New clip in the uploads bucket: queued for one sonomark workflow execution',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [props.uploadsBucket.bucketName] },
          object: { key: keyPrefixes.map((prefix) => ({ prefix })) },
        },
      },
    });
    // EventBridge's retry policy and DLQ cover delivering the event to the queue; the
    // queue's redrive policy covers what fails in the starter. Not targets.SqsQueue: for a
    // KMS-encrypted queue it lets EventBridge rules of the whole account (or, without a
    // feature flag, any account) send; here only this rule may, on both queues.
    const fromThisRule = (queue: sqs.IQueue) =>
      queue.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal('events.amazonaws.com')],
          actions: ['sqs:SendMessage'],
          resources: [queue.queueArn],
          conditions: { ArnEquals: { 'aws:SourceArn': this.rule.ruleArn } },
        }),
      );
    fromThisRule(this.uploadQueue);
    fromThisRule(this.deadLetterQueue);
    this.rule.addTarget({
      bind: () => ({
        arn: this.uploadQueue.queueArn,
        targetResource: this.uploadQueue,
        deadLetterConfig: { arn: this.deadLetterQueue.queueArn },
        retryPolicy: { maximumRetryAttempts: 185, maximumEventAgeInSeconds: Duration.hours(24).toSeconds() },
      }),
    });

    this.deadLettersAlarm = new cloudwatch.Alarm(this, 'TriggerDeadLettersAlarm', {
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
    const notify = new cwActions.SnsAction(props.alarmTopic);
    this.deadLettersAlarm.addAlarmAction(notify);
    this.deadLettersAlarm.addOkAction(notify);
  }
}
