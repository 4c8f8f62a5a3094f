/**
 * The contract of names: every name that crosses a boundary between the CDK app
 * (lib/), the Lambda handlers, the extractor container and local mode. The CDK
 * sets values through these names and the runtime reads through them, so the two
 * sides cannot drift. Pure data, no SDK or CDK imports: every side can load it.
 *
 * Renaming anything here is a breaking change: deployed functions, alarms,
 * dashboards and log queries refer to these names.
 */

/**
 * Environment variables sonomark sets (CDK, the extractor's Dockerfile) and reads.
 * AWS_REGION is not here: the platform sets it, not sonomark.
 */
export const ENV = {
  /** Every function but StartExecution: the results table's name. */
  resultsTable: 'RESULTS_TABLE',
  /**
   * Validate: the bucket the extractor writes features into (Validate names it in the scan; it touches nothing there).
   * The extractor: the bucket holding the DICOM pseudonym salt object (DICOM_PSEUDONYM_SALT_KEY, core/dicom/salt-object.ts).
   */
  artifactsBucket: 'ARTIFACTS_BUCKET',
  /** Validate, experts, the extractor: the directory holding MODELS.manifestFile and the ONNX files. */
  modelsDir: 'MODELS_DIR',
  /** Validate: the largest upload analysed, in bytes (optional; validate.ts has the default). */
  maxUploadBytes: 'MAX_UPLOAD_BYTES',
  /** Validate: InputLimits (core/limits.ts) as JSON; keys left out keep their defaults (optional). */
  inputLimits: 'INPUT_LIMITS',
  /** Finalize: this deployment's ScanRates (core/pricing.ts) as JSON, for the usage record's cost estimate. */
  scanRates: 'SCAN_RATES',
  /**
   * Validate: how long a claim holds (seconds), the state machine's own timeout: a RUNNING
   * scan whose lease is older may be claimed again (optional; results-store.ts has the default).
   */
  scanLeaseSeconds: 'SCAN_LEASE_SECONDS',
  /** StartExecution: the state machine it starts. */
  stateMachineArn: 'STATE_MACHINE_ARN',
  /** StartExecution: the cap on executions RUNNING at once (config admission.maxRunningScans). */
  maxRunningScans: 'MAX_RUNNING_SCANS',
  /** StartExecution: how long one invocation may wait for a free slot, in seconds (below its timeout). */
  admissionWaitSeconds: 'ADMISSION_WAIT_SECONDS',
  /** The extractor: `auto` (default), `cuda` or `cpu` (the job definition and the Dockerfile set it). */
  onnxExecutionProvider: 'ONNX_EXECUTION_PROVIDER',
  /** The extractor: the ffmpeg binary (the Dockerfile sets the distribution's; else @ffmpeg-installer's). */
  ffmpegPath: 'FFMPEG_PATH',
  /** Every function: its Powertools service name (FUNCTIONS), the same value the handler passes to Powertools. */
  powertoolsServiceName: 'POWERTOOLS_SERVICE_NAME',
  /** Every function: METRICS_NAMESPACE, the same value the handler passes to Powertools. */
  powertoolsMetricsNamespace: 'POWERTOOLS_METRICS_NAMESPACE',
  /**
   * Local mode only: a salt for the DICOM study/series pseudonyms (core/dicom/pseudonym.ts), at least
   * 16 characters, instead of the data dir's salt object. The cloud never passes a salt in the
   * environment: the extractor reads the salt object in the artifacts bucket (core/dicom/salt-object.ts).
   */
  dicomPseudonymSalt: 'DICOM_PSEUDONYM_SALT',
  /**
   * LoadExperts: the deployed expert functions as JSON `{name: functionArn}`; the expert list
   * itself comes from the manifest in the artifacts bucket at run time (MODELS.bucketManifestKey).
   */
  expertFunctions: 'EXPERT_FUNCTIONS',
  /** Every function: Node's options (source maps for readable stack traces). */
  nodeOptions: 'NODE_OPTIONS',
  /** API: the uploads bucket its presigned POSTs are for. */
  uploadsBucket: 'UPLOADS_BUCKET',
  /** API, invoice job: the site registry as JSON, SiteRegistryEnv (core/site-api.ts): name and rates per site id. */
  siteRegistry: 'SITE_REGISTRY',
  /** API: JSON {roleUniqueId: siteId} of the per-site IAM roles, how a signed request maps to its site. */
  siteRoleIds: 'SITE_ROLE_IDS',
  /** Invoice job: the bucket its `invoices/{siteId}/{YYYY-MM}.csv` go to. */
  invoicesBucket: 'INVOICES_BUCKET',
} as const;

