/**
 * Expert Lambda: one function per manifest entry (the CDK app passes the same
 * code and the manifest). Thin wrapper over scoreExpert (score.ts).
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { requireEnv } from '../../core/env';
import { BucketModels } from '../../core/bucket-models';
import { loadManifest } from '../../core/manifest';
import { scanIds, sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';
import { scoreExpert, type ScoreDeps } from './score';

const tools = powertools(FUNCTIONS.expert);
const { logger, metrics, tracer } = tools;

const s3 = s3Client(tracer);
// The models come from the artifacts bucket (the manifest read at run time, each file fetched
// once per container and sha256-checked on load), so a published version needs no redeploy;
// MODELS_DIR (a bundle carrying models/) is still honoured when set.
const modelsDir = process.env[ENV.modelsDir];
const bucketModels = modelsDir ? undefined : new BucketModels(s3, requireEnv(ENV.artifactsBucket));
const deps: ScoreDeps = {
  s3,
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  ...(modelsDir ? { models: loadManifest(modelsDir) } : {}),
  ...(bucketModels ? { resolveModels: (expert) => bucketModels.forExpert(expert) } : {}),
};

/** The scan's ids and the expert's name, read leniently: they are logged even when the input is invalid. */
function ids(input: unknown): Record<string, unknown> {
  return { ...scanIds(input), expert: (input as { expert?: { name?: unknown } } | null)?.expert?.name };
}

export const handler = sonomarkHandler(
  async (input) => {
    const result = await scoreExpert(input, deps);
    logger.info('expert scored', {
      ...ids(input),
      version: result.expert.version,
      kind: result.output.kind,
      inferMs: result.inferMs,
    });
    metrics.addDimension('expert', result.expert.name);
    metrics.addMetric('ExpertInferMs', MetricUnit.Milliseconds, result.inferMs);
    return result;
  },
  tools,
  { message: 'expert failed', fields: ids },
);
