/**
 * StartExecution Lambda, fed by the upload queue (SQS, an EventBridge target):
 * thin wrapper over admitBatch (admission.ts), which starts one execution per
 * message while fewer than MAX_RUNNING_SCANS run. Returns the partial batch
 * response; the messages it names stay in the queue. Logs counts and error names
 * only, never an object key: a file name can name a person.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { ConfigError } from '../../core/errors';
import { sonomarkHandler } from '../shared/middleware';
import { powertools, sfnClient } from '../shared/runtime';
import { admitBatch, type AdmissionDeps } from './admission';

const tools = powertools(FUNCTIONS.startExecution);
const { logger, metrics, tracer } = tools;

function positiveInt(name: string): number {
  const value = Number(requireEnv(name));
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`Environment variable ${name} must be a positive integer (got ${process.env[name]}).`);
  }
  return value;
}

const deps: AdmissionDeps = {
  sfn: sfnClient(tracer),
  stateMachineArn: requireEnv(ENV.stateMachineArn),
  maxRunningScans: positiveInt(ENV.maxRunningScans),
  maxWaitMs: positiveInt(ENV.admissionWaitSeconds) * 1000,
};

// A ListExecutions failure is rethrown: the whole batch stays in the queue and comes back.
export const handler = sonomarkHandler(
  async (input) => {
    const out = await admitBatch(input, deps);
    logger.info('batch admitted', {
      started: out.started,
      duplicates: out.duplicates,
      deferred: out.deferred,
      failed: out.failed,
      errors: out.errors,
    });
    metrics.addMetric('ExecutionsStarted', MetricUnit.Count, out.started);
    metrics.addMetric('DuplicateEvents', MetricUnit.Count, out.duplicates);
    metrics.addMetric('AdmissionDeferred', MetricUnit.Count, out.deferred);
    metrics.addMetric('StartFailures', MetricUnit.Count, out.failed);
    return { batchItemFailures: out.batchItemFailures };
  },
  tools,
  { message: 'admitting the batch failed' },
);
