/**
 * The in-process code behind each Task state in local mode: the same pure
 * functions the Lambda handlers and the Batch container wrap, given clients
 * that point at s3rver and dynalite instead of AWS.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { cachedPseudonymSalt, type SaltObjectOptions } from '../core/dicom/salt-object';
import { runExtractJob, type ExtractJobDeps } from '../gpu-tasks/feature-extractor/src/main';
import { extractInvocation } from '../gpu-tasks/feature-extractor/src/lambda';
import { cachedWorkerExtractorSession } from '../gpu-tasks/feature-extractor/src/infer-worker';
import { scoreExpert } from '../lambdas/expert/score';
import { loadExperts } from '../lambdas/load-experts/load-experts';
import { finalizeScan } from '../lambdas/finalize/finalize';
import { executionEnded } from '../lambdas/execution-ended/execution-ended';
import { recordFailure } from '../lambdas/record-failure/record-failure';
import { DEFAULT_MAX_UPLOAD_BYTES, validateUpload } from '../lambdas/validate-upload/validate';
import { parseConfig, TOP_LEVEL_CONTEXT_KEYS } from '../lib/config';
import type { LoadedManifest } from '../core/manifest';
import type { ScanRates } from '../core/pricing';
import { scanRates } from '../lib/rates';
import type { LocalHandlers } from './bindings';
import type { LocalPrincipal, PrincipalClients } from './iam-guard';

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
  /**
   * The extractor's DICOM pseudonym salt (local/pseudonym-salt.ts): a fixed one, or the artifacts
   * bucket's salt object, as in the cloud, created with these options when missing.
   * @default the salt object, created with a new random salt
   */
  readonly pseudonymSalt?: { readonly fixed: string } | { readonly object: SaltObjectOptions };
  /**
   * Prices for the usage record's cost estimate (the cloud's SCAN_RATES).
   * @default localScanRates: what the default cloud deployment would charge for the scan
   */
  readonly rates?: ScanRates;
  /**
   * The clients one principal's code uses (workflow.ts: each enforcing its role's IAM
   * policy from the templates, iam-guard.ts). @default s3 and doc, unchecked, for all
   */
  readonly clientsFor?: (principal: LocalPrincipal) => PrincipalClients;
}

/**
 * Local mode runs on this machine and costs nothing; its usage records estimate what
 * the default deployment (default config: GPU mode, us-east-1 list prices, each
 * expert at its manifest memory) would charge for the same measured seconds.
 */
export function localScanRates(loaded: LoadedManifest, context?: Record<string, unknown>): ScanRates {
  // A definition synthesized with other CDK context (LocalWorkflowOptions.context, e.g. computeMode
  // lambda) is priced as that deployment would be: its `sonomark` object, then its top-level keys.
  const { sonomark, ...topLevel } = context ?? {};
  const overrides = Object.fromEntries(
    Object.entries(topLevel).filter(([k]) => (TOP_LEVEL_CONTEXT_KEYS as readonly string[]).includes(k)),
  );
  return scanRates(
    parseConfig(sonomark, overrides),
    loaded.manifest.experts.map((e) => ({ name: e.name, memoryMb: e.lambda.memoryMb })),
  );
}

export function localHandlers(deps: LocalHandlerDeps): LocalHandlers {
  const { table } = deps;
  const now = () => new Date();
  const rates = deps.rates ?? localScanRates(deps.loaded);
  const as = (principal: LocalPrincipal): PrincipalClients =>
    deps.clientsFor?.(principal) ?? { s3: deps.s3, doc: deps.doc };
  // The extractor's dependencies for one principal: the Batch job's role, or the Lambda function's.
  const extractDeps = (s3: S3Client): ExtractJobDeps => {
    const salt = deps.pseudonymSalt ?? { object: {} };
    return {
      s3,
      modelsDir: deps.loaded.dir,
      executionProvider: 'cpu',
      // Inference in a child process (infer-worker.ts): one clip's frames are scored while the
      // next one decodes and the workflow moves on. One session per process, reused by every clip.
      openSession: (entry) => cachedWorkerExtractorSession(deps.loaded.dir, entry),
      log: deps.log ?? (() => {}),
      // The cloud job's default (main.ts) with the local artifacts bucket, through the role's IAM check.
      pseudonymSalt: 'fixed' in salt ? salt.fixed : () => cachedPseudonymSalt(s3, deps.artifactsBucket, salt.object),
    };
  };
  let invocations = 0;
  return {
    lambdas: {
      // `computeMode: 'lambda'`: the function's handler code (lambda.ts) over the same job code.
      extractor: (payload, functionId) =>
        extractInvocation(
          payload,
          `local-${process.pid}-${++invocations}`,
          {},
          extractDeps(as({ role: 'extractor', functionId }).s3),
        ),
      validate: (payload, functionId) =>
        validateUpload(payload, {
          ...as({ role: 'validate', functionId }),
          table,
          artifactsBucket: deps.artifactsBucket,
          manifest: deps.loaded.manifest,
          maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
          now,
        }),
      // The local binding of LoadExperts reads the local manifest (the cloud reads the artifacts bucket's).
      loadExperts: (payload) =>
        loadExperts(payload, { manifest: async () => deps.loaded.manifest, functions: deps.expertFunctions }),
      expert: (payload, functionId) =>
        scoreExpert(payload, { ...as({ role: 'expert', functionId }), table, models: deps.loaded, now }),
      finalize: (payload, functionId) =>
        finalizeScan(payload, { doc: as({ role: 'finalize', functionId }).doc, table, rates, now }),
      recordFailure: (payload, functionId) =>
        recordFailure(payload, { ...as({ role: 'recordFailure', functionId }), table, now }),
      executionEnded: (payload, functionId) =>
        executionEnded(payload, { doc: as({ role: 'executionEnded', functionId }).doc, table, now }),
    },
    extractJob: async (env) => {
      await runExtractJob(env, extractDeps(as({ role: 'extractJob' }).s3));
    },
  };
}
