/**
 * Expert Lambda: one function per manifest entry (the CDK app passes the same
 * code and the manifest). Thin wrapper over scoreExpert (score.ts).
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { loadManifest } from '../../core/manifest';
import type { ExpertResult } from '../../core/schemas';
import { documentClient, errorFields, powertools, s3Client } from '../shared/runtime';
import { scoreExpert, type ScoreDeps } from './score';

const { logger, metrics, tracer } = powertools(FUNCTIONS.expert);

const deps: ScoreDeps = {
  s3: s3Client(tracer),
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  models: loadManifest(requireEnv(ENV.modelsDir)),
};

export async function handler(input: unknown, context?: Context): Promise<ExpertResult> {
  if (context) logger.addContext(context);
  const ids = input as {
    scan?: { scanId?: unknown; siteId?: unknown; studyId?: unknown };
    expert?: { name?: unknown };
  } | null;
  const keys = {
    scanId: ids?.scan?.scanId,
    siteId: ids?.scan?.siteId,
    studyId: ids?.scan?.studyId,
    expert: ids?.expert?.name,
  };
  try {
    const result = await scoreExpert(input, deps);
    logger.info('expert scored', {
      ...keys,
      version: result.expert.version,
      kind: result.output.kind,
      inferMs: result.inferMs,
    });
    metrics.addDimension('expert', result.expert.name);
    metrics.addMetric('ExpertInferMs', MetricUnit.Milliseconds, result.inferMs);
    return result;
  } catch (err) {
    logger.error('expert failed', { ...keys, ...errorFields(err) });
    throw err;
  } finally {
    metrics.publishStoredMetrics();
  }
}
