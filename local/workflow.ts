/**
 * Local mode: the synthesized state machine, executed by aws-local-stepfunctions
 * against s3rver and dynalite, with every Task state bound to the same handler
 * code the cloud runs. `sonomark analyze` and the integration tests use this.
 */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { StateMachine } from 'aws-local-stepfunctions';
import { randomUUID } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expertsFor, loadManifest, type LoadedManifest } from '../core/manifest';
import { NO_SITE, parseUploadKey, sidecarKeyFor, uploadKey } from '../core/keys';
import { DEFAULT_MODALITY, type Modality } from '../core/modality';
import { getScan, listExpertResults, listScans } from '../core/results-store';
import { FeaturesDocument, type ExpertOutput, type ProblemDetail, type S3ObjectCreatedEvent } from '../core/schemas';
import { bindTaskStates, expertFunctionArns, type LocalHandlers } from './bindings';
import {
  cachedWorkerExtractorSession,
  useWorkerExtractorSessions,
} from '../gpu-tasks/feature-extractor/src/infer-worker';
import { killDecoders } from '../gpu-tasks/feature-extractor/src/decode';
import { INTERRUPTED_ERROR, type ExecutionEndedOutput } from '../lambdas/execution-ended/execution-ended';
import { lockDataDir, type DataDirLock } from './lock';
import { expertSession } from '../lambdas/expert/score';
import { loadWorkflowDefinition, type LoadedDefinition, type WorkflowDefinition } from './definition';
import { localHandlers, localScanRates } from './handlers';
import { principalClients } from './iam-guard';
import type { LocalPermissions } from './iam-policy';
import { LocalFaults, type FaultPlan } from './faults';
import { scaleRetries, type RetryScaling } from './retry';
import { localPseudonymSalt } from './pseudonym-salt';
import { localSidecar, type ModalityHint } from './sidecar';
import { ensureBucket, ensureTable, startLocalServices, type LocalServices } from './services';

import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE, LOCAL_UPLOADS_BUCKET } from './names';

export { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE, LOCAL_UPLOADS_BUCKET };
/** Attempts to put one upload into s3rver (see putFile). */
const PUT_ATTEMPTS = 3;

export interface LocalWorkflowOptions {
  /** Keep S3 and DynamoDB data here across runs; default: a temp dir removed on close. */
  readonly dataDir?: string;
  readonly modelsDir?: string;
  readonly siteId?: string;
  readonly studyId?: string;
  /** Where the synthesized workflow definition is cached (definition.ts). @default <package>/.sonomark/cache */
  readonly cacheDir?: string;
  /**
   * CDK context of the definition to run, over cdk.json's: `{ computeMode: 'lambda' }` runs the
   * lambda-mode definition (Extract invokes the extractor's function). @default none
   */
  readonly context?: Record<string, unknown>;
  /**
   * The IAM policies local mode enforces instead of the templates' (tests: a template
   * with a permission removed, iam-policy.ts localPermissions). @default the synthesized templates'
   */
  readonly permissions?: LocalPermissions;
  /**
   * How the definition's Retry intervals are scaled locally (local/retry.ts): the same
   * Retry blocks as the cloud, in milliseconds. @default 1/1000, floor 2 ms
   */
  readonly retryScaling?: RetryScaling;
  /** Faults to inject (local/faults.ts): SDK errors on the local clients, transient handler errors. @default none */
  readonly faults?: FaultPlan;
  /** Where the extractor job's JSON log lines go (in the cloud: its CloudWatch log stream). @default dropped */
  readonly extractorLog?: (line: string) => void;
  /**
   * Replaces or wraps the handlers bound to the states (tests: the Lambda handler modules
   * themselves, with their Powertools logging). @default the local handlers as they are
   */
  readonly handlers?: (defaults: LocalHandlers) => LocalHandlers;
  /**
   * The modalities whose extractor and experts are loaded while the services start; another
   * modality's models load when its first scan needs them. A run of clips then never starts the
   * X-ray extractor's inference process and sessions (cold analyze of one clip: peak 239 MiB instead of
   * 253, CPU time unchanged within the run-to-run spread; farm-bench, 7 pairs).
   * @default [ultrasound]
   */
  readonly preloadModalities?: readonly Modality[];
}

