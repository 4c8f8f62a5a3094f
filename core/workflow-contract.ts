/**
 * Names and paths of the workflow that both the CDK construct and local mode
 * rely on. State names are stable: local mode binds Task states by name, alarms
 * and dashboards refer to them, and renaming one is a breaking change.
 */
export const STATE = {
  start: 'Start',
  validate: 'Validate',
  /**
   * Pass after Validate: lifts the handler's return value (ValidateOutput) from the
   * lambda:invoke result ({Payload}) into `$.validation` (ResultSelector cannot).
   */
  validated: 'Validated',
  route: 'Route',
  skipped: 'AlreadyAnalyzed',
  ignored: 'NotAClip',
  claimed: 'Claimed',
  extract: 'Extract',
  loadExperts: 'LoadExperts',
  score: 'Score',
  scoreExpert: 'ScoreExpert',
  finalize: 'Finalize',
  recordFailure: 'RecordFailure',
  failed: 'Failed',
  done: 'Done',
} as const;

/**
 * Execution state layout (JSONPath):
 * - `$.event`       the S3 Object Created event (EventBridge input, wrapped by Start)
 * - `$.validation`  ValidateOutput
 * - `$.scan`        ScanRef (copied from $.validation.scan by Claimed)
 * - `$.extract`     Batch job summary {jobId, startedAt, stoppedAt}
 * - `$.experts`     [{name, version, file, sha256, functionArn}] from the manifest
 * - `$.results`     ExpertResult[] (Score's output)
 * - `$.summary`     Finalize output
 * - `$.error`       {Error, Cause} set by any Catch
 */
export const PATHS = {
  event: '$.event',
  validation: '$.validation',
  scan: '$.scan',
  extract: '$.extract',
  experts: '$.experts',
  results: '$.results',
  summary: '$.summary',
  error: '$.error',
} as const;

/** Extractor job environment variables (Batch ContainerOverrides.Environment). */
export const EXTRACT_ENV = {
  scanId: 'SCAN_ID',
  inputBucket: 'INPUT_BUCKET',
  inputKey: 'INPUT_KEY',
  inputVersionId: 'INPUT_VERSION_ID',
  featuresBucket: 'FEATURES_BUCKET',
  featuresKey: 'FEATURES_KEY',
} as const;
