/** Finalize Lambda: thin wrapper over finalizeScan (finalize.ts). */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { jsonEnv, requireEnv } from '../../core/env';
import { ScanRates } from '../../core/pricing';
import { scanIds, sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools } from '../shared/runtime';
import { finalizeScan, type FinalizeDeps } from './finalize';

const tools = powertools(FUNCTIONS.finalize);
const { logger, metrics, tracer } = tools;

const deps: FinalizeDeps = {
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  rates: jsonEnv(ENV.scanRates, ScanRates),
};

export const handler = sonomarkHandler(
  async (input) => {
    const out = await finalizeScan(input, deps);
    logger.info('scan completed', {
      ...scanIds(input),
      extractorSeconds: out.usage.extractorSeconds,
      expertMs: out.usage.expertMs,
      estimatedCostUsd: out.usage.estimatedCost?.totalUsd ?? null,
    });
    metrics.addMetric('ScansCompleted', MetricUnit.Count, 1);
    if (out.usage.extractorSeconds !== null)
      metrics.addMetric('ExtractorSeconds', MetricUnit.Seconds, out.usage.extractorSeconds);
    return out;
  },
  tools,
  { message: 'finalize failed', fields: scanIds },
);
