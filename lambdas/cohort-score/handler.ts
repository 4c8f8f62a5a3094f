/**
 * CohortScore Lambda: thin wrapper over scoreBatch (score.ts). The models come from the
 * artifacts bucket's manifest (read per invocation, each file fetched once per container and
 * sha256-checked on load), as the expert functions read them.
 */
import { ENV, FUNCTIONS } from '../../core/contract';
import { BucketModels, readBucketManifest } from '../../core/bucket-models';
import { jsonEnv, requireEnv } from '../../core/env';
import { ModelError } from '../../core/errors';
import type { LoadedManifest } from '../../core/manifest';
import { ScanRates } from '../../core/pricing';
import { sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';
import { scoreBatch, type ScoreBatchDeps } from './score';

const tools = powertools(FUNCTIONS.cohortScore);
const { logger, tracer } = tools;
const s3 = s3Client(tracer);
const artifactsBucket = requireEnv(ENV.artifactsBucket);
const bucketModels = new BucketModels(s3, artifactsBucket);

/** The bucket's manifest now, with every expert's file fetched into the container. */
async function models(): Promise<LoadedManifest> {
  const manifest = await readBucketManifest(s3, artifactsBucket);
  let loaded: LoadedManifest | undefined;
  for (const e of manifest.experts) loaded = await bucketModels.forExpert(e);
  if (!loaded) throw new ModelError('The model manifest lists no experts: publish one (sonomark experts publish).');
  return loaded;
}

const deps: ScoreBatchDeps = {
  s3,
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  artifactsBucket,
  models,
  rates: jsonEnv(ENV.scanRates, ScanRates),
};

export const handler = sonomarkHandler(
  async (input) => {
    const out = await scoreBatch(input, deps);
    logger.info('cohort batch scored', { batchId: out.batchId, ...out.counts });
    return out;
  },
  tools,
  { message: 'cohort score failed' },
);
