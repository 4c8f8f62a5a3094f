/**
 * Binds each Task state of the synthesized definition to in-process code, by
 * state name, emulating the service integration its Resource names:
 *
 * - `arn:aws:states:::lambda:invoke`: input {FunctionName, Payload} → the
 *   handler behind FunctionName; output {Payload, StatusCode}; a thrown error
 *   surfaces as Step Functions does: Error = errorType, Cause = JSON. It is
 *   classified first as sonomarkHandler does in Lambda (toWorkflowError), so a
 *   throttled call surfaces as Sonomark.TransientError and the Retry blocks run.
 * - With `computeMode: 'lambda'` the Extract state is such a lambda:invoke of the extractor's
 *   function (role `extractor`): the same extractor code runs in-process (local/handlers.ts).
 * - `arn:aws:states:::batch:submitJob.sync`: runs the extractor job with the
 *   container-override environment; a failed job fails the state with
 *   States.TaskFailed and a Cause shaped like Batch's job description. A job that
 *   failed transiently (an S3 500 after the SDK's retries) fails the state with
 *   Sonomark.TransientError instead: in AWS, Batch retries that attempt (the container
 *   exits EXIT_TRANSIENT, gpu-job.ts); locally the state's retrier stands in for it.
 * - Injected faults (faults.ts) act here: a transient error before the handler, or a
 *   Lambda timeout after it (`Sandbox.Timedout`, which Lambda's runtime raises, never
 *   classified by toWorkflowError).
 *
 * A Resource that local mode cannot run is an error at start-up, not a silent skip.
 */
import { EXTRACTOR_FUNCTION, FUNCTIONS, SPOT_CAPACITY_CANCEL_REASON } from '../core/contract';
import { ConfigError, TransientError } from '../core/errors';
import { toWorkflowError } from '../core/transient';
import { localFunctionArn, taskStates } from './asl';
import type { LambdaFunctionRef } from './definition';
import { LambdaTimeoutFault, NoSpotCapacityFault, type LocalFaults } from './faults';
import type { LambdaRole } from './names';

export type { LambdaRole } from './names';

export interface LocalHandlers {
  /** functionId: the logical id of the function invoked (its role's IAM policy applies, iam-guard.ts). */
  readonly lambdas: Record<LambdaRole, (payload: unknown, functionId?: string) => Promise<unknown>>;
  /** Runs the extractor job in-process with the Batch container environment. */
  readonly extractJob: (env: Record<string, string>) => Promise<void>;
}

/** Which sonomark function a Lambda resource is, from its stable construct id. */
export function roleOfConstructPath(cdkPath: string): LambdaRole | undefined {
  const parts = cdkPath.split('/');
  if (parts.includes(FUNCTIONS.validate.id)) return 'validate';
  if (parts.includes(FUNCTIONS.finalize.id)) return 'finalize';
  if (parts.includes(FUNCTIONS.recordFailure.id)) return 'recordFailure';
  if (parts.includes(FUNCTIONS.executionEnded.id)) return 'executionEnded';
  if (parts.includes(FUNCTIONS.loadExperts.id)) return 'loadExperts';
  if (parts.includes(EXTRACTOR_FUNCTION.id)) return 'extractor';
  if (parts.some(FUNCTIONS.expert.isId)) return 'expert';
  return undefined;
}

/**
 * The local ARN of each expert's function in the synthesized definition, by expert name: what
 * LoadExperts pairs the manifest's experts with (the cloud reads the same map from EXPERT_FUNCTIONS).
 */
export function expertFunctionArns(
  functions: readonly LambdaFunctionRef[],
  expertNames: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of expertNames) {
    const fn = functions.find((f) => f.path.split('/').includes(FUNCTIONS.expert.id(name)));
    if (fn) out[name] = localFunctionArn(fn.logicalId);
  }
  return out;
}

const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';
const BATCH_SYNC = 'arn:aws:states:::batch:submitJob.sync';

type LocalHandler = (input: unknown) => Promise<unknown>;

/** Step Functions serialises every payload as JSON; doing the same here catches non-JSON values early. */
const viaJson = <T>(value: T): T => (value === undefined ? (null as T) : (JSON.parse(JSON.stringify(value)) as T));

class ServiceIntegrationError extends Error {
  constructor(name: string, cause: string) {
    super(cause);
    this.name = name;
  }
}

function lambdaError(err: unknown): ServiceIntegrationError {
  const e = err instanceof Error ? err : new Error(String(err));
  const name = e.name && e.name !== 'Error' ? e.name : 'Error';
  return new ServiceIntegrationError(name, JSON.stringify({ errorType: name, errorMessage: e.message }));
}

