/** CohortPlan Lambda: thin wrapper over planBatch (plan.ts). Logs counts and ids only, never an object key. */
import { ENV, FUNCTIONS } from '../../core/contract';
import { readBucketManifest } from '../../core/bucket-models';
import { requireEnv } from '../../core/env';
import { sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';
import { planBatch, type PlanDeps } from './plan';

const tools = powertools(FUNCTIONS.cohortPlan);
const { logger, tracer } = tools;
const s3 = s3Client(tracer);
const artifactsBucket = requireEnv(ENV.artifactsBucket);
const deps: PlanDeps = {
  s3,
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  uploadsBucket: requireEnv(ENV.uploadsBucket),
  artifactsBucket,
  manifest: () => readBucketManifest(s3, artifactsBucket),
};

export const handler = sonomarkHandler(
  async (input) => {
    const plan = await planBatch(input, deps);
    logger.info('cohort batch planned', {
      batchId: plan.batchId,
      siteId: plan.site,
      scoreOnly: plan.scans.length - plan.extractCount,
      extract: plan.extractCount,
      failed: plan.failures.length,
    });
    return plan;
  },
  tools,
  { message: 'cohort plan failed' },
);
