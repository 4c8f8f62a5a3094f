/**
 * Start: one S3 "Object Created" event → one workflow execution, at most once.
 *
 * EventBridge delivers at least once, and S3 itself can emit an event twice, so
 * the execution gets a deterministic name and StartExecution's own uniqueness
 * (per state machine, for 90 days after the execution closes) does the
 * de-duplication: a second start with the same name fails with
 * ExecutionAlreadyExists, which here means "already started" and is a success.
 * (While that execution is still running and the input is identical, Step
 * Functions simply returns it again, which is a success too.)
 *
 * The name cannot be the scan id proper: that is the sha256 of the clip's bytes,
 * which only Validate computes, after reading the object. What this event
 * carries is the object's identity (bucket, key, version id, ETag), and that is
 * the scan id's own fallback (DESIGN.md "Contracts"; scanIdFromObjectIdentity):
 * the same object version always maps to the same execution. A re-upload of the
 * same bytes is a new version, hence a new execution, and Validate's conditional
 * claim on the content-derived scan id then stops it (AlreadyAnalyzed).
 *
 * The execution input is the event exactly as EventBridge sent it, as it was
 * when EventBridge started the state machine itself: the workflow's Start state
 * wraps it as `$.event` for Validate.
 */
import { ExecutionAlreadyExists, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { scanIdFromObjectIdentity } from '../../core/scan-id';
import { S3ObjectCreatedEvent } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';

/** Prefix of every execution name this starter gives: "obj" = derived from the object identity. */
export const EXECUTION_NAME_PREFIX = 'scan-obj-';

/** Step Functions execution names: 1–80 characters; this starter uses only this safe subset. */
export const EXECUTION_NAME_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;

export interface StartExecutionDeps {
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
}

export interface StartExecutionOutput {
  /** `started`: this call started it; `already-started`: an earlier delivery did. */
  readonly status: 'started' | 'already-started';
  readonly executionName: string;
  /** The execution's ARN when Step Functions returned it (not on ExecutionAlreadyExists). */
  readonly executionArn?: string;
}

/** The execution name for an event's object version: `scan-obj-` + its fallback scan id (32 hex). */
export function executionNameFor(event: S3ObjectCreatedEvent): string {
  const { bucket, object } = event.detail;
  return `${EXECUTION_NAME_PREFIX}${scanIdFromObjectIdentity(bucket.name, object.key, object['version-id'], object.etag)}`;
}

const isAlreadyExists = (err: unknown): boolean =>
  err instanceof ExecutionAlreadyExists || (err as { name?: unknown } | null)?.name === 'ExecutionAlreadyExists';

/**
 * Starts the execution for `input` (an EventBridge S3 Object Created event).
 * Throws PayloadError for anything else, and rethrows every StartExecution error
 * but ExecutionAlreadyExists, so Lambda's retries and dead-letter queue apply.
 */
export async function startExecution(input: unknown, deps: StartExecutionDeps): Promise<StartExecutionOutput> {
  const event = parsePayload(S3ObjectCreatedEvent, input, 'S3 Object Created event');
  const executionName = executionNameFor(event);
  try {
    const out = await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: deps.stateMachineArn,
        name: executionName,
        // The original event, not the parsed one: zod drops fields it does not model.
        input: JSON.stringify(input),
      }),
    );
    return { status: 'started', executionName, executionArn: out.executionArn };
  } catch (err) {
    if (isAlreadyExists(err)) return { status: 'already-started', executionName };
    throw err;
  }
}
