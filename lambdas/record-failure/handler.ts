/** RecordFailure Lambda: thin wrapper over recordFailure (record-failure.ts). */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { documentClient, errorFields, powertools, s3Client } from '../shared/runtime';
import { recordFailure, type RecordFailureDeps, type RecordFailureOutput } from './record-failure';

const { logger, metrics, tracer } = powertools(FUNCTIONS.recordFailure);

const deps: RecordFailureDeps = {
  doc: documentClient(tracer),
  s3: s3Client(tracer),
  table: requireEnv(ENV.resultsTable),
};

export async function handler(input: unknown, context?: Context): Promise<RecordFailureOutput> {
  if (context) logger.addContext(context);
  try {
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
  } catch (err) {
    logger.error('recording the failure failed', errorFields(err));
    throw err;
  } finally {
    metrics.publishStoredMetrics();
  }
}
