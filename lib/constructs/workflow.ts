/**
 * THE sonomark state machine (DESIGN.md, "Data flow"). Local mode extracts this
 * definition from the synthesized template and runs it unchanged, binding Task
 * states by name (STATE in core/contract.ts), so names and paths here are a
 * contract.
 *
 *   Start → Validate → Validated → Route ─┬─ analyze → Claimed → Extract → LoadExperts (manifest, at run time) → Score[ScoreExpert] → Finalize → Done
 *                                         │            no spot capacity ─┴▶ ExtractFailed → ExtractOnDemand ─┘
 *                                         │   (computeMode 'lambda': Extract invokes the extractor function; no ExtractFailed/ExtractOnDemand)
 *                                         ├─ skip    → AlreadyAnalyzed
 *                                         ├─ ignore  → NotAClip
 *                                         └─ reject  → RecordFailure → Failed
 *   any Task / Map error ──Catch($.error)──▶ RecordFailure → Failed
 */
import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { ExpertEntry } from '../../core/schemas';
import { EXTRACT_ENV, PATHS, STATE } from '../../core/contract';
import { TRANSIENT_ERROR_NAME } from '../../core/errors';
import { SPOT_CAPACITY_CANCEL_REASON } from './gpu-job';

export interface WorkflowExpert {
  readonly entry: ExpertEntry;
  readonly function: lambda.IFunction;
}

export interface WorkflowProps {
  readonly validateFunction: lambda.IFunction;
  readonly finalizeFunction: lambda.IFunction;
  readonly recordFailureFunction: lambda.IFunction;
  /** Reads the manifest at run time and returns the experts to score with (lambdas/load-experts). */
  readonly loadExpertsFunction: lambda.IFunction;
  /** One function per manifest expert name, in manifest order (which functions ScoreExpert may invoke). */
  readonly experts: readonly WorkflowExpert[];
  /**
   * Where Extract runs: the Batch job (`gpu`, `cpu`: spot queue first, then on demand), or the
   * extractor's Lambda function (`lambda`: ExtractorFunction; no ExtractFailed/ExtractOnDemand).
   */
  readonly extractor: BatchExtractor | LambdaExtractor;
  /** Per-attempt limit of the Extract job (the task's `taskTimeout`, rendered as Batch Timeout.AttemptDurationSeconds); the function's timeout in `lambda` mode. */
  readonly extractTimeout: Duration;
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
}

export interface BatchExtractor {
  readonly kind: 'batch';
  /** The spot queue, where Extract submits first. */
  readonly jobQueue: batch.IJobQueue;
  /** The on-demand queue, where ExtractOnDemand resubmits a job the spot queue cancelled for lack of capacity. */
  readonly onDemandJobQueue: batch.IJobQueue;
  readonly jobDefinition: batch.IJobDefinition;
}

export interface LambdaExtractor {
  readonly kind: 'lambda';
  readonly function: lambda.IFunction;
}

/** Errors worth retrying on any Lambda invoke: throttles and service faults, never the handler's own errors. */
export const LAMBDA_TRANSIENT_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
];

export const BATCH_TRANSIENT_ERRORS = [
  'Batch.AWSBatchException',
  'Batch.ServerException',
  'Batch.TooManyRequestsException',
];

/**
 * Sonomark.TransientError (core/errors.ts): what every handler throws for throttling,
 * 5xx, timeouts and reset connections (sonomarkHandler classifies them, core/transient.ts),
 * after the AWS SDK's own 3 attempts. Every Task state retries it, before any other retrier.
 *
 * Schedule: 5 s × 2^n, capped at 2 min, with full jitter (each wait is uniform in
 * [0, cap]), 8 retries: caps 5, 10, 20, 40, 80, 120, 120, 120 s = 515 s, so a scan
 * rides out a throttle or an outage of up to about 8½ minutes (4¼ minutes expected
 * under full jitter) before it is recorded FAILED with code RETRIES_EXHAUSTED. Full
 * jitter spreads a burst of scans throttled together, instead of retrying in lockstep.
 * Local mode runs this same block with every interval scaled (local/retry.ts).
 */
export const TRANSIENT_RETRY: sfn.RetryProps = {
  errors: [TRANSIENT_ERROR_NAME],
  interval: Duration.seconds(5),
  maxAttempts: 8,
  backoffRate: 2,
  maxDelay: Duration.minutes(2),
  jitterStrategy: sfn.JitterType.FULL,
};

