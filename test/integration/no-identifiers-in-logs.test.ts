/**
 * No identifiers in logs: every log line of local runs on clips whose object key and
 * sidecar carry a fake patient name (DOE^JANE, Jane Doe), and the name appears nowhere.
 *
 * In process, the states run the Lambda handler modules themselves (handler.ts, with
 * their Powertools logs and metrics) against s3rver and dynalite, the extractor job logs
 * as its container does, and every write to stdout, stderr and the console is captured:
 * a completed scan with a sidecar, an invalid sidecar, bytes that are no clip, a
 * truncated MP4 (the extractor fails), and an execution aborted during Extract
 * (ExecutionEnded). Then the built CLI, as a user runs it, on the same kind of inputs.
 *
 * The CLI shows each result next to the path the user gave it (the JSON `file` field,
 * the progress and summary lines): the caller's own path, shown back to the caller. Those
 * exact paths are taken out of the CLI's output before the search; the name may appear
 * nowhere else (no object key, no sidecar value, no error message).
 */
import { uploadModelsToBucket } from '../../core/bucket-models';
import { expertFunctionArns } from '../../local/bindings';
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ENV, STATE } from '../../core/contract';
import { PACKAGE_ROOT } from '../../core/paths';
import type { LocalHandlers } from '../../local/bindings';
import { localScanRates } from '../../local/handlers';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE, LocalWorkflow } from '../../local/workflow';
import { generateClip, REAL_CLIPS, tempDir, writeFile } from './helpers';

jest.setTimeout(180_000);

/** Every spelling of the fake patient this suite plants (matched case-insensitively). */
const NAME = /jane|doe\^|doe%5e|doe-jane/i;
const STUDY = 'it-names';

