/**
 * Local mode: the synthesized state machine, executed by aws-local-stepfunctions
 * against s3rver and dynalite, with every Task state bound to the same handler
 * code the cloud runs. `sonomark analyze` and the integration tests use this.
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { StateMachine } from 'aws-local-stepfunctions';
import { createReadStream, statSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadManifest, type LoadedManifest } from '../core/manifest';
import { NO_SITE, parseUploadKey, uploadKey } from '../core/keys';
import { getScan, listExpertResults } from '../core/results-store';
import { FeaturesDocument, type ExpertOutput, type ProblemDetail, type S3ObjectCreatedEvent } from '../core/schemas';
import { bindTaskStates, type LocalHandlers } from './bindings';
import { cachedExtractorSession } from '../gpu-tasks/feature-extractor/src/main';
import { expertSession } from '../lambdas/expert/score';
import { loadWorkflowDefinition, type LoadedDefinition, type WorkflowDefinition } from './definition';
import { localHandlers } from './handlers';
import { principalClients } from './iam-guard';
import type { LocalPermissions } from './iam-policy';
import { localPseudonymSalt } from './pseudonym-salt';
import { LocalFaults, type FaultPlan } from './faults';
import { scaleRetries, type RetryScaling } from './retry';
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
}

export interface AnalyzeResult {
  readonly file: string;
  readonly scanId: string | null;
  readonly status: 'completed' | 'failed';
  readonly error?: ProblemDetail;
  /** True when these bytes had already been analysed and the stored result is returned. */
  readonly reused: boolean;
  readonly features: FeaturesDocument | null;
  readonly experts: Record<string, ExpertOutput>;
  readonly models: { extractor: string; experts: Record<string, string> } | null;
  readonly timings: { totalMs: number; states: Record<string, number> };
  /** Retries the state machine ran, by state name (a Retry block matched and the state ran again). */
  readonly retries?: Record<string, number>;
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
    /** The faults in force and what they have injected so far. */
    readonly faults: LocalFaults,
  ) {}

  static async start(options: LocalWorkflowOptions = {}): Promise<LocalWorkflow> {
    const loaded = loadManifest(options.modelsDir);
    const ownedDataDir = options.dataDir ? undefined : mkdtempSync(path.join(os.tmpdir(), 'sonomark-local-'));
    // Start-up work that does not depend on each other runs together: the model sessions
    // (process-wide caches the handlers then hit), the definition (cached, definition.ts),
    // and the local services. A session that fails to load is reported by the state that uses it.
    for (const pending of [
      cachedExtractorSession(loaded.dir, loaded.manifest.extractor, 'cpu'),
      ...loaded.manifest.experts.map((e) => expertSession(loaded, e)),
    ]) {
      pending.catch(() => undefined);
    }
    const [definition, servicesStarted] = await Promise.allSettled([
      loadWorkflowDefinition({ modelsDir: loaded.dir, cacheDir: options.cacheDir }),
      startLocalServices(options.dataDir ?? (ownedDataDir as string)),
    ]);
    if (servicesStarted.status === 'rejected' || definition.status === 'rejected') {
      if (servicesStarted.status === 'fulfilled') await servicesStarted.value.close();
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
      const handlers: LocalHandlers = localHandlers({
        s3: services.s3,
        doc: services.doc,
        table: LOCAL_TABLE,
        artifactsBucket: LOCAL_ARTIFACTS_BUCKET,
        loaded,
        pseudonymSalt: localPseudonymSalt(services.dataDir),
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
      const taskHandlers = bindTaskStates(synthesized.definition, synthesized.functions, handlers, faults);
      // checkArn off: the definition's ARNs are local placeholders for deploy-time tokens.
      // The library fills in defaults (QueryLanguage) in place, so it gets its own copy
      // (a JSON copy: structuredClone's objects can come from another realm under jest,
      // and the library's plain-object checks then skip them).
      new StateMachine(JSON.parse(JSON.stringify(synthesized.definition)) as never, {
        validationOptions: { checkArn: false },
      });
      // The machine that runs: the same definition with its Retry intervals scaled to
      // milliseconds (fractional seconds, which ASL validation rejects: validated above).
      const machine = new StateMachine(scaleRetries(synthesized.definition, options.retryScaling) as never, {
        validationOptions: { noValidate: true },
      });
      return new LocalWorkflow(
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
        faults,
      );
    } catch (err) {
      await services.close();
      if (ownedDataDir) rmSync(ownedDataDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The site this workflow's uploads go under (`uploads/{siteId}/…`), whose partition holds its scans. */
  get siteId(): string {
    return this.opts.siteId;
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

  /** Puts the file into the local uploads bucket and runs the workflow on its Object Created event. */
  async analyze(
    file: string,
    objectName = path.basename(file),
    /** redeliver: run this Object Created event again, without putting the file (a duplicate delivery). */
    opts: { redeliver?: S3ObjectCreatedEvent } = {},
  ): Promise<AnalyzeResult> {
    const started = Date.now();
    const key = uploadKey(this.opts.siteId, this.opts.studyId, objectName);
    const size = statSync(file).size;
    if (opts.redeliver) return this.run(file, key, size, undefined, started, this.opts.siteId, opts.redeliver);
    const put = await this.putFile(file, key, size);
    return this.run(file, key, size, put, started, this.opts.siteId);
  }

  /**
   * Runs the workflow on an object already in the uploads bucket (e.g. uploaded through a
   * presigned POST to `sonomark serve`), as its Object Created event would. The result is
   * labelled with the key, which is never logged here.
   */
  async analyzeStored(key: string): Promise<AnalyzeResult> {
    const started = Date.now();
    const head = await this.services.s3.send(new HeadObjectCommand({ Bucket: LOCAL_UPLOADS_BUCKET, Key: key }));
    let siteId = NO_SITE;
    try {
      siteId = parseUploadKey(key).siteId;
    } catch {
      // Validate rejects the key; its failure is recorded under NO_SITE.
    }
    return this.run(key, key, head.ContentLength ?? 0, head, started, siteId);
  }

  private async run(
    file: string,
    key: string,
    size: number,
    put: { ETag?: string; VersionId?: string } | undefined,
    started: number,
    siteId: string,
    /** A duplicate delivery of an earlier Object Created event (the soak's redelivery). */
    redeliver?: S3ObjectCreatedEvent,
  ): Promise<AnalyzeResult> {
    const event: S3ObjectCreatedEvent = redeliver ?? {
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
    const execution = this.machine.run(event as never, {
      overrides: { taskResourceLocalHandlers: this.taskHandlers as never },
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
        if (e.type === 'StateEntered' && e.state) entered.set(e.state.name, e.timestamp);
        if ((e.type === 'StateExited' || e.type === 'StateFailed') && e.state) {
          const t0 = entered.get(e.state.name);
          // Work happens in Task and Map states; Pass/Choice transitions would only add noise.
          if (t0 !== undefined && (e.state.type === 'Task' || e.state.type === 'Map')) {
            states[e.state.name] = (states[e.state.name] ?? 0) + (e.timestamp - t0);
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
    try {
      await execution.result;
    } catch {
      // A failed execution is an outcome here, not an exception: RecordFailure has
      // written the FAILED record, which is read below like any other result.
    }
    await logTask;
    return this.collect(file, siteId, scanId, reused, { totalMs: Date.now() - started, states }, retries, firstFailure);
  }

  private async collect(
    file: string,
    siteId: string,
    scanId: string | null,
    reused: boolean,
    timings: AnalyzeResult['timings'],
    retries: Record<string, number>,
    firstFailure?: { state: string; error: string; cause: string },
  ): Promise<AnalyzeResult> {
    const base = { file, scanId, reused, timings, retries };
    if (!scanId) {
      // Failed before a scan existed (the workflow itself broke): say where and why.
      return {
        ...base,
        status: 'failed',
        error: {
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
    await this.services.close();
    if (this.ownedDataDir) rmSync(this.ownedDataDir, { recursive: true, force: true });
  }
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
