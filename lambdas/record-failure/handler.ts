/** RecordFailure Lambda: thin wrapper over recordFailure (record-failure.ts). */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { sonomarkHandler } from '../shared/middleware';
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
    const scan = (input as { scan?: { siteId?: unknown; studyId?: unknown } } | null)?.scan;
    logger.warn('scan failed', {
      scanId: out.scanId,
      siteId: scan?.siteId,
      studyId: scan?.studyId,
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
