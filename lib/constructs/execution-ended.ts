/**
 * Nothing stuck: an EventBridge rule on this state machine's executions that ended
 * TIMED_OUT, ABORTED or FAILED runs the ExecutionEnded function
 * (lambdas/execution-ended), which records the scan FAILED with the reason if, and
 * only if, the scan is still RUNNING under that execution. Without it, a timed-out or
 * stopped execution (or one whose RecordFailure itself failed) left its scan RUNNING,
 * and every re-upload of the same bytes was skipped as "in progress".
 *
 * In PipelineStack because local mode must find the function in that template (it
 * binds every function there to a local handler, local/bindings.ts) and run the same
 * code when its runner ends an execution that way.
 */
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ENV, EXECUTION_ENDED_STATUSES, FUNCTIONS } from '../../core/contract';
import { SonomarkFunction } from './sonomark-function';

export interface ExecutionEndedProps {
  readonly stateMachine: sfn.IStateMachine;
  readonly resultsTable: dynamodb.ITable;
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  readonly vpc: ec2.IVpc;
  readonly securityGroup: ec2.ISecurityGroup;
}

export class ExecutionEnded extends Construct {
  readonly function: SonomarkFunction;
  readonly rule: events.Rule;
  /** Events that could not be recorded after EventBridge's and Lambda's retries. */
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ExecutionEndedProps) {
    super(scope, id);
    const key = props.encryptionKey;

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the execution-ended rule and of its function.',
    });

    this.function = new SonomarkFunction(this, FUNCTIONS.executionEnded.id, {
      handler: FUNCTIONS.executionEnded,
      encryptionKey: key,
      logRetention: props.logRetention,
      vpc: props.vpc,
      securityGroup: props.securityGroup,
      timeout: Duration.seconds(30),
      // One event per ended execution: a handful even when many fail together.
      reservedConcurrentExecutions: 5,
      asyncInvoke: { deadLetterQueue: this.deadLetterQueue, retryAttempts: 2, maxEventAge: Duration.hours(6) },
    });
    // Least privilege: read the execution pointer, conditionally update the scan. No Put, no Query.
    this.function.function.addEnvironment(ENV.resultsTable, props.resultsTable.tableName);
    this.function.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        resources: [props.resultsTable.tableArn],
      }),
    );
    this.function.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
        resources: [key.keyArn],
      }),
    );

    this.rule = new events.Rule(this, 'Rule', {
      description: 'A sonomark execution timed out, was aborted or failed: record its scan if it was left RUNNING',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [props.stateMachine.stateMachineArn], status: [...EXECUTION_ENDED_STATUSES] },
      },
    });
    this.rule.addTarget(
      new targets.LambdaFunction(this.function.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 185,
        maxEventAge: Duration.hours(24),
      }),
    );
  }
}
