/** LoadExperts Lambda: thin wrapper over loadExperts (load-experts.ts), reading the artifacts bucket's manifest. */
import { z } from 'zod';
import { ENV, FUNCTIONS } from '../../core/contract';
import { jsonEnv, requireEnv } from '../../core/env';
import { scanIds, sonomarkHandler } from '../shared/middleware';
import { powertools, s3Client } from '../shared/runtime';
import { readBucketManifest } from '../../core/bucket-models';
import { loadExperts, type LoadExpertsDeps } from './load-experts';

const tools = powertools(FUNCTIONS.loadExperts);
const { logger, tracer } = tools;
const s3 = s3Client(tracer);
const bucket = requireEnv(ENV.artifactsBucket);

const deps: LoadExpertsDeps = {
  // Read on every invocation: a published version is picked up by the next scan.
  manifest: () => readBucketManifest(s3, bucket),
  functions: jsonEnv(ENV.expertFunctions, z.record(z.string(), z.string())),
};

export const handler = sonomarkHandler(
  async (input) => {
    const out = await loadExperts(input, deps);
    logger.info('experts loaded', { ...scanIds(input), experts: out.list.map((e) => `${e.name}@${e.version}`) });
    return out;
  },
  tools,
  { message: 'load experts failed', fields: scanIds },
);
