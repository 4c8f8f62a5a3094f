/** RecordFailure Lambda: thin wrapper over recordFailure (record-failure.ts). */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { scanIds, sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';
import { recordFailure, type RecordFailureDeps } from './record-failure';

const tools = powertools(FUNCTIONS.recordFailure);
const { logger, metrics, tracer } = tools;

const deps: RecordFailureDeps = {
  doc: documentClient(tracer),
  s3: s3Client(tracer),
  table: requireEnv(ENV.resultsTable),
};

export const handler = sonomarkHandler(
  async (input) => {
    const out = await recordFailure(input, deps);
    // The recorded scan id: derived from the object when the input carried none.
    logger.warn('scan failed', {
      ...scanIds(input),
      scanId: out.scanId,
      problemCode: out.problem.code,
      recorded: out.recorded,
    });
    metrics.addDimension('code', out.problem.code);
    metrics.addMetric('ScansFailed', MetricUnit.Count, 1);
    return out;
  },
  tools,
  { message: 'recording the failure failed' },
);
