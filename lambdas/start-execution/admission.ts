/**
 * Admission control: uploads wait in the SQS upload queue, and the starter starts
 * an execution only while fewer than `maxRunningScans` executions of the state
 * machine are RUNNING, so a burst (100k uploads in an hour, a cohort) drains at the
 * rate the GPU fleet takes it instead of failing for capacity.
 *
 * Mechanism. The count is Step Functions' own: ListExecutions(RUNNING), which needs
 * no counter to keep in step (a counter in the table would drift on every execution
 * that ends without decrementing it: timed out, aborted, a failed RecordFailure).
 * The queue's event source runs at most `maximumConcurrency` starters at once, and
 * messages it does not hand to a starter stay in the queue untouched (not received,
 * so their receive count does not grow). While the cap is reached, a starter holds
 * its batch and waits, re-counting every ADMISSION_POLL_MS (jittered), for as long
 * as ADMISSION_WAIT_SECONDS allows; what is still waiting then is returned as batch
 * item failures and comes back after the queue's visibility timeout. So only the few
 * messages in flight accumulate receives while the fleet is saturated, and the
 * dead-letter queue (maxReceiveCount) sees a message only when starting it failed
 * many times, or after hours of a fleet that finishes nothing (then the DLQ alarm
 * is the right signal).
 *
 * The cap is soft by at most one batch per concurrent starter: two starters may both
 * see the last free slot. Duplicated deliveries are harmless: the execution name is
 * deterministic and StartExecution refuses a second one (start-execution.ts).
 */
import { ListExecutionsCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { PayloadError } from '../../core/errors';
import { parsePayload } from '../../core/zod-parse';
import { startExecution, type StartExecutionDeps } from './start-execution';

/** How often a waiting starter counts the running executions again (± half, jittered). */
export const ADMISSION_POLL_MS = 15_000;

/** The part of an SQS event the starter reads. */
const SqsBatch = z.object({
  Records: z.array(z.object({ messageId: z.string().min(1), body: z.string() })).min(1),
});

export interface AdmissionDeps extends StartExecutionDeps {
  readonly sfn: SFNClient;
  /** The cap on executions RUNNING at once (config `admission.maxRunningScans`). */
  readonly maxRunningScans: number;
  /** How long one invocation may wait for a free slot, in ms (ADMISSION_WAIT_SECONDS). */
  readonly maxWaitMs: number;
  /** @default ADMISSION_POLL_MS */
  readonly pollMs?: number;
  /** Injected for tests. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Injected for tests. @default Date.now */
  readonly now?: () => number;
  /** Injected for tests. @default Math.random */
  readonly random?: () => number;
}

export interface AdmissionResult {
  /** The SQS partial batch response: these messages stay in the queue. */
  readonly batchItemFailures: { itemIdentifier: string }[];
  readonly started: number;
  /** Deliveries of an event whose execution already existed. */
  readonly duplicates: number;
  /** Left in the queue because the cap stayed reached for the whole wait. */
  readonly deferred: number;
  /** Left in the queue because starting them failed (they reach the DLQ after maxReceiveCount). */
  readonly failed: number;
  /** Failures by error name, for the log (names only: a message can quote an object key). */
  readonly errors: string[];
}

/** RUNNING executions of the state machine, counted up to `limit` (enough to know whether a slot is free). */
export async function countRunning(sfn: SFNClient, stateMachineArn: string, limit: number): Promise<number> {
  let count = 0;
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new ListExecutionsCommand({
        stateMachineArn,
        statusFilter: 'RUNNING',
        maxResults: Math.min(1000, Math.max(1, limit - count)),
        nextToken,
      }),
    );
    count += page.executions?.length ?? 0;
    nextToken = page.nextToken;
  } while (nextToken && count < limit);
  return count;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Starts an execution for each message of the batch (an EventBridge S3 Object Created
 * event) while a slot is free, waiting for one within maxWaitMs; returns the messages
 * to leave in the queue. A ListExecutions failure is thrown: the whole batch stays.
 */
export async function admitBatch(input: unknown, deps: AdmissionDeps): Promise<AdmissionResult> {
  const { Records } = parsePayload(SqsBatch, input, 'SQS event');
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const random = deps.random ?? Math.random;
  const pollMs = deps.pollMs ?? ADMISSION_POLL_MS;
  const waitUntil = now() + deps.maxWaitMs;
  const failures: { itemIdentifier: string }[] = [];
  const errors: string[] = [];
  let started = 0;
  let duplicates = 0;
  let deferred = 0;
  let failed = 0;

  let free = deps.maxRunningScans - (await countRunning(deps.sfn, deps.stateMachineArn, deps.maxRunningScans));
  for (const [i, record] of Records.entries()) {
    while (free <= 0) {
      const delay = pollMs * (0.5 + random());
      if (now() + delay > waitUntil) break;
      await sleep(delay);
      free = deps.maxRunningScans - (await countRunning(deps.sfn, deps.stateMachineArn, deps.maxRunningScans));
    }
    if (free <= 0) {
      // The wait is over and the cap still reached: this and every later message stay queued.
      for (const rest of Records.slice(i)) failures.push({ itemIdentifier: rest.messageId });
      deferred = Records.length - i;
      break;
    }
    try {
      let event: unknown;
      try {
        event = JSON.parse(record.body);
      } catch {
        throw new PayloadError(
          'Invalid SQS message: the body is not JSON (expected an EventBridge S3 Object Created event).',
        );
      }
      const out = await startExecution(event, deps);
      if (out.status === 'started') {
        started += 1;
        free -= 1;
      } else {
        duplicates += 1;
      }
    } catch (err) {
      failures.push({ itemIdentifier: record.messageId });
      failed += 1;
      errors.push((err as { name?: string } | null)?.name ?? 'Error');
    }
  }
  return { batchItemFailures: failures, started, duplicates, deferred, failed, errors };
}
