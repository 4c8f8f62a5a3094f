/**
 * StartExecution Lambda, the EventBridge rule's target: thin wrapper over
 * startExecution (start-execution.ts). Logs the execution name only, never the
 * object key: a file name can name a person.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { sonomarkHandler } from '../shared/middleware';
import { powertools, sfnClient } from '../shared/runtime';
import { startExecution, type StartExecutionDeps } from './start-execution';

const tools = powertools(FUNCTIONS.startExecution);
const { logger, metrics, tracer } = tools;

const deps: StartExecutionDeps = {
  sfn: sfnClient(tracer),
  stateMachineArn: requireEnv(ENV.stateMachineArn),
};

// A failure is rethrown: Lambda retries the asynchronous invocation, then sends the event to the DLQ.
export const handler = sonomarkHandler(
  async (input) => {
    const out = await startExecution(input, deps);
    if (out.status === 'started') {
      logger.info('execution started', { executionName: out.executionName });
      metrics.addMetric('ExecutionsStarted', MetricUnit.Count, 1);
    } else {
      logger.info('execution already started; duplicate event ignored', { executionName: out.executionName });
      metrics.addMetric('DuplicateEvents', MetricUnit.Count, 1);
    }
    return out;
  },
  tools,
  { message: 'starting the execution failed' },
);