/** Extractor job environment variables, set per execution (Batch ContainerOverrides.Environment). */
export const EXTRACT_ENV = {
  scanId: 'SCAN_ID',
  inputBucket: 'INPUT_BUCKET',
  inputKey: 'INPUT_KEY',
  inputVersionId: 'INPUT_VERSION_ID',
  featuresBucket: 'FEATURES_BUCKET',
  featuresKey: 'FEATURES_KEY',
  /**
   * The scan's modality (ScanRef.modality, decided by Validate): which manifest extractor runs.
   * Absent (a job or cohort item from before modalities): ultrasound.
   */
  modality: 'MODALITY',
  /**
   * Batch mode (a cohort batch): the S3 object holding a JSON array of items, each with the six
   * values above; set instead of them (gpu-tasks/feature-extractor/src/batch.ts).
   */
  itemsBucket: 'ITEMS_BUCKET',
  itemsKey: 'ITEMS_KEY',
} as const;

/**
 * The extractor's exit status for a transient failure (core/transient.ts), EX_TEMPFAIL
 * from sysexits.h: the Batch job definition retries it (gpu-job.ts); 1 is any other failure.
 */
export const EXTRACTOR_EXIT_TRANSIENT = 75;

/**
 * The StatusReason of a job Batch cancelled in the spot queue for lack of spot capacity
 * (AWS Batch user guide, "Jobs stuck in RUNNABLE due to capacity"). The workflow matches
 * it in the Extract failure's Cause to resubmit the job on demand (gpu-job.ts, workflow.ts);
 * local mode raises it. Here rather than in gpu-job.ts so local mode names it without
 * loading aws-cdk-lib.
 */
export const SPOT_CAPACITY_CANCEL_REASON =
  'Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY';

/** Where the models live: the package, a Lambda bundle, the extractor image. */
export const MODELS = {
  /** The manifest's file name inside a models directory. */
  manifestFile: 'manifest.json',
  /** The folder name: `models/` in the package, in a Lambda bundle and in the extractor image. */
  folder: 'models',
  /** MODELS_DIR of a Lambda function: its bundle (unpacked at /var/task) carries models/. */
  lambdaDir: '/var/task/models',
  /** MODELS_DIR of the extractor image (its Dockerfile: WORKDIR /app, models/extractor/ and its own manifest). */
  containerDir: '/app/models',
  /**
   * The artifacts bucket's copy of models/ (manifest and expert ONNX files, deployed by the CDK app
   * and by `sonomark experts publish --bucket`): what LoadExperts and the experts read at run time.
   */
  bucketPrefix: 'models/',
  bucketManifestKey: 'models/manifest.json',
} as const;

/** The Powertools metrics namespace of every function. */
export const METRICS_NAMESPACE = 'Sonomark';

/** `diagnosis` → `Diagnosis`, `lung-severity` → `LungSeverity`: an expert's construct id suffix. */
export function pascalName(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter((p) => p.length > 0)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
}

/** Construct id prefix of the expert functions (`Expert` + pascalName(expert)). */
const EXPERT_ID_PREFIX = 'Expert';

/**
 * The Lambda functions: the code in `lambdas/<folder>/handler.ts`, the stable
 * construct id local mode maps ARNs in the ASL back to handlers by, and the
 * Powertools service name of their logs, metrics and traces. Every expert
 * function shares one service; its metrics carry an `expert` dimension.
 */