export function bindTaskStates(
  definition: Record<string, unknown>,
  functions: readonly LambdaFunctionRef[],
  handlers: LocalHandlers,
  /** Injected handler faults (tests, the soak). @default none */
  faults?: LocalFaults,
): Record<string, LocalHandler> {
  const byArn = new Map<string, { role: LambdaRole; logicalId: string }>();
  for (const fn of functions) {
    const role = roleOfConstructPath(fn.path);
    // A function local mode cannot place would only fail mid-run; fail at start-up instead.
    if (!role)
      throw new ConfigError(
        `Lambda function ${fn.logicalId} (${fn.path || 'no construct path'}) has no local handler.`,
      );
    byArn.set(localFunctionArn(fn.logicalId), { role, logicalId: fn.logicalId });
  }

  const bound: Record<string, LocalHandler> = {};
  for (const task of taskStates(definition)) {
    if (task.resource === LAMBDA_INVOKE) {
      bound[task.name] = async (input) => {
        const { FunctionName, Payload } = input as { FunctionName?: string; Payload?: unknown };
        const fn = FunctionName ? byArn.get(FunctionName) : undefined;
        if (!fn) throw new ConfigError(`State ${task.name} invokes ${FunctionName}, which has no local handler.`);
        try {
          const payload = viaJson(Payload);
          faults?.beforeHandler(fn.role, payload);
          const timeout = faults?.takeTimeout(fn.role, payload);
          if (timeout) {
            // Ran past its timeout: whatever the handler did stays done (its writes landed, so a
            // retry must be idempotent), but Step Functions gets the runtime's error, not its answer.
            await handlers.lambdas[fn.role](payload, fn.logicalId).catch(() => undefined);
            await new Promise((r) => setTimeout(r, timeout.afterMs));
            throw new LambdaTimeoutFault(timeout.seconds);
          }
          const out = await handlers.lambdas[fn.role](payload, fn.logicalId);
          return { ExecutedVersion: '$LATEST', Payload: viaJson(out), StatusCode: 200 };
        } catch (err) {
          throw lambdaError(toWorkflowError(err));
        }
      };
    } else if (task.resource === BATCH_SYNC) {
      bound[task.name] = (input) =>
        runBatchJob(input as BatchSubmitJobInput, async (env) => {
          faults?.beforeHandler('extract', env, task.name);
          await handlers.extractJob(env);
        });
    } else {
      throw new ConfigError(`Task state ${task.name} uses ${task.resource}, which local mode cannot run.`);
    }
  }
  return bound;
}

interface BatchSubmitJobInput {
  JobName: string;
  JobQueue: string;
  JobDefinition: string;
  ContainerOverrides?: { Environment?: { Name: string; Value: string }[] };
}

let localJobCounter = 0;

async function runBatchJob(input: BatchSubmitJobInput, extractJob: LocalHandlers['extractJob']): Promise<unknown> {
  const env = Object.fromEntries((input.ContainerOverrides?.Environment ?? []).map((e) => [e.Name, e.Value]));
  const jobId = `local-${process.pid}-${++localJobCounter}`;
  const startedAt = Date.now();
  const describe = (
    status: 'SUCCEEDED' | 'FAILED',
    exitCode: number | undefined,
    reason?: string,
    statusReason?: string,
  ) => ({
    JobId: jobId,
    JobName: input.JobName,
    JobQueue: input.JobQueue,
    JobDefinition: input.JobDefinition,
    Status: status,
    StatusReason: status === 'FAILED' ? (statusReason ?? 'Essential container in task exited') : undefined,
    CreatedAt: startedAt,
    StartedAt: startedAt,
    StoppedAt: Date.now(),
    Container: { ExitCode: exitCode, Reason: reason },
    Attempts: [{ Container: { ExitCode: exitCode, Reason: reason }, StartedAt: startedAt, StoppedAt: Date.now() }],
  });
  try {
    await extractJob(env);
  } catch (err) {
    if (err instanceof NoSpotCapacityFault) {
      // As Batch reports a job its spot queue cancelled for want of capacity: it never ran.
      throw new ServiceIntegrationError(
        'States.TaskFailed',
        JSON.stringify(viaJson(describe('FAILED', undefined, undefined, SPOT_CAPACITY_CANCEL_REASON))),
      );
    }
    const classified = toWorkflowError(err);
    if (classified instanceof TransientError) throw lambdaError(classified);
    // Like Batch, the job description carries only the exit status; the container
    // itself records what went wrong next to the features key (see keys.ts).
    throw new ServiceIntegrationError('States.TaskFailed', JSON.stringify(viaJson(describe('FAILED', 1))));
  }
  return viaJson(describe('SUCCEEDED', 0));
}