/** Lambda service errors on an invoke (throttling, service faults): every Lambda Task of both workflows. */
export const LAMBDA_RETRY: sfn.RetryProps = {
  errors: LAMBDA_TRANSIENT_ERRORS,
  interval: Duration.seconds(2),
  maxAttempts: 5,
  backoffRate: 2,
  maxDelay: Duration.seconds(30),
  jitterStrategy: sfn.JitterType.FULL,
};

/** Batch API errors on SubmitJob/DescribeJobs (not the job's own failure): every Batch Task of both workflows. */
export const BATCH_RETRY: sfn.RetryProps = {
  errors: BATCH_TRANSIENT_ERRORS,
  interval: Duration.seconds(5),
  maxAttempts: 5,
  backoffRate: 2,
  maxDelay: Duration.minutes(2),
  jitterStrategy: sfn.JitterType.FULL,
};

/**
 * What a Batch extraction's state keeps of the job (`$.extract`): its id and run time, which the usage
 * records bill (Finalize for a scan, ScoreBatch divided over a cohort batch's clips).
 */
export const BATCH_JOB_TIMES = {
  jobId: sfn.JsonPath.stringAt('$.JobId'),
  startedAt: sfn.JsonPath.numberAt('$.StartedAt'),
  stoppedAt: sfn.JsonPath.numberAt('$.StoppedAt'),
};

/** The error Step Functions gives a Lambda invocation that ran past its function's timeout. */
export const LAMBDA_TIMEOUT_ERROR = 'Sandbox.Timedout';

/**
 * A Lambda invocation that ran past its timeout is retried, twice, after 5 s then 10 s (full
 * jitter). Why retry at all: the usual causes pass on another attempt: a cold start that also
 * loaded an expert model, or an AWS call that hung on a dead connection (the SDK sets no socket
 * timeout by default, so a stalled request waits out the function's timeout instead of failing
 * as a TransientError). It is safe: every handler is idempotent (the claim and the results are
 * conditional writes keyed by scan, expert and version), and a timed-out invocation may have
 * finished its writes. Why only twice: a step that times out because its work is too big (a
 * huge upload to hash) times out again, and each attempt costs a full timeout of Lambda time;
 * after 3 attempts the Catch records the scan FAILED with code TIMEOUT (record-failure.ts).
 * Lambda.Unknown (out of memory, a crashed runtime) is not retried: it fails the same way again.
 */
export const LAMBDA_TIMEOUT_RETRY: sfn.RetryProps = {
  errors: [LAMBDA_TIMEOUT_ERROR],
  interval: Duration.seconds(5),
  maxAttempts: 2,
  backoffRate: 2,
  jitterStrategy: sfn.JitterType.FULL,
};

/**
 * Everything no retrier took (a permanent error, or a transient one whose retries ran
 * out) goes to RecordFailure, which turns the error name into a specific code and reason.
 */
const catchAll: sfn.CatchProps = { errors: [sfn.Errors.ALL], resultPath: PATHS.error };