export const FUNCTIONS = {
  validate: { id: 'ValidateUpload', folder: 'validate-upload', serviceName: 'sonomark-validate-upload' },
  finalize: { id: 'Finalize', folder: 'finalize', serviceName: 'sonomark-finalize' },
  recordFailure: { id: 'RecordFailure', folder: 'record-failure', serviceName: 'sonomark-record-failure' },
  startExecution: { id: 'StartExecution', folder: 'start-execution', serviceName: 'sonomark-start-execution' },
  api: { id: 'SiteApi', folder: 'api', serviceName: 'sonomark-api' },
  invoices: { id: 'MonthlyInvoices', folder: 'invoices', serviceName: 'sonomark-invoices' },
  /**
   * Not a workflow task: an EventBridge rule on the state machine's TIMED_OUT, ABORTED and
   * FAILED executions runs it (local mode: the local runner), to record a scan left RUNNING.
   */
  executionEnded: { id: 'ExecutionEnded', folder: 'execution-ended', serviceName: 'sonomark-execution-ended' },
  loadExperts: { id: 'LoadExperts', folder: 'load-experts', serviceName: 'sonomark-load-experts' },
  /** Cohort workflow (CohortStack): plans one Distributed Map batch (score only, or extract first). */
  cohortPlan: { id: 'CohortPlan', folder: 'cohort-plan', serviceName: 'sonomark-cohort-plan' },
  /** Cohort workflow: scores one batch's scans with the manifest's current experts (no GPU). */
  cohortScore: { id: 'CohortScore', folder: 'cohort-score', serviceName: 'sonomark-cohort-score' },
  /** Cohort workflow: gathers the batches' outcomes into cohort.csv and summary.json. */
  cohortReport: { id: 'CohortReport', folder: 'cohort-report', serviceName: 'sonomark-cohort-report' },
  expert: {
    id: (expert: string): string => `${EXPERT_ID_PREFIX}${pascalName(expert)}`,
    /** Whether a construct id is an expert function's. */
    isId: (id: string): boolean => new RegExp(`^${EXPERT_ID_PREFIX}[A-Z0-9]`).test(id),
    folder: 'expert',
    serviceName: 'sonomark-expert',
  },
} as const;

/**
 * The extractor as a Lambda function (`computeMode: 'lambda'`): its code is the extractor's own
 * (gpu-tasks/feature-extractor/src/lambda.ts, in the extractor image), not a `lambdas/<folder>`,
 * hence not in FUNCTIONS. The construct id is how local mode binds the Extract state to it.
 */
export const EXTRACTOR_FUNCTION = { id: 'ExtractorFunction', serviceName: 'sonomark-extractor' } as const;

/**
 * The execution statuses whose "Step Functions Execution Status Change" events the
 * ExecutionEnded rule forwards (lib/constructs/execution-ended.ts) and its handler accepts:
 * the ways an execution ends without having recorded its scan's outcome itself.
 */
export const EXECUTION_ENDED_STATUSES = ['TIMED_OUT', 'ABORTED', 'FAILED'] as const;

/** One of FUNCTIONS: what the CDK needs to build it and the handler to name itself. */
export interface FunctionNames {
  /** Folder under lambdas/ holding its handler.ts. */
  readonly folder: string;
  readonly serviceName: string;
}

/**
 * State names of the workflow. Stable: local mode binds Task states by name,
 * alarms and dashboards refer to them, and renaming one is a breaking change.
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
  /** Choice after a failed Extract: a job the spot queue could not place goes on demand, the rest to RecordFailure. */
  extractFailed: 'ExtractFailed',
  /** Extract again, on the on-demand queue (same job, same definition). */
  extractOnDemand: 'ExtractOnDemand',
  loadExperts: 'LoadExperts',
  score: 'Score',
  scoreExpert: 'ScoreExpert',
  finalize: 'Finalize',
  recordFailure: 'RecordFailure',
  failed: 'Failed',
  done: 'Done',
} as const;

/** State names of the cohort workflow (lib/constructs/cohort-workflow.ts). Stable, like STATE. */
export const COHORT_STATE = {
  /** Per source (prefixed like the processor states): the run's folder, start time and source at `$.run`. */
  init: 'InitRun',
  source: 'Source',
  /** One Distributed Map per item source; each runs the same item processor. */
  mapCsv: 'CohortCsv',
  mapJsonl: 'CohortJsonl',
  mapPrefix: 'CohortPrefix',
  plan: 'PlanBatch',
  needsExtract: 'NeedsExtract',
  extract: 'ExtractBatch',
  score: 'ScoreBatch',
  report: 'CohortReport',
  done: 'CohortDone',
} as const;

/**
 * Execution state layout (JSONPath):
 * - `$.event`       the S3 Object Created event (EventBridge input, wrapped by Start)
 * - `$.validation`  ValidateOutput
 * - `$.scan`        ScanRef (copied from $.validation.scan by Claimed)
 * - `$.extract`     Batch job summary {jobId, startedAt, stoppedAt}
 * - `$.experts`     {list: [{name, version, file, sha256, functionArn}]}: LoadExperts' reading of the manifest
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