describe('no patient identifiers in any log line', () => {
  const work = tempDir();

  it('in process: every handler (Powertools), the extractor job and the local runner', async () => {
    // Prepare
    const lines: string[] = [];
    const capture = (chunk: unknown): boolean => {
      lines.push(String(chunk));
      return true;
    };
    const consoleCapture = (...args: unknown[]): void => {
      lines.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    };
    const spies = [
      jest.spyOn(process.stdout, 'write').mockImplementation(capture),
      jest.spyOn(process.stderr, 'write').mockImplementation(capture),
      ...(['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
        jest.spyOn(console, m).mockImplementation(consoleCapture),
      ),
    ];
    const savedEnv = { ...process.env };
    let workflow: LocalWorkflow | undefined;
    const results: { name: string; status: string; code?: string }[] = [];
    try {
      workflow = await LocalWorkflow.start({
        studyId: STUDY,
        extractorLog: (line) => lines.push(line),
        handlers: (defaults) => lambdaModules(defaults),
      });
      const { services } = workflow;
      // LoadExperts and the experts read the manifest and models from the artifacts bucket, as
      // in the cloud after `sonomark experts publish --bucket` (the modules load on first call).
      await uploadModelsToBucket(services.s3, LOCAL_ARTIFACTS_BUCKET, workflow.loaded);
      process.env[ENV.expertFunctions] = JSON.stringify(
        expertFunctionArns(
          workflow.synthesized.functions,
          workflow.loaded.manifest.experts.map((e) => e.name),
        ),
      );
      /** The Lambda handler modules, configured as the CDK configures them, pointed at s3rver and dynalite. */
      function lambdaModules(defaults: LocalHandlers): LocalHandlers {
        Object.assign(process.env, {
          AWS_REGION: 'local-1',
          AWS_ACCESS_KEY_ID: 'S3RVER',
          AWS_SECRET_ACCESS_KEY: 'S3RVER',
          POWERTOOLS_TRACE_ENABLED: 'false',
          POWERTOOLS_LOG_LEVEL: 'DEBUG',
          [ENV.resultsTable]: LOCAL_TABLE,
          [ENV.artifactsBucket]: LOCAL_ARTIFACTS_BUCKET,
        });
        const load = (folder: string) => async (payload: unknown) => {
          const mod = (await import(`../../lambdas/${folder}/handler`)) as {
            handler: (p: unknown) => Promise<unknown>;
          };
          return mod.handler(payload);
        };
        return {
          ...defaults,
          lambdas: {
            validate: load('validate-upload'),
            loadExperts: load('load-experts'),
            expert: load('expert'),
            finalize: load('finalize'),
            recordFailure: load('record-failure'),
            executionEnded: load('execution-ended'),
            // computeMode 'lambda' only; this definition (gpu) runs the extractor job instead.
            extractor: defaults.lambdas.extractor,
          },
        };
      }
      Object.assign(process.env, {
        AWS_ENDPOINT_URL_S3: services.s3Endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: services.dynamoEndpoint,
        [ENV.modelsDir]: workflow.loaded.dir,
        [ENV.scanRates]: JSON.stringify(localScanRates(workflow.loaded)),
      });
      // Each analysis uploads its sidecar (local/sidecar.ts): the file's own text, with the modality hint.
      const sidecars = new Map<string, string>();
      const putSidecar = (objectName: string, body: string) => sidecars.set(objectName, body);
      const analyze = async (file: string, name: string, abortIn?: string) => {
        const r = await workflow!.analyze(file, name, {
          ...(sidecars.has(name) ? { sidecar: sidecars.get(name) } : {}),
          onStateEntered: (state, id) => {
            if (state === abortIn) workflow!.abort(id);
          },
        });
        results.push({ name, status: r.status, code: r.error?.code });
      };

      // Act
      // 1 a clip with a valid sidecar (its zone names the patient, as a careless site might).
      putSidecar('DOE^JANE Jane Doe.mp4', JSON.stringify({ probe: 'convex', zone: 'JaneDoe' }));
      await analyze(REAL_CLIPS.mp4, 'DOE^JANE Jane Doe.mp4');
      // 2 an invalid sidecar that carries the name in an unknown field and in a bad value.
      const other = generateClip(work, 'other.avi', 12);
      putSidecar('DOE^JANE/Jane Doe 2.avi', JSON.stringify({ patientName: 'Jane Doe', zone: 'DOE^JANE' }));
      await analyze(other, 'DOE^JANE/Jane Doe 2.avi');
      // 3 bytes that are no clip.
      await analyze(writeFile(work, 'notes.txt', 'Patient: DOE^JANE, Jane Doe\n'), 'Jane Doe notes.mp4');
      // 4 a truncated MP4: accepted by Validate, failed by the extractor (its error document is read back).
      const truncated = writeFile(work, 'truncated.mp4', readFileSync(REAL_CLIPS.mov).subarray(0, 40_000));
      await analyze(truncated, 'DOE^JANE truncated.mov');
      // 5 an execution stopped during Extract: ExecutionEnded records it.
      await analyze(generateClip(work, 'aborted.avi', 20), 'DOE^JANE aborted.avi', STATE.extract);
    } finally {
      await workflow?.close();
      for (const spy of spies) spy.mockRestore();
      process.env = savedEnv;
    }

    // Assess: the runs went where they should (so the logs cover every path)...
    expect(results).toEqual([
      { name: 'DOE^JANE Jane Doe.mp4', status: 'completed', code: undefined },
      { name: 'DOE^JANE/Jane Doe 2.avi', status: 'failed', code: 'INVALID_SIDECAR' },
      { name: 'Jane Doe notes.mp4', status: 'failed', code: 'UNSUPPORTED_FORMAT' },
      { name: 'DOE^JANE truncated.mov', status: 'failed', code: expect.stringMatching(/^[A-Z_]+$/) },
      { name: 'DOE^JANE aborted.avi', status: 'failed', code: 'EXECUTION_ABORTED' },
    ]);
    const logs = lines.join('\n');
    // ...every handler logged (the test would pass vacuously otherwise)...
    for (const service of [
      'sonomark-validate-upload',
      'sonomark-expert',
      'sonomark-finalize',
      'sonomark-record-failure',
      'sonomark-execution-ended',
    ]) {
      expect(logs).toContain(`"service":"${service}"`);
    }
    expect(logs).toContain('features written');
    // ...and the name is nowhere.
    const leaks = lines.filter((l) => NAME.test(l));
    expect(leaks).toEqual([]);
  });

  it('the CLI: stdout and stderr carry the name only as the path the user passed', () => {
    // Prepare
    const dir = tempDir('sonomark-names-cli-');
    const clip = path.join(dir, 'DOE^JANE Jane Doe.mp4');
    copyFileSync(REAL_CLIPS.mp4, clip);
    const junk = writeFile(dir, 'Jane Doe notes.mp4', 'Patient: DOE^JANE\n');
    // Act
    const r = spawnSync(
      process.execPath,
      [path.join(PACKAGE_ROOT, 'bin', 'sonomark.js'), 'analyze', '--json', '--data-dir', tempDir(), clip, junk],
      { cwd: PACKAGE_ROOT, encoding: 'utf8' },
    );
    // Assess
    expect(r.status).toBe(1); // one input failed
    const results = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; status: string });
    expect(results.map((x) => [x.file, x.status])).toEqual([
      [clip, 'completed'],
      [junk, 'failed'],
    ]);
    const without = (text: string) => text.split(clip).join('<input>').split(junk).join('<input>');
    expect(
      without(r.stdout)
        .split('\n')
        .filter((l) => NAME.test(l)),
    ).toEqual([]);
    expect(
      without(r.stderr)
        .split('\n')
        .filter((l) => NAME.test(l)),
    ).toEqual([]);
  });
});