export class Workflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;
  /** The execution timeout: no execution runs longer, so no claim (lease) need hold longer. */
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: WorkflowProps) {
    super(scope, id);

    // -- failure path ------------------------------------------------------
    const failed = new sfn.Fail(this, STATE.failed, {
      error: 'ScanFailed',
      cause: 'The scan could not be analysed; its FAILED result item says why.',
    });
    const recordFailure = new tasks.LambdaInvoke(this, STATE.recordFailure, {
      lambdaFunction: props.recordFailureFunction,
      // The handler parses {event, scan?, validation?, error?} out of the whole state.
      payload: sfn.TaskInput.fromJsonPathAt('$'),
      retryOnServiceExceptions: false,
      resultPath: sfn.JsonPath.DISCARD,
    })
      .addRetry(TRANSIENT_RETRY)
      .addRetry({ ...LAMBDA_RETRY, maxAttempts: 6 })
      .addRetry(LAMBDA_TIMEOUT_RETRY)
      // A failure to record a failure still ends in Failed (the executions-failed alarm fires).
      .addCatch(failed, { errors: [sfn.Errors.ALL], resultPath: '$.recordFailureError' })
      .next(failed);

    // -- 1 Validate --------------------------------------------------------
    const start = new sfn.Pass(this, STATE.start, {
      parameters: { [`event`]: sfn.JsonPath.entirePayload },
    });
    const validate = new tasks.LambdaInvoke(this, STATE.validate, {
      lambdaFunction: props.validateFunction,
      // The execution's ARN is the claim's lease holder (lambdas/execution-ended finds the scan by it).
      payload: sfn.TaskInput.fromObject({
        event: sfn.JsonPath.objectAt(PATHS.event),
        execution: sfn.JsonPath.executionId,
      }),
      payloadResponseOnly: false,
      retryOnServiceExceptions: false,
      // Keep only the handler's return value; the invoke metadata would bloat the history.
      resultSelector: { Payload: sfn.JsonPath.objectAt('$.Payload') },
      resultPath: PATHS.validation,
    })
      .addRetry(TRANSIENT_RETRY)
      .addRetry(LAMBDA_RETRY)
      .addRetry(LAMBDA_TIMEOUT_RETRY)
      .addCatch(recordFailure, catchAll);
    // ResultSelector can only build an object, so `$.validation` is {Payload: ValidateOutput}
    // after Validate; this Pass lifts the ValidateOutput itself into `$.validation`.
    const validated = new sfn.Pass(this, STATE.validated, {
      parameters: {
        event: sfn.JsonPath.objectAt(PATHS.event),
        validation: sfn.JsonPath.objectAt(`${PATHS.validation}.Payload`),
      },
    });

    // -- 2 Extract ---------------------------------------------------------
    // Parameters rather than InputPath+ResultPath: the resulting state is spelled out.
    const claimed = new sfn.Pass(this, STATE.claimed, {
      parameters: {
        event: sfn.JsonPath.objectAt(PATHS.event),
        validation: sfn.JsonPath.objectAt(PATHS.validation),
        scan: sfn.JsonPath.objectAt(`${PATHS.validation}.scan`),
      },
    });
    const scan = (field: string) => sfn.JsonPath.stringAt(`${PATHS.scan}.${field}`);
    // One job, two queues: Extract on the spot queue, ExtractOnDemand (same job name,
    // definition, environment and retries) on the on-demand queue.
    const extractOn = (id: string, queue: batch.IJobQueue) =>
      new tasks.BatchSubmitJob(this, id, {
        jobName: sfn.JsonPath.format('scan-{}', scan('scanId')),
        jobQueueArn: queue.jobQueueArn,
        jobDefinitionArn: jobDefinitionOf(props.extractor).jobDefinitionArn,
        integrationPattern: sfn.IntegrationPattern.RUN_JOB,
        containerOverrides: {
          environment: {
            [EXTRACT_ENV.scanId]: scan('scanId'),
            [EXTRACT_ENV.inputBucket]: scan('bucket'),
            [EXTRACT_ENV.inputKey]: scan('key'),
            [EXTRACT_ENV.inputVersionId]: scan('versionId'),
            [EXTRACT_ENV.featuresBucket]: scan('featuresBucket'),
            [EXTRACT_ENV.featuresKey]: scan('featuresKey'),
            [EXTRACT_ENV.modality]: scan('modality'),
          },
        },
        taskTimeout: sfn.Timeout.duration(props.extractTimeout),
        resultSelector: BATCH_JOB_TIMES,
        resultPath: PATHS.extract,
      })
        // In AWS a transient failure inside the container exits with EXTRACTOR_EXIT_TRANSIENT
        // and Batch retries the attempt (gpu-job.ts); the state sees only Batch.* or
        // States.TaskFailed. Local mode has no Batch: its binding raises the transient error
        // to this retrier instead.
        .addRetry(TRANSIENT_RETRY)
        .addRetry(BATCH_RETRY);
    // `lambda` mode: the same state name, payload fields and result shape ($.extract
    // {jobId, startedAt, stoppedAt}) as the Batch form; the Lambda Tasks' retry family. A
    // failed extraction leaves its error document (runExtractJob) that RecordFailure reads,
    // as the Batch job's does.
    const extractInLambda = (fn: lambda.IFunction) =>
      new tasks.LambdaInvoke(this, STATE.extract, {
        lambdaFunction: fn,
        payload: sfn.TaskInput.fromObject({
          scanId: scan('scanId'),
          inputBucket: scan('bucket'),
          inputKey: scan('key'),
          inputVersionId: scan('versionId'),
          featuresBucket: scan('featuresBucket'),
          featuresKey: scan('featuresKey'),
          modality: scan('modality'),
        }),
        payloadResponseOnly: false,
        retryOnServiceExceptions: false,
        resultSelector: {
          jobId: sfn.JsonPath.stringAt('$.Payload.jobId'),
          startedAt: sfn.JsonPath.numberAt('$.Payload.startedAt'),
          stoppedAt: sfn.JsonPath.numberAt('$.Payload.stoppedAt'),
        },
        resultPath: PATHS.extract,
      })
        .addRetry(TRANSIENT_RETRY)
        .addRetry(LAMBDA_RETRY)
        .addRetry(LAMBDA_TIMEOUT_RETRY)
        .addCatch(recordFailure, catchAll);
    const extractor = props.extractor;
    let extract: sfn.TaskStateBase;
    let extractOnDemand: sfn.TaskStateBase | undefined;
    if (extractor.kind === 'lambda') {
      extract = extractInLambda(extractor.function);
    } else {
      extractOnDemand = extractOn(STATE.extractOnDemand, extractor.onDemandJobQueue).addCatch(recordFailure, catchAll);
      // A Catch matches error names only, and Batch's cancellation is States.TaskFailed like
      // any failed job: the job description in the Cause carries the reason.
      const extractFailed = new sfn.Choice(this, STATE.extractFailed)
        .when(
          sfn.Condition.and(
            sfn.Condition.isString(`${PATHS.error}.Cause`),
            sfn.Condition.stringMatches(`${PATHS.error}.Cause`, `*${SPOT_CAPACITY_CANCEL_REASON}*`),
          ),
          extractOnDemand,
        )
        .otherwise(recordFailure);
      extract = extractOn(STATE.extract, extractor.jobQueue).addCatch(extractFailed, catchAll);
    }

    // -- 3 Score -----------------------------------------------------------
    // The expert list is read from the manifest when the scan runs (the artifacts bucket's copy
    // in the cloud, the local manifest in local mode), not baked into this definition: a new
    // expert version is published without redeploying the state machine.
    const loadExperts = new tasks.LambdaInvoke(this, STATE.loadExperts, {
      lambdaFunction: props.loadExpertsFunction,
      payload: sfn.TaskInput.fromObject({ scan: sfn.JsonPath.objectAt(PATHS.scan) }),
      payloadResponseOnly: false,
      retryOnServiceExceptions: false,
      resultSelector: { list: sfn.JsonPath.objectAt('$.Payload.list') },
      resultPath: PATHS.experts,
    })
      .addRetry(TRANSIENT_RETRY)
      .addRetry(LAMBDA_RETRY)
      .addRetry(LAMBDA_TIMEOUT_RETRY)
      .addCatch(recordFailure, catchAll);
    // Raw state JSON: LambdaInvoke cannot take the function name from the input.
    // OutputPath $.Payload makes each iteration's output the ExpertResult itself.
    const scoreExpert = new sfn.CustomState(this, STATE.scoreExpert, {
      stateJson: {
        Type: 'Task',
        Resource: `arn:${Aws.PARTITION}:states:::lambda:invoke`,
        Parameters: {
          'FunctionName.$': '$.expert.functionArn',
          Payload: {
            'scan.$': '$.scan',
            expert: {
              'name.$': '$.expert.name',
              'version.$': '$.expert.version',
              'file.$': '$.expert.file',
              'sha256.$': '$.expert.sha256',
            },
          },
        },
        OutputPath: '$.Payload',
      },
    })
      .addRetry(TRANSIENT_RETRY)
      .addRetry(LAMBDA_RETRY)
      .addRetry(LAMBDA_TIMEOUT_RETRY);
    const score = new sfn.Map(this, STATE.score, {
      itemsPath: `${PATHS.experts}.list`,
      itemSelector: {
        scan: sfn.JsonPath.objectAt(PATHS.scan),
        expert: sfn.JsonPath.objectAt('$$.Map.Item.Value'),
      },
      // Experts are few and each has its own reserved concurrency.
      maxConcurrency: 0,
      resultPath: PATHS.results,
    })
      .itemProcessor(scoreExpert)
      .addCatch(recordFailure, catchAll);

    // -- 4 Finalize --------------------------------------------------------
    const finalize = new tasks.LambdaInvoke(this, STATE.finalize, {
      lambdaFunction: props.finalizeFunction,
      payload: sfn.TaskInput.fromObject({
        scan: sfn.JsonPath.objectAt(PATHS.scan),
        extract: sfn.JsonPath.objectAt(PATHS.extract),
        results: sfn.JsonPath.objectAt(PATHS.results),
      }),
      payloadResponseOnly: false,
      retryOnServiceExceptions: false,
      resultSelector: { Payload: sfn.JsonPath.objectAt('$.Payload') },
      resultPath: PATHS.summary,
    })
      .addRetry(TRANSIENT_RETRY)
      .addRetry(LAMBDA_RETRY)
      .addRetry(LAMBDA_TIMEOUT_RETRY)
      .addCatch(recordFailure, catchAll);
    const done = new sfn.Succeed(this, STATE.done, { outputPath: `${PATHS.summary}.Payload` });

    const route = new sfn.Choice(this, STATE.route)
      .when(
        sfn.Condition.stringEquals(`${PATHS.validation}.action`, 'analyze'),
        claimed.next(extract).next(loadExperts).next(score).next(finalize).next(done),
      )
      .when(sfn.Condition.stringEquals(`${PATHS.validation}.action`, 'skip'), new sfn.Succeed(this, STATE.skipped))
      .when(sfn.Condition.stringEquals(`${PATHS.validation}.action`, 'ignore'), new sfn.Succeed(this, STATE.ignored))
      .when(sfn.Condition.stringEquals(`${PATHS.validation}.action`, 'reject'), recordFailure)
      // An action this workflow does not know is a contract break: record it, do not guess.
      .otherwise(recordFailure);

    // The on-demand job joins the main path where the spot one would have.
    extractOnDemand?.next(loadExperts);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      // Step Functions vended logs need the /aws/vendedlogs/ prefix to avoid the resource-policy size limit.
      logGroupName: `/aws/vendedlogs/states/sonomark-${Aws.STACK_NAME}`,
      retention: props.logRetention,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // A GPU job can queue for capacity and retry on spot reclaim (3 attempts); bound the execution anyway.
    // (A Lambda Extract makes at most 3 attempts of its timeout too: LAMBDA_TIMEOUT_RETRY.)
    this.timeout = Duration.seconds(props.extractTimeout.toSeconds() * 3).plus(Duration.hours(2));
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(start.next(validate).next(validated).next(route)),
      stateMachineType: sfn.StateMachineType.STANDARD,
      tracingEnabled: true,
      // Execution data (state input and output) carries object keys and sidecar metadata, and
      // a key can name a patient: the log keeps states, events and error names, not the data.
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      timeout: this.timeout,
    });

    // ScoreExpert is raw ASL, so CDK cannot infer its permissions: exactly the expert functions.
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: props.experts.map((e) => e.function.functionArn),
      }),
    );

    if (extractor.kind === 'lambda') return;
    // Extract is a Run a Job (.sync) task: Step Functions polls the job and, when the
    // execution is stopped or times out, or the task times out, terminates it. CDK's
    // BatchSubmitJob grants only batch:SubmitJob and the managed events rule; without
    // these two, an abandoned scan's GPU job kept running (and billing). TerminateJob
    // authorizes a job ARN (job/{jobId}, known only at run time, with no condition key
    // for its queue or definition): job/* in this account and region. DescribeJobs
    // supports no resource-level permissions at all (Resource "*", lib/nag.ts).
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['batch:TerminateJob'],
        resources: [Stack.of(this).formatArn({ service: 'batch', resource: 'job', resourceName: '*' })],
      }),
    );
    this.stateMachine.addToRolePolicy(new iam.PolicyStatement({ actions: ['batch:DescribeJobs'], resources: ['*'] }));
  }
}

function jobDefinitionOf(extractor: BatchExtractor | LambdaExtractor): batch.IJobDefinition {
  if (extractor.kind !== 'batch') throw new Error('The Batch form of Extract needs the Batch extractor.');
  return extractor.jobDefinition;
}
