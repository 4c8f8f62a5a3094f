/**
 * What starts the workflow: the EventBridge rule on the uploads bucket's "Object
 * Created" events, the StartExecution function it targets, their shared
 * dead-letter queue and its alarm.
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
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { FUNCTIONS } from '../../core/contract';
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

export class TriggerStack extends Stack {
  readonly startFunction: SonomarkFunction;
  readonly rule: events.Rule;
  /** Events that could not start an execution: undeliverable to the starter, or failing in it after retries. */
  readonly deadLetterQueue: sqs.Queue;
  readonly deadLettersAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: TriggerStackProps) {
    super(scope, id, props);
    const { config, key } = props;
    Validations.of(this).acknowledge({
      id: 'HIPAA.Security-IAMNoInlinePolicy',
      reason:
        "The only inline policy is the starter role's DefaultPolicy that CDK grants write (states:StartExecution on the one state machine, its log group, its DLQ and key), deployed with its role; a managed policy would add indirection without narrowing access.",
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
      reason:
        'This queue is itself the dead-letter queue of the EventBridge trigger and of the StartExecution function.',
    });

    this.startFunction = new SonomarkFunction(this, FUNCTIONS.startExecution.id, {
      handler: FUNCTIONS.startExecution,
      encryptionKey: key,
      logRetention: config.logRetentionDays as logs.RetentionDays,
      timeout: Duration.seconds(10),
      // StartExecution is cheap; an upload burst beyond this is throttled and Lambda
      // retries the queued events (up to maxEventAge), it does not drop them.
      reservedConcurrentExecutions: 20,
      outsideVpcReason:
        'The starter reads no bucket and no table: it turns the EventBridge event into one StartExecution call, as the EventBridge-to-Step Functions target did from outside any VPC. In the VPC it would need a Step Functions interface endpoint (~$7.30 per AZ per month) for that call alone.',
      // EventBridge invokes Lambda asynchronously: once Lambda has accepted the event,
      // a thrown error is retried by Lambda (not EventBridge) and then dead-lettered here.
      asyncInvoke: { deadLetterQueue: this.deadLetterQueue, retryAttempts: 2, maxEventAge: Duration.hours(6) },
    });
    // Exactly one action on exactly one state machine.
    this.startFunction.bindStateMachine(props.stateMachine);

    const siteIds = uploadSiteIds(config);
    const keyPrefixes = siteIds ? siteIds.map((s) => `${UPLOADS_PREFIX}${s}/`) : [UPLOADS_PREFIX];
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
    // EventBridge's retry policy and DLQ cover delivering the event to Lambda (throttling,
    // an unavailable service); the function's own asyncInvoke settings cover what fails inside it.
    this.rule.addTarget(
      new targets.LambdaFunction(this.startFunction.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 185,
        maxEventAge: Duration.hours(24),
      }),
    );

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
