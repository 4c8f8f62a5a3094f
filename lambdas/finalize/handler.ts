/** Finalize Lambda: thin wrapper over finalizeScan (finalize.ts). */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { ENV, FUNCTIONS } from '../../core/contract';
import { jsonEnv, requireEnv } from '../../core/env';
import { ScanRates } from '../../core/pricing';
import { documentClient, errorFields, powertools } from '../shared/runtime';
import { finalizeScan, type FinalizeDeps, type FinalizeOutput } from './finalize';

const { logger, metrics, tracer } = powertools(FUNCTIONS.finalize);

const deps: FinalizeDeps = {
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  rates: jsonEnv(ENV.scanRates, ScanRates),
};

export async function handler(input: unknown, context?: Context): Promise<FinalizeOutput> {
  if (context) logger.addContext(context);
  const scan = (input as { scan?: { scanId?: unknown; siteId?: unknown; studyId?: unknown } } | null)?.scan;
  const keys = { scanId: scan?.scanId, siteId: scan?.siteId, studyId: scan?.studyId };
  try {
    const out = await finalizeScan(input, deps);
    logger.info('scan completed', {
      ...keys,
      extractorSeconds: out.usage.extractorSeconds,
      expertMs: out.usage.expertMs,
      estimatedCostUsd: out.usage.estimatedCost?.totalUsd ?? null,
    });
    metrics.addMetric('ScansCompleted', MetricUnit.Count, 1);
    if (out.usage.extractorSeconds !== null)
      metrics.addMetric('ExtractorSeconds', MetricUnit.Seconds, out.usage.extractorSeconds);
    return out;
  } catch (err) {
    logger.error('finalize failed', { ...keys, ...errorFields(err) });
    throw err;
  } finally {
    metrics.publishStoredMetrics();
  }
}
