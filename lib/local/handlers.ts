/**
 * The in-process code behind each Task state in local mode: the same pure
 * functions the Lambda handlers and the Batch container wrap, given clients
 * that point at s3rver and dynalite instead of AWS.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { runExtractJob } from '../../gpu-tasks/feature-extractor/src/main';
import { scoreExpert } from '../../lambdas/expert/score';
import { finalizeScan } from '../../lambdas/finalize/finalize';
import { recordFailure } from '../../lambdas/record-failure/record-failure';
import { DEFAULT_MAX_UPLOAD_BYTES, validateUpload } from '../../lambdas/validate-upload/validate';
import type { LoadedManifest } from '../manifest';
import type { LocalHandlers } from './bindings';

export interface LocalHandlerDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly artifactsBucket: string;
  readonly loaded: LoadedManifest;
  /** Where the extractor job's JSON log lines go; local mode keeps stdout for results. */
  readonly log?: (line: string) => void;
}

export function localHandlers(deps: LocalHandlerDeps): LocalHandlers {
  const { s3, doc, table } = deps;
  const now = () => new Date();
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
      expert: (payload) => scoreExpert(payload, { s3, doc, table, models: deps.loaded, now }),
      finalize: (payload) => finalizeScan(payload, { doc, table, now }),
      recordFailure: (payload) => recordFailure(payload, { doc, table, s3, now }),
    },
    extractJob: async (env) => {
      await runExtractJob(env, {
        s3,
        modelsDir: deps.loaded.dir,
        executionProvider: 'cpu',
        log: deps.log ?? (() => {}),
      });
    },
  };
}