/**
 * The id of a local execution: the lease holder of its claim, as the execution ARN is in
 * AWS. Not ARN-shaped: nothing parses it, and a placeholder account id of zeros would only
 * look like data (test/integration/dicom.test.ts searches results for header values).
 */
export function localExecutionId(name: string): string {
  return `local-execution:${name}`;
}

/** How a local execution ended, in the cloud's Execution Status Change terms. */
export type LocalExecutionEnd = 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';

export interface AnalyzeOptions {
  /** Called as each state is entered (tests abort an execution during Extract through it). */
  readonly onStateEntered?: (state: string, executionId: string) => void;
}

/** What goes up with the file: its sidecar (local/sidecar.ts). */
export interface UploadOptions {
  /**
   * The modality hint (`sonomark analyze --modality`). @default ultrasound, not explicit (the CLI's
   * default: a still is ultrasound unless something says otherwise, as before modalities); null: no
   * hint, as a bare upload in the cloud (a still image is then refused as MODALITY_REQUIRED).
   */
  readonly modality?: ModalityHint;
  /** The user's own sidecar text (`FILE.meta.json`), merged with the hint. */
  readonly sidecar?: string;
}

/** The hint a local analysis gives when its caller names none. */
export const DEFAULT_MODALITY_HINT: ModalityHint = { modality: DEFAULT_MODALITY, explicit: false };

export interface AnalyzeResult {
  readonly file: string;
  readonly scanId: string | null;
  readonly status: 'completed' | 'failed';
  /** What Validate decided the upload is; null when it could not (refused before, or for want of one). */
  readonly modality: Modality | null;
  readonly error?: ProblemDetail;
  /** True when these bytes had already been analysed and the stored result is returned. */
  readonly reused: boolean;
  readonly features: FeaturesDocument | null;
  readonly experts: Record<string, ExpertOutput>;
  readonly models: { extractor: string; experts: Record<string, string> } | null;
  /** states: per Task or Map state, ms from its first entry to its last exit (Map iterations overlap). */
  readonly timings: { totalMs: number; states: Record<string, number> };
  /** Retries the state machine ran, by state name (a Retry block matched and the state ran again). */
  readonly retries?: Record<string, number>;
  /** How the execution ended (ABORTED/TIMED_OUT/FAILED ones were handed to ExecutionEnded). */
  readonly execution?: { readonly id: string; readonly status: LocalExecutionEnd };
}

interface RunningExecution {
  readonly abort: () => void;
  /** StopExecution's `error`: why it was aborted (INTERRUPTED_ERROR for a signal). */
  stopError?: string;
}

export class LocalWorkflow {
  private constructor(
    readonly services: LocalServices,
    readonly synthesized: WorkflowDefinition,
    /** Whether the definition came from the cache or was synthesized at this start. */
    readonly definitionSource: LoadedDefinition['source'],
    readonly loaded: LoadedManifest,
    private readonly taskHandlers: ReturnType<typeof bindTaskStates>,
    private readonly machine: StateMachine,
    private readonly opts: Required<Pick<LocalWorkflowOptions, 'siteId' | 'studyId'>>,
    private readonly ownedDataDir: string | undefined,
    private readonly lock: DataDirLock,
    private readonly handlers: LocalHandlers,
    /** The faults in force and what they have injected so far. */
    readonly faults: LocalFaults,
    /** Ends this workflow's use of the process-wide extractor sessions (infer-worker.ts). */
    private readonly endSessions: () => Promise<void>,
  ) {}

