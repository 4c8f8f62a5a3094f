/**
 * Validate Lambda: thin wrapper over validateUpload (validate.ts).
 * Logs scanId/siteId/studyId and the decision, never the object key: a file name can name a person.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, FUNCTIONS } from '../../core/contract';
import { optionalEnv, requireEnv } from '../../core/env';
import { ConfigError } from '../../core/errors';
import { parseInputLimits } from '../../core/limits';
import { loadManifest } from '../../core/manifest';
import { DEFAULT_LEASE_SECONDS } from '../../core/results-store';
import { sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';
import { DEFAULT_MAX_UPLOAD_BYTES, validateUpload, type ValidateDeps } from './validate';

const tools = powertools(FUNCTIONS.validate);
const { logger, metrics, tracer } = tools;

const maxUploadBytes = Number(optionalEnv(ENV.maxUploadBytes, String(DEFAULT_MAX_UPLOAD_BYTES)));
if (!Number.isSafeInteger(maxUploadBytes) || maxUploadBytes <= 0) {
  throw new ConfigError(`Environment variable ${ENV.maxUploadBytes} must be a positive integer number of bytes.`);
}
const leaseSeconds = Number(optionalEnv(ENV.scanLeaseSeconds, String(DEFAULT_LEASE_SECONDS)));
if (!Number.isSafeInteger(leaseSeconds) || leaseSeconds <= 0) {
  throw new ConfigError(`Environment variable ${ENV.scanLeaseSeconds} must be a positive integer number of seconds.`);
}
let limits;
try {
  limits = parseInputLimits(optionalEnv(ENV.inputLimits, ''), `Environment variable ${ENV.inputLimits}`);
} catch (err) {
  throw new ConfigError((err as Error).message);
}
const deps: ValidateDeps = {
  s3: s3Client(tracer),
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  artifactsBucket: requireEnv(ENV.artifactsBucket),
  manifest: loadManifest(requireEnv(ENV.modelsDir)).manifest,
  maxUploadBytes,
  limits,
  leaseSeconds,
  now: () => new Date(),
  onLimitsUnchecked: (scanId, reason) => logger.info('header limits left to the extractor', { scanId, reason }),
};

export const handler = sonomarkHandler(
  async (input) => {
    const out = await validateUpload(input, deps);
    switch (out.action) {
      case 'analyze':
        logger.info('upload accepted', {
          scanId: out.scan.scanId,
          siteId: out.scan.siteId,
          studyId: out.scan.studyId,
          container: out.scan.container,
          modality: out.scan.modality,
          size: out.scan.size,
        });
        break;
      case 'skip':
        logger.info('upload skipped', { scanId: out.scanId, existingStatus: out.existingStatus });
        break;
      case 'reject':
        logger.warn('upload rejected', { scanId: out.scanId, problemCode: out.problem.code });
        break;
      case 'ignore':
        logger.debug('object ignored', { reason: out.reason });
        break;
    }
    metrics.addDimension('action', out.action);
    metrics.addMetric('UploadsValidated', MetricUnit.Count, 1);
    return out;
  },
  tools,
  { message: 'validation failed' },
);
