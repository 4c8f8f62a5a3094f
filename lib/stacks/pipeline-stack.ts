/**
 * The stateless pipeline: functions, the extractor job, the workflow and the
 * alarms. It reads the model manifest at synth time and creates one expert
 * function per manifest expert. What starts executions (the EventBridge rule and
 * its starter function) is TriggerStack; local mode runs this stack's state
 * machine and binds every Lambda function in this template to a local handler,
 * so nothing here may be a function the workflow does not invoke.
 */
import { Duration, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import { interfaceEndpointsFor, type SonomarkConfig } from '../config';
import { ExecutionEnded } from '../constructs/execution-ended';
import { ExpertFunction } from '../constructs/expert-function';
import { ExtractorFunction } from '../constructs/extractor-function';
import { GpuJob } from '../constructs/gpu-job';
import { Network } from '../constructs/network';
import { SonomarkFunction } from '../constructs/sonomark-function';
import { Workflow } from '../constructs/workflow';
import { ENV, EXTRACTOR_FUNCTION, FUNCTIONS, MODELS } from '../../core/contract';
import { FEATURES_PREFIX, UPLOADS_PREFIX } from '../../core/keys';
import { loadManifest } from '../../core/manifest';
import { scanRates } from '../rates';
import type { Manifest } from '../../core/schemas';

export interface PipelineStackProps extends StackProps {
  readonly config: SonomarkConfig;
  /** Directory holding manifest.json and the ONNX files it names. */
  readonly modelsDir: string;
  readonly key: kms.IKey;
  readonly uploadsBucket: s3.IBucket;
  readonly artifactsBucket: s3.IBucket;
  readonly resultsTable: dynamodb.ITable;
}

export class PipelineStack extends Stack {
  readonly validateFunction: SonomarkFunction;
  readonly finalizeFunction: SonomarkFunction;
  /** The usage records' rates (config `prices`, compute mode, each expert's memory) as JSON: env SCAN_RATES of every step that completes a scan. */
  readonly scanRatesJson: string;
  readonly recordFailureFunction: SonomarkFunction;
  readonly loadExpertsFunction: SonomarkFunction;
  readonly expertFunctions: ExpertFunction[];
  /** The Batch extractor job (`computeMode` gpu or cpu); absent in `lambda` mode. */
  readonly extractor?: GpuJob;
  /** The extractor as a Lambda function (`computeMode: 'lambda'`); absent otherwise. */
  readonly extractorFunction?: ExtractorFunction;
  readonly workflow: Workflow;
  /** Records a scan FAILED when its execution timed out, was aborted, or failed without recording it. */
  readonly executionEnded: ExecutionEnded;
  readonly alarmTopic: sns.Topic;
  /** Batch "Job Queue Blocked" events of the extractor queue (jobs stuck RUNNABLE); no queue in `lambda` mode. */
  readonly queueBlockedRule?: events.Rule;
  readonly jobsRunnableTooLongAlarm?: cloudwatch.Alarm;
  /** The VPC and function security group (ApiStack's functions run in them too). */
  readonly network: Network;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, props);
    const { config, key } = props;
    const logRetention = config.logRetentionDays as logs.RetentionDays;
    const { manifest } = loadManifest(props.modelsDir);
    checkExpertOverrides(config, manifest);

    const network = new Network(this, 'Network', {
      encryptionKey: key,
      logRetention,
      interfaceEndpoints: interfaceEndpointsFor(config.computeMode, config.network.egress),
      egress: config.network.egress,
      maxAzs: config.network.maxAzs,
      endpointAzs: config.network.endpointAzs,
    });
    this.network = network;
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

    // Validate reads the manifest for the extractor ref (name, version, sha256) only.
    this.validateFunction = new SonomarkFunction(this, FUNCTIONS.validate.id, {
      ...common,
      handler: FUNCTIONS.validate,
      memorySize: 512,
      timeout: Duration.seconds(60),
      reservedConcurrentExecutions: 50,
      environment: {
        [ENV.maxUploadBytes]: String(config.maxUploadBytes),
        [ENV.inputLimits]: JSON.stringify(config.limits),
      },
      models: { dir: props.modelsDir, files: [] },
    });
    // The event names the upload's bucket. The artifacts bucket is only named: Validate puts
    // it in the scan for the extractor (which writes there) and the experts (which read).
    this.validateFunction.bindObjects(props.uploadsBucket, key, { read: UPLOADS_PREFIX });
    this.validateFunction.bindObjects(props.artifactsBucket, key, { envVar: ENV.artifactsBucket });
    this.validateFunction.bindResultsTable(props.resultsTable, key);

    this.finalizeFunction = new SonomarkFunction(this, FUNCTIONS.finalize.id, {
      ...common,
      handler: FUNCTIONS.finalize,
    });
    this.finalizeFunction.bindResultsTable(props.resultsTable, key);

    this.recordFailureFunction = new SonomarkFunction(this, FUNCTIONS.recordFailure.id, {
      ...common,
      handler: FUNCTIONS.recordFailure,
    });
    this.recordFailureFunction.bindResultsTable(props.resultsTable, key);
    // RecordFailure reads the extractor's error document (features/…/{scanId}.error.json) to record
    // the decode failure's own reason; without this read it fell back to "exit code 1" in AWS,
    // which local mode (no IAM) never showed.
    this.recordFailureFunction.bindObjects(props.artifactsBucket, key, { read: FEATURES_PREFIX });

    this.expertFunctions = manifest.experts.map(
      (expert) =>
        new ExpertFunction(this, FUNCTIONS.expert.id(expert.name), {
          ...common,
          expert,
          sizing: config.expertOverrides[expert.name],
          modelsDir: props.modelsDir,
          artifactsBucket: props.artifactsBucket,
          resultsTable: props.resultsTable,
        }),
    );
    // LoadExperts reads the manifest in the artifacts bucket at run time (models/manifest.json,
    // read-only) and pairs each expert with its function (EXPERT_FUNCTIONS, from this synth).
    this.loadExpertsFunction = new SonomarkFunction(this, FUNCTIONS.loadExperts.id, {
      ...common,
      handler: FUNCTIONS.loadExperts,
      environment: {
        [ENV.expertFunctions]: JSON.stringify(
          Object.fromEntries(this.expertFunctions.map((e) => [e.expert.name, e.fn.function.functionArn])),
        ),
      },
    });
    this.loadExpertsFunction.bindObjects(props.artifactsBucket, key, {
      read: MODELS.bucketManifestKey,
      envVar: ENV.artifactsBucket,
    });

    // The usage record's cost estimate: this deployment's list-price rates (config
    // `prices`, compute mode, each expert's memory), resolved here, checked by the
    // Finalize handler's schema when it starts.
    this.scanRatesJson = JSON.stringify(
      scanRates(
        config,
        this.expertFunctions.map((e) => ({ name: e.expert.name, memoryMb: e.sizing.memoryMb })),
      ),
    );
    this.finalizeFunction.function.addEnvironment(ENV.scanRates, this.scanRatesJson);

    const extractTimeout = Duration.seconds(
      config.computeMode === 'lambda' ? config.lambdaExtractor.timeoutSeconds : config.extractTimeoutSeconds,
    );
    if (config.computeMode === 'lambda') {
      this.extractorFunction = new ExtractorFunction(this, EXTRACTOR_FUNCTION.id, {
        vpc: network.vpc,
        securityGroup: network.functionSecurityGroup,
        uploadsBucket: props.uploadsBucket,
        artifactsBucket: props.artifactsBucket,
        encryptionKey: key,
        logRetention,
        memoryMb: config.lambdaExtractor.memoryMb,
        timeout: extractTimeout,
        ephemeralStorageMiB: config.lambdaExtractor.ephemeralStorageMiB,
      });
    } else {
      this.extractor = new GpuJob(this, 'Extractor', {
        vpc: network.vpc,
        securityGroup: network.computeSecurityGroup,
        subnets: network.computeSubnets,
        assignPublicIp: network.computeAssignsPublicIp,
        uploadsBucket: props.uploadsBucket,
        artifactsBucket: props.artifactsBucket,
        encryptionKey: key,
        logRetention,
        computeMode: config.computeMode,
        instanceTypes: config.gpuInstanceTypes,
        cpuJob: config.cpuJob,
        maxvCpus: config.maxvCpus,
        timeout: Duration.seconds(config.extractTimeoutSeconds),
        runnableTimeLimit: Duration.minutes(config.runnableTimeLimitMinutes),
        spotCapacityWait: Duration.minutes(config.spotCapacityWaitMinutes),
      });
    }

    this.workflow = new Workflow(this, 'Workflow', {
      validateFunction: this.validateFunction.function,
      finalizeFunction: this.finalizeFunction.function,
      recordFailureFunction: this.recordFailureFunction.function,
      loadExpertsFunction: this.loadExpertsFunction.function,
      experts: this.expertFunctions.map((e) => ({ entry: e.expert, function: e.fn.function })),
      extractor: this.extractor
        ? {
            kind: 'batch',
            jobQueue: this.extractor.jobQueue,
            onDemandJobQueue: this.extractor.onDemandQueue,
            jobDefinition: this.extractor.jobDefinition,
          }
        : { kind: 'lambda', function: (this.extractorFunction as ExtractorFunction).function },
      extractTimeout,
      encryptionKey: key,
      logRetention,
    });

    // Claims last as long as an execution can: a RUNNING scan older than that was abandoned.
    this.validateFunction.function.addEnvironment(ENV.scanLeaseSeconds, String(this.workflow.timeout.toSeconds()));
    this.executionEnded = new ExecutionEnded(this, 'ExecutionEnded', {
      stateMachine: this.workflow.stateMachine,
      resultsTable: props.resultsTable,
      encryptionKey: key,
      logRetention,
      vpc: network.vpc,
      securityGroup: network.functionSecurityGroup,
    });

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

    // Executions that ended without finishing: ExecutionEnded records their scans FAILED,
    // but someone should know why they timed out (capacity?) or who stopped them.
    const timedOutExecutions = new cloudwatch.Alarm(this, 'ExecutionsTimedOutAlarm', {
      alarmDescription:
        'A sonomark execution timed out (its scan is recorded FAILED with EXECUTION_TIMED_OUT); check GPU capacity and the extractor queue.',
      metric: this.workflow.stateMachine.metricTimedOut({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const abortedExecutions = new cloudwatch.Alarm(this, 'ExecutionsAbortedAlarm', {
      alarmDescription:
        'A sonomark execution was stopped (aborted); its scan is recorded FAILED with EXECUTION_ABORTED.',
      metric: this.workflow.stateMachine.metricAborted({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const alarms = [failedExecutions, timedOutExecutions, abortedExecutions];
    const extractorJob = this.extractor;
    if (extractorJob) {
      // Jobs stuck RUNNABLE. Batch publishes no queue metrics, but it does emit a
      // "Batch Job Queue Blocked" event whenever the job at the head of a queue is RUNNABLE
      // and cannot run (no spot or on-demand capacity, maxvCpus or instance types too small,
      // a misconfigured environment; the reason is the job's statusReason, and the first
      // three are what the queue's jobStateTimeLimitActions cancel on). Those events reach
      // the default bus without charge; this rule matches the
      // extractor queue's, and EventBridge counts the rule's matches in AWS/Events
      // TriggeredRules (dimension RuleName), which the alarm watches. A rule is only run
      // with a target: the alarm topic, with a message naming the job (scan-<scanId>) and
      // Batch's reason but not the event's container environment, which holds the object key.
      this.queueBlockedRule = new events.Rule(this, 'ExtractorQueueBlockedRule', {
        description: 'A sonomark extractor job is stuck RUNNABLE at the head of its Batch queue',
        eventPattern: {
          source: ['aws.batch'],
          detailType: ['Batch Job Queue Blocked'],
          detail: { jobQueue: [extractorJob.jobQueue.jobQueueArn, extractorJob.onDemandQueue.jobQueueArn] },
        },
      });
      // targets.SnsTopic would let events.amazonaws.com publish from any rule of any account;
      // this grant names the one rule.
      const blockedMessage = events.RuleTargetInput.fromText(
        `sonomark: Batch job ${events.EventField.fromPath('$.detail.jobName')} is blocked RUNNABLE: ` +
          `${events.EventField.fromPath('$.detail.statusReason')}. Without spot capacity it moves to the ` +
          `on-demand queue after ${config.spotCapacityWaitMinutes} minutes; otherwise Batch cancels it after ` +
          `${config.runnableTimeLimitMinutes} minutes and its scan is recorded FAILED.`,
      );
      const topic = this.alarmTopic;
      this.queueBlockedRule.addTarget({
        bind: (rule) => {
          topic.addToResourcePolicy(
            new iam.PolicyStatement({
              sid: 'QueueBlockedEvents',
              principals: [new iam.ServicePrincipal('events.amazonaws.com')],
              actions: ['sns:Publish'],
              resources: [topic.topicArn],
              conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleRef.ruleArn } },
            }),
          );
          return { arn: topic.topicArn, input: blockedMessage };
        },
      });
      this.jobsRunnableTooLongAlarm = new cloudwatch.Alarm(this, 'JobsRunnableTooLongAlarm', {
        alarmDescription:
          'An extractor job is stuck RUNNABLE: Batch cannot place it (GPU capacity or quota, or a job larger than the compute environments). ' +
          `Batch cancels it after ${config.runnableTimeLimitMinutes} minutes.`,
        metric: new cloudwatch.Metric({
          namespace: 'AWS/Events',
          metricName: 'TriggeredRules',
          dimensionsMap: { RuleName: this.queueBlockedRule.ruleName },
          period: Duration.minutes(5),
          statistic: 'Sum',
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarms.push(this.jobsRunnableTooLongAlarm);
    }
    for (const alarm of alarms) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}

/** A config override for an expert the manifest does not have is a typo: fail synthesis, naming both lists. */
function checkExpertOverrides(config: SonomarkConfig, manifest: Manifest): void {
  const known = manifest.experts.map((e) => e.name);
  const unknown = Object.keys(config.expertOverrides).filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `Config expertOverrides names expert(s) not in the manifest: ${unknown.join(', ')} (manifest: ${known.join(', ')}).`,
    );
  }
}