  /** Executions in progress, by id. */
  private readonly running = new Map<string, RunningExecution>();
  /** Task handlers in progress: an aborted execution's task keeps running until it settles. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private interruptedBy: string | undefined;

  static async start(options: LocalWorkflowOptions = {}): Promise<LocalWorkflow> {
    const loaded = loadManifest(options.modelsDir);
    const ownedDataDir = options.dataDir ? undefined : mkdtempSync(path.join(os.tmpdir(), 'sonomark-local-'));
    const dataDir = options.dataDir ?? (ownedDataDir as string);
    // One process per data dir (local/lock.ts): taken before any service opens its files.
    const lock = lockDataDir(dataDir);
    // Start-up work that does not depend on each other runs together: the model sessions
    // (process-wide caches the handlers then hit), the definition (cached, definition.ts),
    // and the local services. A session that fails to load is reported by the state that uses it.
    const endSessions = useWorkerExtractorSessions();
    const preload = options.preloadModalities ?? [DEFAULT_MODALITY];
    for (const pending of [
      ...preload.flatMap((m) => {
        const x = loaded.manifest.extractors[m];
        return x ? [cachedWorkerExtractorSession(loaded.dir, x)] : [];
      }),
      ...preload.flatMap((m) => expertsFor(loaded.manifest, m).map((e) => expertSession(loaded, e))),
    ]) {
      pending.catch(() => undefined);
    }
    const [definition, servicesStarted] = await Promise.allSettled([
      loadWorkflowDefinition({
        modelsDir: loaded.dir,
        cacheDir: options.cacheDir,
        ...(options.context ? { context: options.context } : {}),
      }),
      startLocalServices(dataDir),
    ]);
    if (servicesStarted.status === 'rejected' || definition.status === 'rejected') {
      if (servicesStarted.status === 'fulfilled') await servicesStarted.value.close();
      await endSessions();
      lock.release();
      if (ownedDataDir) rmSync(ownedDataDir, { recursive: true, force: true });
      throw definition.status === 'rejected' ? definition.reason : (servicesStarted as PromiseRejectedResult).reason;
    }
    const services = servicesStarted.value;
    const synthesized = definition.value.workflow;
    try {
      const faults = new LocalFaults(options.faults);
      faults.attach('s3', services.s3);
      // The document client sends through this client's middleware stack.
      faults.attach('dynamodb', services.dynamo);
      await Promise.all([
        ensureBucket(services.s3, LOCAL_UPLOADS_BUCKET),
        ensureBucket(services.s3, LOCAL_ARTIFACTS_BUCKET),
        ensureTable(services.dynamo, LOCAL_TABLE, synthesized.tableProperties),
      ]);
      const defaults: LocalHandlers = localHandlers({
        s3: services.s3,
        doc: services.doc,
        table: LOCAL_TABLE,
        artifactsBucket: LOCAL_ARTIFACTS_BUCKET,
        loaded,
        expertFunctions: expertFunctionArns(
          synthesized.functions,
          loaded.manifest.experts.map((e) => e.name),
        ),
        pseudonymSalt: localPseudonymSalt(services.dataDir),
        // Priced as the deployment whose definition runs: options.context, else the CDK CLI's
        // CDK_CONTEXT_JSON (which the in-process synthesis reads too, and the cache key includes).
        ...(options.context || process.env.CDK_CONTEXT_JSON
          ? { rates: localScanRates(loaded, options.context ?? cdkContextFromEnv()) }
          : {}),
        ...(options.extractorLog ? { log: options.extractorLog } : {}),
        // Each handler's S3 and DynamoDB calls are checked against its role's policy in the templates.
        // Injected faults reach those clients too: they sit below the IAM check, as a service error would.
        clientsFor: principalClients(
          services,
          options.permissions ?? synthesized.permissions,
          synthesized.functions,
          (clients) => {
            faults.attach('s3', clients.s3);
            faults.attach('dynamodb', clients.dynamo);
          },
        ),
      });
      const handlers = options.handlers ? options.handlers(defaults) : defaults;
      const taskHandlers = bindTaskStates(synthesized.definition, synthesized.functions, handlers, faults);
      // The machine that runs: the same definition with its Retry intervals scaled to
      // milliseconds (fractional seconds, which ASL validation rejects). The definition itself
      // was validated when it was synthesized, before it was cached (definition.ts).
      const machine = new StateMachine(scaleRetries(synthesized.definition, options.retryScaling) as never, {
        validationOptions: { noValidate: true },
      });
      const workflow = new LocalWorkflow(
        services,
        synthesized,
        definition.value.source,
        loaded,
        taskHandlers,
        machine,
        {
          siteId: options.siteId ?? 'local',
          studyId: options.studyId ?? 'local',
        },
        ownedDataDir,
        lock,
        handlers,
        faults,
        endSessions,
      );
      await workflow.recoverAbandoned();
      return workflow;
    } catch (err) {
      await services.close();
      await endSessions();
      lock.release();
      if (ownedDataDir) rmSync(ownedDataDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The definition the local StateMachine executes (the synthesized one, tokens substituted). */
  get executedDefinition(): Record<string, unknown> {
    return this.synthesized.definition;
  }

