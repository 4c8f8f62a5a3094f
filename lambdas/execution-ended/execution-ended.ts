/**
 * ExecutionEnded: a Step Functions "Execution Status Change" event for an execution that
 * TIMED_OUT, was ABORTED or FAILED. Such an execution may have left its scan RUNNING
 * (nothing ran RecordFailure, or RecordFailure itself failed), and a RUNNING scan makes
 * every re-upload of the same bytes a skip. This records the scan FAILED with the
 * specific reason, if and only if it is still RUNNING under this execution
 * (recordAbandonedScan: one conditional write; a duplicated event changes nothing).
 *
 * Local mode calls this with the same event shape when its runner ends an execution
 * that way (local/workflow.ts).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { EXECUTION_ENDED_STATUSES } from '../../core/contract';
import { recordAbandonedScan, type AbandonedScanResult } from '../../core/results-store';
import type { ProblemDetail } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';

/** The statuses the rule forwards; every other one means the execution recorded its own outcome. */
export const ENDED_STATUSES = EXECUTION_ENDED_STATUSES;

/**
 * The error name of a local execution stopped by SIGINT/SIGTERM (StopExecution's `error`
 * in the cloud is free text; this one is sonomark's own).
 */
export const INTERRUPTED_ERROR = 'sonomark.Interrupted';

/**
 * The EventBridge event (detail-type "Step Functions Execution Status Change"). Only the
 * fields used are checked; the event also carries the execution's input and output,
 * which hold the object key and are never read or logged here.
 */
export const ExecutionStatusChangeEvent = z.object({
  'detail-type': z.literal('Step Functions Execution Status Change'),
  source: z.literal('aws.states'),
  detail: z.object({
    executionArn: z.string().min(1),
    stateMachineArn: z.string().min(1).optional(),
    status: z.enum(ENDED_STATUSES),
    /** StopExecution's error and cause, or the failure's; null when none. */
    error: z.string().nullish(),
    cause: z.string().nullish(),
  }),
});
export type ExecutionStatusChangeEvent = z.infer<typeof ExecutionStatusChangeEvent>;

export interface ExecutionEndedDeps {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly now?: () => Date;
}

export interface ExecutionEndedOutput {
  readonly executionArn: string;
  readonly status: (typeof ENDED_STATUSES)[number];
  readonly problem: ProblemDetail;
  readonly result: AbandonedScanResult;
}

/** What the scan's FAILED record says, by how its execution ended. Never the cause text: it can quote the input. */
export function abandonedProblem(status: (typeof ENDED_STATUSES)[number], error?: string | null): ProblemDetail {
  if (error === INTERRUPTED_ERROR) {
    return {
      code: 'INTERRUPTED',
      message: 'The analysis was interrupted (the local run was stopped) before it finished. Analyse the clip again.',
    };
  }
  switch (status) {
    case 'TIMED_OUT':
      return {
        code: 'EXECUTION_TIMED_OUT',
        message:
          'The analysis did not finish within the workflow time limit (the GPU job may have waited too long for capacity). Upload the clip again to retry.',
      };
    case 'ABORTED':
      return {
        code: 'EXECUTION_ABORTED',
        message: 'The analysis was stopped by an operator before it finished. Upload the clip again to retry.',
      };
    case 'FAILED': {
      // An error *name* (States.Runtime, a Lambda errorType) is safe to quote; anything else is dropped.
      const name = error && /^[A-Za-z0-9_.]{1,100}$/.test(error) ? error : undefined;
      return {
        code: 'EXECUTION_FAILED',
        message: `The analysis failed without recording why (the workflow failed${
          name ? ` with ${name}` : ''
        } before or while recording the failure). Upload the clip again to retry.`,
      };
    }
  }
}

export async function executionEnded(input: unknown, deps: ExecutionEndedDeps): Promise<ExecutionEndedOutput> {
  const event = parsePayload(ExecutionStatusChangeEvent, input, 'ExecutionEnded input');
  const { executionArn, status, error } = event.detail;
  const problem = abandonedProblem(status, error);
  const result = await recordAbandonedScan(
    deps.doc,
    deps.table,
    executionArn,
    problem,
    (deps.now?.() ?? new Date()).toISOString(),
  );
  return { executionArn, status, problem, result };
}
