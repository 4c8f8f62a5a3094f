/**
 * The in-process code behind each Task state in local mode: the same pure
 * functions the Lambda handlers and the Batch container wrap, given clients
 * that point at s3rver and dynalite instead of AWS.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { runExtractJob } from '../gpu-tasks/feature-extractor/src/main';
import { scoreExpert } from '../lambdas/expert/score';
import { loadExperts } from '../lambdas/load-experts/load-experts';
import { finalizeScan } from '../lambdas/finalize/finalize';
import { recordFailure } from '../lambdas/record-failure/record-failure';
import { DEFAULT_MAX_UPLOAD_BYTES, validateUpload } from '../lambdas/validate-upload/validate';
import { parseConfig } from '../lib/config';
import type { LoadedManifest } from '../core/manifest';
import type { ScanRates } from '../core/pricing';
import { scanRates } from '../lib/rates';
import type { LocalHandlers } from './bindings';

export interface LocalHandlerDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly artifactsBucket: string;
  readonly loaded: LoadedManifest;
  /** The definition's expert functions by expert name (bindings.ts expertFunctionArns). */
  readonly expertFunctions: Readonly<Record<string, string>>;
  /** Where the extractor job's JSON log lines go; local mode keeps stdout for results. */
  readonly log?: (line: string) => void;
  /** The extractor's DICOM pseudonym salt (the cloud job's DICOM_PSEUDONYM_SALT). @default none */
  readonly pseudonymSalt?: string;
  /**
   * Prices for the usage record's cost estimate (the cloud's SCAN_RATES).
   * @default localScanRates: what the default cloud deployment would charge for the scan
   */
  readonly rates?: ScanRates;
}

/**
 * Local mode runs on this machine and costs nothing; its usage records estimate what
 * the default deployment (default config: GPU mode, us-east-1 list prices, each
 * expert at its manifest memory) would charge for the same measured seconds.
 */
export function localScanRates(loaded: LoadedManifest): ScanRates {
  return scanRates(
    parseConfig(undefined),
    loaded.manifest.experts.map((e) => ({ name: e.name, memoryMb: e.lambda.memoryMb })),
  );
}

export function localHandlers(deps: LocalHandlerDeps): LocalHandlers {
  const { s3, doc, table } = deps;
  const now = () => new Date();
  const rates = deps.rates ?? localScanRates(deps.loaded);
  return {
    lambdas: {
      validate: (payload) =>
        validateUpload(payload, {
          s3,
          doc,
          table,
          artifactsBucket: deps.artifactsBucket,
          manifest: deps.loaded.manifest,
          maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
          now,
        }),
      // The local binding of LoadExperts reads the local manifest (the cloud reads the artifacts bucket's).
      loadExperts: (payload) =>
        loadExperts(payload, { manifest: async () => deps.loaded.manifest, functions: deps.expertFunctions }),
      expert: (payload) => scoreExpert(payload, { s3, doc, table, models: deps.loaded, now }),
      finalize: (payload) => finalizeScan(payload, { doc, table, rates, now }),
      recordFailure: (payload) => recordFailure(payload, { doc, table, s3, now }),
    },
    extractJob: async (env) => {
      await runExtractJob(env, {
        s3,
        modelsDir: deps.loaded.dir,
        executionProvider: 'cpu',
        log: deps.log ?? (() => {}),
        ...(deps.pseudonymSalt ? { pseudonymSalt: deps.pseudonymSalt } : {}),
      });
    },
  };
}
