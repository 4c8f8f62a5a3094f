/**
 * StartExecution Lambda, the EventBridge rule's target: thin wrapper over
 * startExecution (start-execution.ts). Logs the execution name only, never the
 * object key: a file name can name a person.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { errorFields, powertools, sfnClient } from '../shared/runtime';
import { startExecution, type StartExecutionDeps, type StartExecutionOutput } from './start-execution';

const { logger, metrics, tracer } = powertools(FUNCTIONS.startExecution);

const deps: StartExecutionDeps = {
  sfn: sfnClient(tracer),
  stateMachineArn: requireEnv(ENV.stateMachineArn),
};

export async function handler(input: unknown, context?: Context): Promise<StartExecutionOutput> {
  if (context) logger.addContext(context);
  try {
    const out = await startExecution(input, deps);
    if (out.status === 'started') {
      logger.info('execution started', { executionName: out.executionName });
      metrics.addMetric('ExecutionsStarted', MetricUnit.Count, 1);
    } else {
      logger.info('execution already started; duplicate event ignored', { executionName: out.executionName });
      metrics.addMetric('DuplicateEvents', MetricUnit.Count, 1);
    }
    return out;
  } catch (err) {
    // Rethrown: Lambda retries the asynchronous invocation, then sends the event to the DLQ.
    logger.error('starting the execution failed', errorFields(err));
    throw err;
  } finally {
    metrics.publishStoredMetrics();
  }
}