  /**
   * Streams the file into the uploads bucket, never reading it whole (a 600 MB upload must not
   * cost 600 MB of this process's memory). The SDK cannot retry a streamed body (a reset
   * keep-alive socket), so each attempt here opens the file afresh.
   */
  private async putFile(file: string, key: string, size: number) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.services.s3.send(
          new PutObjectCommand({
            Bucket: LOCAL_UPLOADS_BUCKET,
            Key: key,
            Body: createReadStream(file),
            ContentLength: size,
          }),
        );
      } catch (err) {
        if (attempt >= PUT_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Puts the sidecar (the user's, with the modality hint merged in), or removes a stale one a run
   * before left at this key (a data dir keeps its uploads): each analysis says only what it says.
   */
  private async putSidecar(key: string, userText: string | undefined, hint: ModalityHint): Promise<void> {
    const sidecar = localSidecar(userText, hint);
    if ('conflict' in sidecar) throw new Error(`The file's modality is given twice: ${sidecar.conflict}.`);
    const Key = sidecarKeyFor(key);
    if (sidecar.text === undefined) {
      await this.services.s3.send(new DeleteObjectCommand({ Bucket: LOCAL_UPLOADS_BUCKET, Key }));
      return;
    }
    await this.services.s3.send(
      new PutObjectCommand({ Bucket: LOCAL_UPLOADS_BUCKET, Key, Body: sidecar.text, ContentType: 'application/json' }),
    );
  }

  /** Puts the file into the local uploads bucket and runs the workflow on its Object Created event. */
  async analyze(
    file: string,
    objectName = path.basename(file),
    /** redeliver: run this Object Created event again, without putting the file (a duplicate delivery). */
    options: AnalyzeOptions & UploadOptions & { redeliver?: S3ObjectCreatedEvent } = {},
  ): Promise<AnalyzeResult> {
    if (this.interruptedBy) throw new Error(`The local workflow was interrupted (${this.interruptedBy}).`);
    const started = Date.now();
    const key = uploadKey(this.opts.siteId, this.opts.studyId, objectName);
    const size = statSync(file).size;
    if (options.redeliver) return this.run(file, key, size, undefined, started, this.opts.siteId, options);
    // The sidecar before the file: Validate reads it when the file's event comes.
    await this.putSidecar(
      key,
      options.sidecar,
      options.modality === undefined ? DEFAULT_MODALITY_HINT : options.modality,
    );
    const put = await this.putFile(file, key, size);
    return this.run(file, key, size, put, started, this.opts.siteId, options);
  }

  /**
   * Runs the workflow on an object already in the uploads bucket (e.g. uploaded through a
   * presigned POST to `sonomark serve`), as its Object Created event would. The result is
   * labelled with the key, which is never logged here.
   */
  async analyzeStored(key: string): Promise<AnalyzeResult> {
    if (this.interruptedBy) throw new Error(`The local workflow was interrupted (${this.interruptedBy}).`);
    const started = Date.now();
    const head = await this.services.s3.send(new HeadObjectCommand({ Bucket: LOCAL_UPLOADS_BUCKET, Key: key }));
    let siteId = NO_SITE;
    try {
      siteId = parseUploadKey(key).siteId;
    } catch {
      // Validate rejects the key; its failure is recorded under NO_SITE.
    }
    return this.run(key, key, head.ContentLength ?? 0, head, started, siteId, {});
  }

  private async run(
    file: string,
    key: string,
    size: number,
    put: { ETag?: string; VersionId?: string } | undefined,
    started: number,
    siteId: string,
    /** redeliver: a duplicate delivery of an earlier Object Created event (the soak's redelivery). */
    options: AnalyzeOptions & { redeliver?: S3ObjectCreatedEvent },
  ): Promise<AnalyzeResult> {
    const event: S3ObjectCreatedEvent = options.redeliver ?? {
      'detail-type': 'Object Created',
      source: 'aws.s3',
      time: new Date().toISOString(),
      region: 'local-1',
      detail: {
        bucket: { name: LOCAL_UPLOADS_BUCKET },
        object: {
          key,
          size,
          etag: put?.ETag?.replace(/"/g, ''),
          ...(put?.VersionId ? { 'version-id': put.VersionId } : {}),
        },
        reason: 'PutObject',
      },
    };

    const states: Record<string, number> = {};
    const entered = new Map<string, number>();
    let scanId: string | null = null;
    let reused = false;
    let firstFailure: { state: string; error: string; cause: string } | undefined;
    const retries: Record<string, number> = {};
    // This execution's tasks in progress (Map iterations included): it waits for its own only,
    // so concurrent analyses do not wait for each other.
    const ownTasks = new Set<Promise<unknown>>();
    const executionName = randomUUID();
    const executionId = localExecutionId(executionName);
    const execution = this.machine.run(event as never, {
      // $$.Execution.Id: Validate's lease holder, as the execution ARN is in AWS.
      context: { Execution: { Id: executionId, Name: executionName } },
      overrides: { taskResourceLocalHandlers: this.trackedTaskHandlers(ownTasks) as never },
    });
    const logTask = (async () => {
      for await (const ev of execution.eventLogs) {
        const e = ev as {
          type: string;
          timestamp: number;
          state?: { name: string; type: string; output?: unknown };
          Error?: string;
          Cause?: string;
        };
        if (e.type === 'StateFailed' && e.state && !firstFailure) {
          firstFailure = { state: e.state.name, error: e.Error ?? 'Error', cause: e.Cause ?? '' };
        }
        if (e.type === 'StateRetried' && e.state) retries[e.state.name] = (retries[e.state.name] ?? 0) + 1;
        if (e.type === 'StateEntered' && e.state) {
          // The first entry: a Map's iterations of one state run side by side, and a retry re-enters.
          if (!entered.has(e.state.name)) entered.set(e.state.name, e.timestamp);
          options.onStateEntered?.(e.state.name, executionId);
        }
        if ((e.type === 'StateExited' || e.type === 'StateFailed') && e.state) {
          const t0 = entered.get(e.state.name);
          // Work happens in Task and Map states; Pass/Choice transitions would only add noise.
          if (t0 !== undefined && (e.state.type === 'Task' || e.state.type === 'Map')) {
            // Wall time from the state's first entry to its last exit, so four experts scored at once
            // count once (summing them read as four times the wall time the step took).
            states[e.state.name] = Math.max(states[e.state.name] ?? 0, e.timestamp - t0);
          }
          // The validation result sits at $.validation once Validate's output is shaped (PATHS).
          const v = (
            e.state.output as
              { validation?: { scanId?: string; scan?: { scanId: string }; action?: string } } | undefined
          )?.validation;
          if (e.type === 'StateExited' && v?.action && scanId === null) {
            scanId = v.scan?.scanId ?? v.scanId ?? null;
            reused = v.action === 'skip';
          }
        }
      }
    })();
    const handle: RunningExecution = { abort: execution.abort };
    this.running.set(executionId, handle);
    if (this.interruptedBy) this.stop(executionId, INTERRUPTED_ERROR);
    let status: LocalExecutionEnd = 'SUCCEEDED';
    try {
      await execution.result;
    } catch (err) {
      // A failed execution is an outcome here, not an exception: RecordFailure has
      // written the FAILED record, which is read below like any other result.
      const name = (err as { name?: string } | null)?.name;
      status = name === 'ExecutionAbortedError' ? 'ABORTED' : name === 'ExecutionTimeoutError' ? 'TIMED_OUT' : 'FAILED';
    } finally {
      this.running.delete(executionId);
    }
    // An aborted execution's task may still be running (the library does not cancel it):
    // it must settle before the scan is recorded, or a late claim could follow the record.
    await settle(ownTasks);
    const ended = status === 'SUCCEEDED' ? undefined : await this.executionEnded(executionId, status, handle.stopError);
    await logTask.catch(() => undefined);
    const result = await this.collect(
      file,
      siteId,
      scanId,
      reused,
      { totalMs: Date.now() - started, states },
      retries,
      firstFailure,
      // A failed execution says why in its first failure; a stopped one, through ExecutionEnded.
      status === 'FAILED' ? undefined : ended?.problem,
    );
    return { ...result, execution: { id: executionId, status } };
  }

  /** The Task handlers, each call tracked in `own` and in `inFlight` (all executions') until it settles. */
  private trackedTaskHandlers(own: Set<Promise<unknown>>): Record<string, (input: unknown) => Promise<unknown>> {
    return Object.fromEntries(
      Object.entries(this.taskHandlers).map(([name, run]) => [
        name,
        (input: unknown) => {
          const p = run(input);
          const tracked = p.then(
            () => undefined,
            () => undefined,
          );
          own.add(tracked);
          this.inFlight.add(tracked);
          void tracked.then(() => {
            own.delete(tracked);
            this.inFlight.delete(tracked);
          });
          return p;
        },
      ]),
    );
  }

  /**
   * What the cloud's ExecutionEnded rule does for an execution that ended ABORTED,
   * TIMED_OUT or FAILED: the same handler, with the same event shape.
   */
  private async executionEnded(
    executionId: string,
    status: Exclude<LocalExecutionEnd, 'SUCCEEDED'>,
    error?: string,
  ): Promise<ExecutionEndedOutput> {
    return (await this.handlers.lambdas.executionEnded({
      'detail-type': 'Step Functions Execution Status Change',
      source: 'aws.states',
      detail: { executionArn: executionId, status, error: error ?? null, cause: null },
    })) as ExecutionEndedOutput;
  }

  /** Stops one execution, as StopExecution would, with an error name. */
  private stop(executionId: string, error: string): boolean {
    const handle = this.running.get(executionId);
    if (!handle) return false;
    handle.stopError = error;
    handle.abort();
    return true;
  }

  /**
   * Aborts an execution in progress (StopExecution): its scan is recorded FAILED
   * (EXECUTION_ABORTED) through ExecutionEnded once its running task settles.
   */
  abort(executionId: string): boolean {
    return this.stop(executionId, 'sonomark.Aborted');
  }

  /**
   * Ctrl-C / SIGTERM: stops every execution in progress (each scan is recorded FAILED
   * with code INTERRUPTED, so the next run analyses it again), kills the ffmpeg children
   * so their tasks settle now, and refuses new analyses. The caller then awaits the
   * analyze() in progress and close().
   */
  interrupt(signal = 'SIGINT'): void {
    this.interruptedBy ??= signal;
    for (const id of [...this.running.keys()]) this.stop(id, INTERRUPTED_ERROR);
    killDecoders();
  }

  /** The site this workflow's uploads go under (`uploads/{siteId}/…`), whose partition holds its scans. */
  get siteId(): string {
    return this.opts.siteId;
  }

  /** The signal that interrupted this workflow, if any. */
  get interrupted(): string | undefined {
    return this.interruptedBy;
  }

  /**
   * At start-up, under the data dir's lock: no other process can be running a scan in
   * this data dir, so a RUNNING scan was left by a run that died without a word (killed,
   * crashed). Recorded FAILED (INTERRUPTED) like a Ctrl-C, so this run analyses it again.
   */
  private async recoverAbandoned(): Promise<number> {
    let recovered = 0;
    for (const scan of await listScans(this.services.doc, LOCAL_TABLE)) {
      if (scan.status !== 'RUNNING' || !scan.lease) continue;
      const out = await this.executionEnded(scan.lease.executionId, 'ABORTED', INTERRUPTED_ERROR);
      if (out.result.recorded) recovered++;
    }
    return recovered;
  }

  private async collect(
    file: string,
    siteId: string,
    scanId: string | null,
    reused: boolean,
    timings: AnalyzeResult['timings'],
    retries: Record<string, number>,
    firstFailure?: { state: string; error: string; cause: string },
    /** Why the execution ended early (aborted, interrupted, timed out), when it did. */
    ended?: ProblemDetail,
  ): Promise<AnalyzeResult> {
    const base = { file, scanId, reused, timings, retries, modality: null };
    if (!scanId) {
      // Stopped, or failed before a scan existed (the workflow itself broke): say where and why.
      return {
        ...base,
        status: 'failed',
        error: ended ?? {
          code: 'NOT_ANALYZED',
          message: firstFailure
            ? `${firstFailure.state} failed before a scan id existed: ${firstFailure.error}: ${causeMessage(firstFailure.cause)}`
            : 'The upload was not recognised as a clip.',
        },
        features: null,
        experts: {},
        models: null,
      };
    }
    const scan = await getScan(this.services.doc, LOCAL_TABLE, siteId, scanId);
    if (!scan || scan.status !== 'COMPLETED') {
      return {
        ...base,
        modality: scan?.modality ?? null,
        status: 'failed',
        error: scan?.error ?? { code: 'INCOMPLETE', message: `The scan ended in status ${scan?.status ?? 'unknown'}.` },
        features: null,
        experts: {},
        models: null,
      };
    }
    const results = await listExpertResults(this.services.doc, LOCAL_TABLE, siteId, scanId);
    const featuresKeyValue = scan.featuresKey as string;
    const obj = await this.services.s3.send(
      new GetObjectCommand({ Bucket: LOCAL_ARTIFACTS_BUCKET, Key: featuresKeyValue }),
    );
    const features = FeaturesDocument.parse(JSON.parse(await obj.Body!.transformToString()));
    return {
      ...base,
      // A scan stored before modalities has none: it was ultrasound.
      modality: scan.modality ?? DEFAULT_MODALITY,
      status: 'completed',
      features,
      experts: Object.fromEntries(results.map((r) => [r.expert.name, r.output])),
      models: {
        extractor: `${features.extractor.name}@${features.extractor.version}`,
        experts: Object.fromEntries(results.map((r) => [r.expert.name, `${r.expert.name}@${r.expert.version}`])),
      },
    };
  }

  async close(): Promise<void> {
    await settle(this.inFlight);
    try {
      await Promise.all([this.services.close(), this.endSessions()]);
    } finally {
      this.lock.release();
      if (this.ownedDataDir) rmSync(this.ownedDataDir, { recursive: true, force: true });
    }
  }
}

/** Waits until every task in `tasks` has settled, including any added meanwhile. */
async function settle(tasks: Set<Promise<unknown>>): Promise<void> {
  while (tasks.size > 0) await Promise.all([...tasks]);
}

/** A Lambda-style Cause is JSON with errorMessage; others are plain text. */
function causeMessage(cause: string): string {
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    return parsed.errorMessage ?? cause;
  } catch {
    return cause;
  }
}

/** The CDK context the CDK CLI passes in CDK_CONTEXT_JSON, or none when absent or not a JSON object. */
function cdkContextFromEnv(): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(process.env.CDK_CONTEXT_JSON ?? '') as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
