/** CohortReport Lambda: thin wrapper over writeCohortReport (report.ts): cohort.csv, summary.json, report.html. Logs counts only. */
import { ENV, FUNCTIONS } from '../../core/contract';
import { readBucketManifest } from '../../core/bucket-models';
import { requireEnv } from '../../core/env';
import { sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';
import { writeCohortReport, type ReportDeps } from './report';

const tools = powertools(FUNCTIONS.cohortReport);
const { logger, tracer } = tools;
const s3 = s3Client(tracer);
const artifactsBucket = requireEnv(ENV.artifactsBucket);
const deps: ReportDeps = {
  s3,
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  artifactsBucket,
  manifest: () => readBucketManifest(s3, artifactsBucket),
};

export const handler = sonomarkHandler(
  async (input) => {
    const out = await writeCohortReport(input, deps);
    logger.info('cohort report written', { ...out.counts });
    return out;
  },
  tools,
  { message: 'cohort report failed' },
);
