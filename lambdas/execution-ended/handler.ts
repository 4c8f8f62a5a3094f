/**
 * ExecutionEnded Lambda, the target of the EventBridge rule on the state machine's
 * TIMED_OUT, ABORTED and FAILED executions: thin wrapper over executionEnded
 * (execution-ended.ts). Logs the execution ARN (a name derived from the object's
 * identity hash) and the scan id, never the event's input: it holds the object key.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools } from '../shared/runtime';
import { executionEnded, type ExecutionEndedDeps } from './execution-ended';

const tools = powertools(FUNCTIONS.executionEnded);
const { logger, metrics, tracer } = tools;

const deps: ExecutionEndedDeps = {
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
};

export const handler = sonomarkHandler(
  async (input) => {
    const out = await executionEnded(input, deps);
    const fields = {
      executionArn: out.executionArn,
      executionStatus: out.status,
      scanId: out.result.scanId,
      problemCode: out.problem.code,
    };
    if (out.result.recorded) {
      logger.warn('abandoned scan recorded FAILED', fields);
      metrics.addDimension('code', out.problem.code);
      metrics.addMetric('AbandonedScansRecorded', MetricUnit.Count, 1);
    } else {
      logger.info('execution ended; nothing to record', { ...fields, reason: out.result.reason });
    }
    return out;
  },
  tools,
  {
    message: 'recording the ended execution failed',
    fields: (input) => ({
      executionArn: (input as { detail?: { executionArn?: unknown } } | null)?.detail?.executionArn,
    }),
  },
);
