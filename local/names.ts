import type { FUNCTIONS } from '../core/contract';

/** Names of the local buckets and table, apart from the workflow so a reader (sonomark report) loads no CDK. */
export const LOCAL_UPLOADS_BUCKET = 'sonomark-uploads-local';
export const LOCAL_ARTIFACTS_BUCKET = 'sonomark-artifacts-local';
export const LOCAL_TABLE = 'sonomark-results-local';

/**
 * The pipeline's functions that local mode runs (FUNCTIONS in core/contract.ts, less the
 * starter, the API and the invoice job, which are no workflow task, and the cohort stack's,
 * which run only in the cloud: lib/constructs/cohort-workflow.ts). ExecutionEnded is no task
 * either: the local runner calls it when an execution ends badly. Here rather than in
 * bindings.ts so faults.ts and iam-guard.ts can name a role without importing the bindings.
 */
export type LambdaRole =
  | keyof Omit<typeof FUNCTIONS, 'startExecution' | 'api' | 'invoices' | 'cohortPlan' | 'cohortScore' | 'cohortReport'>
  /** The extractor's Lambda function of `computeMode: 'lambda'` (EXTRACTOR_FUNCTION). */
  | 'extractor';
