import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { interfaceEndpointsFor, INTERFACE_ENDPOINTS } from '../../lib/config';
import { EXTRACTOR_IMAGE_TARGETS } from '../../lib/constructs/gpu-job';
import { loadManifest } from '../../core/manifest';
import { COMPLETED_SCAN_STATES, PER_EXPERT_STATES, ScanRates } from '../../core/pricing';
import { scanRates } from '../../lib/rates';
import { ENV, EXTRACT_ENV, EXTRACTOR_EXIT_TRANSIENT, FUNCTIONS, STATE } from '../../core/contract';
import { DEFAULT_INPUT_LIMITS, DEFAULT_MAX_UPLOAD_BYTES, parseInputLimits } from '../../core/limits';
import { FEATURES_PREFIX, UPLOADS_PREFIX } from '../../core/keys';
import { allStatements, definitionOf, synth, type Synthesized } from './helpers';

/** The extractor's job queues by logical id: the spot queue (where Extract submits) and the on-demand queue. */
function jobQueueIds(template: Template): { spot: string; onDemand: string } {
  const ids = Object.keys(template.findResources('AWS::Batch::JobQueue'));
  expect(ids).toHaveLength(2);
  return { spot: ids.find((id) => !id.includes('OnDemand'))!, onDemand: ids.find((id) => id.includes('OnDemand'))! };
}

/** The CloudFormation resource of each compute environment: the spot queue's, then the on-demand queue's. */
function queueEnvironments(template: Template): any[] {
  const queues = template.findResources('AWS::Batch::JobQueue');
  const { spot, onDemand } = jobQueueIds(template);
  const envs = template.findResources('AWS::Batch::ComputeEnvironment');
  const ref = (o: any): string => o.ComputeEnvironment.Ref ?? o.ComputeEnvironment['Fn::GetAtt'][0];
  return [spot, onDemand].flatMap((id) => {
    const order = [...((queues[id] as any).Properties.ComputeEnvironmentOrder as any[])];
    // One environment per queue: a spot job never lands on demand without the workflow's say.
    expect(order).toHaveLength(1);
    return order.map((o) => envs[ref(o)]);
  });
}

/** The service suffix (e.g. `ecr.api`) of every interface endpoint, with the subnets it is placed in. */
function interfaceEndpoints(template: Template): { service: string; subnets: number }[] {
  return (Object.values(template.findResources('AWS::EC2::VPCEndpoint')) as any[])
    .filter((e) => e.Properties.VpcEndpointType === 'Interface')
    .map((e) => {
      const name = JSON.stringify(e.Properties.ServiceName);
      const service = Object.keys(INTERFACE_ENDPOINTS).find((s) => name.includes(`.${s}"`)) ?? name;
      return { service, subnets: (e.Properties.SubnetIds as unknown[]).length };
    });
}

/**
 * The states a completed scan passes through, walked in the ASL: from StartAt along
 * Next, the `analyze` branch at a Choice, up to a Succeed; and once per item inside Score.
 */
function completedScanPath(definition: Record<string, any>): { once: string[]; perExpert: string[] } {
  const walk = (states: Record<string, any>, start: string): string[] => {
    const path: string[] = [];
    for (let name: string | undefined = start; name !== undefined;) {
      if (path.includes(name)) throw new Error(`loop at ${name}`);
      path.push(name);
      const state: Record<string, any> = states[name];
      name =
        state.Type === 'Choice'
          ? state.Choices.find((c: any) => c.StringEquals === 'analyze').Next
          : state.End || state.Type === 'Succeed'
            ? undefined
            : state.Next;
    }
    return path;
  };
  const score = definition.States[STATE.score].ItemProcessor;
  return { once: walk(definition.States, definition.StartAt), perExpert: walk(score.States, score.StartAt) };
}

/** The SCAN_RATES environment variable of the Finalize function, parsed. */
function finalizeRates(built: Synthesized): ScanRates {
  const fn = built.pipeline.node.findChild(FUNCTIONS.finalize.id).node.findChild('Function');
  const logicalId = built.pipeline.getLogicalId(fn.node.defaultChild as any);
  const vars = built.pipelineTemplate.toJSON().Resources[logicalId].Properties.Environment.Variables;
  return ScanRates.parse(JSON.parse(vars.SCAN_RATES));
}

/** The Docker build target and platform of the extractor image asset. */
function extractorImageAsset(built: Synthesized): { target?: string; platform?: string } {
  const assets = JSON.parse(readFileSync(join(built.outdir, `${built.pipeline.artifactId}.assets.json`), 'utf8'));
  const images = Object.values(assets.dockerImages ?? {}) as any[];
  if (images.length !== 1) throw new Error(`expected one image asset, found ${images.length}`);
  return { target: images[0].source.dockerBuildTarget, platform: images[0].source.platform };
}

describe('PipelineStack', () => {
  let built: Synthesized;
  let template: Template;
  let definition: Record<string, any>;

  beforeAll(() => {
    // Prepare / Act (cdk-nag on this same default configuration: nag.test.ts)
    built = synth({ nag: false });
    template = built.pipelineTemplate;
    definition = definitionOf(template);
  });

  test('Validate gets the input limits checked before any GPU job (INPUT_LIMITS, the documented defaults)', () => {
    // Prepare
    const fn = built.pipeline.node.findChild(FUNCTIONS.validate.id).node.findChild('Function');
    const logicalId = built.pipeline.getLogicalId(fn.node.defaultChild as any);
    // Act
    const vars = template.toJSON().Resources[logicalId].Properties.Environment.Variables;
    // Assess
    expect(parseInputLimits(vars[ENV.inputLimits], ENV.inputLimits)).toEqual(DEFAULT_INPUT_LIMITS);
    expect(vars[ENV.maxUploadBytes]).toBe(String(DEFAULT_MAX_UPLOAD_BYTES));
  });

  describe('state machine', () => {
    const outsideMapTasks = [STATE.validate, STATE.extract, STATE.loadExperts, STATE.finalize];

    test('is a Standard workflow with tracing and ALL-level KMS-encrypted logging, without execution data', () => {
      // Assess: execution data (state input/output) holds object keys and sidecar metadata,
      // and a key can name a patient; the log keeps the events, never the data.
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: false }),
      });
      const logGroups = Object.values(template.findResources('AWS::Logs::LogGroup')) as any[];
      for (const lg of logGroups) expect(lg.Properties.KmsKeyId).toBeDefined();
    });

    test('has every contract state', () => {
      // Prepare
      const names = new Set([
        ...Object.keys(definition.States),
        ...Object.keys(definition.States[STATE.score].ItemProcessor.States),
      ]);
      // Assess
      expect(definition.StartAt).toBe(STATE.start);
      for (const name of Object.values(STATE)) expect(names).toContain(name);
    });

    test('a completed scan passes exactly the states the cost estimate counts (core/pricing.ts)', () => {
      // Act
      const path = completedScanPath(definition);
      // Assess
      expect(path.once).toEqual(COMPLETED_SCAN_STATES);
      expect(path.perExpert).toEqual(PER_EXPERT_STATES);
    });

    test('Start wraps the event; Validate lifts ValidateOutput into $.validation', () => {
      // Prepare
      const s = definition.States;
      // Assess
      expect(s[STATE.start].Parameters).toEqual({ 'event.$': '$' });
      expect(s[STATE.validate].Resource).toMatch(/:states:::lambda:invoke$/);
      expect(s[STATE.validate].Parameters.Payload).toEqual({ 'event.$': '$.event', 'execution.$': '$$.Execution.Id' });
      expect(s[STATE.validate].Next).toBe(STATE.validated);
      expect(s[STATE.validated].Parameters).toEqual({ 'event.$': '$.event', 'validation.$': '$.validation.Payload' });
      expect(s[STATE.validated].Next).toBe(STATE.route);
    });

    test('Route branches on $.validation.action', () => {
      // Prepare
      const choices = definition.States[STATE.route].Choices as any[];
      const next = Object.fromEntries(choices.map((c) => [c.StringEquals, c.Next]));
      // Assess
      expect(choices.every((c) => c.Variable === '$.validation.action')).toBe(true);
      expect(next).toEqual({
        analyze: STATE.claimed,
        skip: STATE.skipped,
        ignore: STATE.ignored,
        reject: STATE.recordFailure,
      });
      expect(definition.States[STATE.skipped].Type).toBe('Succeed');
      expect(definition.States[STATE.ignored].Type).toBe('Succeed');
    });

    test('Extract submits the Batch job synchronously with the scan in its environment', () => {
      // Prepare
      const extract = definition.States[STATE.extract];
      const env = Object.fromEntries(
        (extract.Parameters.ContainerOverrides.Environment as any[]).map((e) => [e.Name, e['Value.$']]),
      );
      // Assess
      expect(extract.Resource).toMatch(/:states:::batch:submitJob\.sync$/);
      expect(extract.Parameters['JobName.$']).toBe("States.Format('scan-{}', $.scan.scanId)");
      expect(env).toEqual({
        [EXTRACT_ENV.scanId]: '$.scan.scanId',
        [EXTRACT_ENV.inputBucket]: '$.scan.bucket',
        [EXTRACT_ENV.inputKey]: '$.scan.key',
        [EXTRACT_ENV.inputVersionId]: '$.scan.versionId',
        [EXTRACT_ENV.featuresBucket]: '$.scan.featuresBucket',
        [EXTRACT_ENV.featuresKey]: '$.scan.featuresKey',
        // Which of the manifest's extractors runs (Validate decided it).
        [EXTRACT_ENV.modality]: '$.scan.modality',
      });
      expect(extract.Parameters.Timeout.AttemptDurationSeconds).toBeGreaterThan(0);
      expect(extract.ResultSelector).toEqual({
        'jobId.$': '$.JobId',
        'startedAt.$': '$.StartedAt',
        'stoppedAt.$': '$.StoppedAt',
      });
      expect(extract.ResultPath).toBe('$.extract');
    });

    test('LoadExperts reads the manifest at run time: a Lambda task, no expert version in the definition', () => {
      // Prepare
      const { manifest } = loadManifest();
      const load = definition.States[STATE.loadExperts];
      // Assess: a lambda:invoke of the LoadExperts function, its list at $.experts.list
      expect(load.Type).toBe('Task');
      expect(load.Resource).toMatch(/:states:::lambda:invoke$/);
      expect(JSON.stringify(load.Parameters.FunctionName)).toMatch(/LoadExperts/);
      expect(load.Parameters.Payload).toEqual({ 'scan.$': '$.scan' });
      expect(load.ResultSelector).toEqual({ 'list.$': '$.Payload.list' });
      expect(load.ResultPath).toBe('$.experts');
      expect(load.Catch[0].Next).toBe(STATE.recordFailure);
      // No expert's version or model hash is baked in: publishing one needs no redeploy
      const text = JSON.stringify(definition);
      for (const e of manifest.experts) expect(text).not.toContain(e.sha256);
      // The function pairs experts with their functions (EXPERT_FUNCTIONS) and reads only the bucket's manifest
      const fn = Object.values(template.findResources('AWS::Lambda::Function')).find(
        (f: any) => f.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME === FUNCTIONS.loadExperts.serviceName,
      ) as any;
      const names = JSON.stringify(fn.Properties.Environment.Variables[ENV.expertFunctions]);
      for (const e of manifest.experts) expect(names).toContain(e.name);
      expect(fn.Properties.Environment.Variables[ENV.artifactsBucket]).toBeDefined();
    });

    test('Score maps ScoreExpert over $.experts with a dynamic FunctionName, returning the Payload', () => {
      // Prepare
      const score = definition.States[STATE.score];
      const task = score.ItemProcessor.States[STATE.scoreExpert];
      // Assess
      expect(score.ItemsPath).toBe('$.experts.list');
      expect(score.ItemSelector).toEqual({ 'scan.$': '$.scan', 'expert.$': '$$.Map.Item.Value' });
      expect(score.ResultPath).toBe('$.results');
      expect(task.Resource).toMatch(/:states:::lambda:invoke$/);
      expect(task.Parameters['FunctionName.$']).toBe('$.expert.functionArn');
      expect(task.Parameters.Payload).toEqual({
        'scan.$': '$.scan',
        expert: {
          'name.$': '$.expert.name',
          'version.$': '$.expert.version',
          'file.$': '$.expert.file',
          'sha256.$': '$.expert.sha256',
        },
      });
      expect(task.OutputPath).toBe('$.Payload');
    });

    test('every Task outside the Map, and the Map, catches States.ALL into $.error → RecordFailure', () => {
      // Assess
      for (const name of [...outsideMapTasks.filter((n) => n !== STATE.extract), STATE.extractOnDemand, STATE.score]) {
        expect(definition.States[name].Catch).toEqual([
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE.recordFailure },
        ]);
      }
      // Extract's failures pass the ExtractFailed Choice first (spot capacity → on demand).
      expect(definition.States[STATE.extract].Catch).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE.extractFailed },
      ]);
      const tasks = Object.entries(definition.States).filter(([, s]: [string, any]) => s.Type === 'Task');
      expect(tasks.map(([n]) => n).sort()).toEqual(
        [...outsideMapTasks, STATE.extractOnDemand, STATE.recordFailure].sort(),
      );
    });

    test('RecordFailure gets the whole state, retries, and always ends in Failed', () => {
      // Prepare
      const rf = definition.States[STATE.recordFailure];
      // Assess
      expect(rf.Parameters['Payload.$']).toBe('$');
      expect(rf.Retry.length).toBeGreaterThan(0);
      expect(rf.Next).toBe(STATE.failed);
      expect(rf.Catch[0]).toMatchObject({ ErrorEquals: ['States.ALL'], Next: STATE.failed });
      expect(definition.States[STATE.failed].Type).toBe('Fail');
    });

    test('Extract and ScoreExpert retry transient errors with full jitter', () => {
      // Prepare
      const extractRetry = definition.States[STATE.extract].Retry as any[];
      const scoreRetry = definition.States[STATE.score].ItemProcessor.States[STATE.scoreExpert].Retry as any[];
      // Assess
      // retry.test.ts checks every state's blocks whole; here: the service retriers exist.
      expect(extractRetry).toContainEqual(
        expect.objectContaining({
          JitterStrategy: 'FULL',
          ErrorEquals: expect.arrayContaining(['Batch.AWSBatchException']),
        }),
      );
      expect(scoreRetry[1]).toMatchObject({
        JitterStrategy: 'FULL',
        ErrorEquals: expect.arrayContaining(['Lambda.ServiceException', 'Lambda.TooManyRequestsException']),
      });
    });

    test('Finalize → Done outputs the Finalize result', () => {
      // Assess
      expect(definition.States[STATE.finalize].Parameters.Payload).toEqual({
        'scan.$': '$.scan',
        'extract.$': '$.extract',
        'results.$': '$.results',
      });
      expect(definition.States[STATE.finalize].Next).toBe(STATE.done);
      expect(definition.States[STATE.done]).toEqual({ Type: 'Succeed', OutputPath: '$.summary.Payload' });
    });
  });

  describe('Batch', () => {
    test('the job is told where the DICOM pseudonym salt object lives, never the salt', () => {
      // Assess: the bucket's name (imported from the storage stack), and no salt in any template
      const jd = Object.values(template.findResources('AWS::Batch::JobDefinition'))[0] as any;
      const env = Object.fromEntries(
        (jd.Properties.ContainerProperties.Environment as any[]).map((e) => [e.Name, e.Value]),
      );
      expect(JSON.stringify(env[ENV.artifactsBucket])).toMatch(/Artifacts/);
      for (const t of [built.storageTemplate, built.pipelineTemplate, built.triggerTemplate]) {
        expect(JSON.stringify(t.toJSON())).not.toContain(ENV.dicomPseudonymSalt);
      }
    });

    test('GPU job definition: one GPU, timeout, retry only spot reclaim and host errors', () => {
      // Assess
      template.hasResourceProperties('AWS::Batch::JobDefinition', {
        ContainerProperties: Match.objectLike({
          ResourceRequirements: Match.arrayWith([{ Type: 'GPU', Value: '1' }]),
        }),
        Timeout: { AttemptDurationSeconds: Match.anyValue() },
        RetryStrategy: Match.objectLike({ Attempts: 3 }),
      });
      const jd = Object.values(template.findResources('AWS::Batch::JobDefinition'))[0] as any;
      const rules = jd.Properties.RetryStrategy.EvaluateOnExit as any[];
      expect(rules).toEqual([
        { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
        { Action: 'RETRY', OnReason: 'CannotPullContainerError:*' },
        { Action: 'RETRY', OnExitCode: String(EXTRACTOR_EXIT_TRANSIENT) },
        { Action: 'EXIT', OnReason: '*' },
      ]);
    });

    test('queue puts the spot GPU environment first; both scale from zero', () => {
      // Prepare
      const [first, second, ...rest] = queueEnvironments(template);
      // Assess
      expect(rest).toHaveLength(0);
      expect(first.Properties.ComputeResources).toMatchObject({
        Type: 'SPOT',
        AllocationStrategy: 'SPOT_PRICE_CAPACITY_OPTIMIZED',
        MinvCpus: 0,
        InstanceTypes: ['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge'],
      });
      expect(second.Properties.ComputeResources).toMatchObject({ Type: 'EC2', MinvCpus: 0 });
    });

    test('queue cancels a job blocked RUNNABLE for 30 minutes, for each capacity/misconfiguration reason', () => {
      // Assess
      template.hasResourceProperties('AWS::Batch::JobQueue', {
        JobStateTimeLimitActions: [
          {
            Action: 'CANCEL',
            State: 'RUNNABLE',
            MaxTimeSeconds: 1800,
            Reason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
          },
          {
            Action: 'CANCEL',
            State: 'RUNNABLE',
            MaxTimeSeconds: 1800,
            Reason: 'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE',
          },
          {
            Action: 'CANCEL',
            State: 'RUNNABLE',
            MaxTimeSeconds: 1800,
            Reason: 'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
          },
        ],
      });
    });

    test('runnableTimeLimitMinutes sets the cancel time; Batch limits it to 10 minutes–24 hours', () => {
      // Prepare / Act
      const custom = synth({ context: { sonomark: { runnableTimeLimitMinutes: 45 } }, nag: false }).pipelineTemplate;
      // Assess
      const queues = custom.findResources('AWS::Batch::JobQueue');
      const { spot, onDemand } = jobQueueIds(custom);
      const times = (id: string) =>
        ((queues[id] as any).Properties.JobStateTimeLimitActions as any[]).map((a) => [a.Reason, a.MaxTimeSeconds]);
      // The spot queue gives up on spot capacity after spotCapacityWaitMinutes (10), then the workflow goes on demand.
      expect(times(spot)).toEqual([
        ['CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', 600],
        ['MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE', 2700],
        ['MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT', 2700],
      ]);
      expect(times(onDemand).map(([, t]) => t)).toEqual([2700, 2700, 2700]);
      expect(() => synth({ context: { sonomark: { runnableTimeLimitMinutes: 5 } }, nag: false })).toThrow(
        /runnableTimeLimitMinutes/,
      );
    });

    test('the GPU image is the Dockerfile runtime target, for linux/amd64', () => {
      // Assess
      expect(extractorImageAsset(built)).toEqual({ target: EXTRACTOR_IMAGE_TARGETS.gpu, platform: 'linux/amd64' });
    });

    test('VPC has no NAT gateway and no internet gateway; S3 and DynamoDB gateway endpoints', () => {
      // Assess
      template.resourceCountIs('AWS::EC2::NatGateway', 0);
      template.resourceCountIs('AWS::EC2::InternetGateway', 0);
      template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Gateway',
        ServiceName: Match.objectLike({
          'Fn::Join': Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp('\\.s3$')])]),
        }),
      });
      template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Gateway',
        ServiceName: Match.objectLike({
          'Fn::Join': Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp('\\.dynamodb$')])]),
        }),
      });
    });

    test('GPU mode: the six interface endpoints the EC2 hosts need, in both AZs', () => {
      // Assess
      expect(interfaceEndpoints(template)).toEqual(
        interfaceEndpointsFor('gpu').map((service) => ({ service, subnets: 2 })),
      );
      expect(interfaceEndpointsFor('gpu')).toEqual(['ecr.api', 'ecr.dkr', 'logs', 'ecs', 'ecs-agent', 'ecs-telemetry']);
    });

    test('network.endpointAzs 1 puts each endpoint in one subnet; compute keeps both AZs', () => {
      // Prepare / Act
      const oneAz = synth({ context: { sonomark: { network: { endpointAzs: 1 } } }, nag: false }).pipelineTemplate;
      // Assess
      expect(interfaceEndpoints(oneAz).map((e) => e.subnets)).toEqual([1, 1, 1, 1, 1, 1]);
      const ce = Object.values(oneAz.findResources('AWS::Batch::ComputeEnvironment'))[0] as any;
      expect(ce.Properties.ComputeResources.Subnets).toHaveLength(2);
      expect(() => synth({ context: { sonomark: { network: { maxAzs: 1, endpointAzs: 2 } } }, nag: false })).toThrow(
        /endpointAzs cannot exceed maxAzs/,
      );
    });
  });

  describe('CPU mode (computeMode=cpu)', () => {
    let cpu: Synthesized;
    let cpuTemplate: Template;

    beforeAll(() => {
      // Prepare / Act: the top-level context key, as `cdk synth -c computeMode=cpu` passes it.
      cpu = synth({ context: { computeMode: 'cpu' }, nag: false });
      cpuTemplate = cpu.pipelineTemplate;
    });

    test('-c computeMode=cpu wins over the sonomark object (cdk.json sets gpu)', () => {
      // Prepare / Act
      const both = synth({ context: { sonomark: { computeMode: 'gpu' }, computeMode: 'cpu' }, nag: false });
      // Assess
      expect(both.config.computeMode).toBe('cpu');
      expect(cpu.config.computeMode).toBe('cpu');
    });

    test('a Fargate Spot environment first, then Fargate on-demand; no EC2 and no GPU', () => {
      // Prepare
      const envs = queueEnvironments(cpuTemplate);
      // Assess
      expect(envs.map((e) => e.Properties.ComputeResources.Type)).toEqual(['FARGATE_SPOT', 'FARGATE']);
      for (const e of envs) {
        expect(e.Properties.Type).toBe('managed');
        expect(e.Properties.ComputeResources.Subnets).toHaveLength(2);
        expect(e.Properties.ComputeResources.SecurityGroupIds).toHaveLength(1);
      }
      expect(JSON.stringify(cpuTemplate.toJSON())).not.toMatch(/"GPU"|g5\.xlarge|AWS::IAM::InstanceProfile/);
    });

    test('a Fargate job definition: 2 vCPU, 4 GiB, x86_64, no public IP, CPU execution provider', () => {
      // Assess
      cpuTemplate.hasResourceProperties('AWS::Batch::JobDefinition', {
        PlatformCapabilities: ['FARGATE'],
        ContainerProperties: Match.objectLike({
          ResourceRequirements: [
            { Type: 'MEMORY', Value: '4096' },
            { Type: 'VCPU', Value: '2' },
          ],
          NetworkConfiguration: { AssignPublicIp: 'DISABLED' },
          RuntimePlatform: { CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' },
          Environment: [
            { Name: 'ONNX_EXECUTION_PROVIDER', Value: 'cpu' },
            { Name: 'AWS_REGION', Value: { Ref: 'AWS::Region' } },
            { Name: ENV.artifactsBucket, Value: Match.anyValue() },
          ],
          JobRoleArn: Match.anyValue(),
          ExecutionRoleArn: Match.anyValue(),
        }),
        Timeout: { AttemptDurationSeconds: 3600 },
      });
    });

    test('Fargate retries also cover a reclaimed Fargate Spot task, and nothing the clip causes', () => {
      // Prepare
      const jd = Object.values(cpuTemplate.findResources('AWS::Batch::JobDefinition'))[0] as any;
      // Assess
      expect(jd.Properties.RetryStrategy.EvaluateOnExit).toEqual([
        { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
        { Action: 'RETRY', OnStatusReason: 'Your Spot Task was interrupted*' },
        { Action: 'RETRY', OnReason: 'CannotPullContainerError:*' },
        { Action: 'RETRY', OnExitCode: String(EXTRACTOR_EXIT_TRANSIENT) },
        { Action: 'EXIT', OnReason: '*' },
      ]);
    });

    test('the queue cancels blocked RUNNABLE jobs as in GPU mode', () => {
      // Assess
      const queue = Object.values(cpuTemplate.findResources('AWS::Batch::JobQueue'))[0] as any;
      expect(queue.Properties.JobStateTimeLimitActions).toHaveLength(3);
    });

    test("Extract submits to the Fargate queue and job definition (the workflow's only queue)", () => {
      // Prepare
      const extract = definitionOf(cpuTemplate).States[STATE.extract];
      const queueId = jobQueueIds(cpuTemplate).spot;
      const jdId = Object.keys(cpuTemplate.findResources('AWS::Batch::JobDefinition'))[0]!;
      // Assess
      expect(JSON.stringify(extract.Parameters.JobQueue)).toContain(queueId);
      expect(JSON.stringify(extract.Parameters.JobDefinition)).toContain(jdId);
      cpuTemplate.resourceCountIs('AWS::Batch::JobQueue', 2);
    });

    test('only the three interface endpoints Fargate needs (ECR api, ECR dkr, Logs)', () => {
      // Assess
      expect(interfaceEndpoints(cpuTemplate)).toEqual([
        { service: 'ecr.api', subnets: 2 },
        { service: 'ecr.dkr', subnets: 2 },
        { service: 'logs', subnets: 2 },
      ]);
    });

    test('the CPU image is the Dockerfile runtime-cpu target', () => {
      // Assess
      expect(extractorImageAsset(cpu)).toEqual({ target: EXTRACTOR_IMAGE_TARGETS.cpu, platform: 'linux/amd64' });
    });

    test('cpuJob sets architecture and size; ARM64 builds an arm64 image', () => {
      // Prepare / Act
      const arm = synth({
        context: { computeMode: 'cpu', sonomark: { cpuJob: { architecture: 'arm64', vcpus: 4, memoryMiB: 8192 } } },
        nag: false,
      });
      // Assess
      arm.pipelineTemplate.hasResourceProperties('AWS::Batch::JobDefinition', {
        ContainerProperties: Match.objectLike({
          ResourceRequirements: [
            { Type: 'MEMORY', Value: '8192' },
            { Type: 'VCPU', Value: '4' },
          ],
          RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
        }),
      });
      expect(extractorImageAsset(arm)).toEqual({ target: EXTRACTOR_IMAGE_TARGETS.cpu, platform: 'linux/arm64' });
    });

    test('a Fargate size Fargate does not offer fails synthesis with the valid range', () => {
      // Assess
      expect(() =>
        synth({ context: { computeMode: 'cpu', sonomark: { cpuJob: { vcpus: 2, memoryMiB: 2048 } } }, nag: false }),
      ).toThrow(/cpuJob.memoryMiB: Fargate with 2 vCPU takes 4096–16384 MiB/);
    });
  });

  describe('Lambda', () => {
    test('every function is nodejs22.x on arm64 with active tracing, in the VPC', () => {
      // Prepare
      const fns = Object.values(template.findResources('AWS::Lambda::Function')) as any[];
      // Assess
      // Validate, LoadExperts, Finalize, RecordFailure, ExecutionEnded and one per expert.
      expect(fns.length).toBe(5 + loadManifest().manifest.experts.length);
      for (const f of fns) {
        expect(f.Properties.Runtime).toBe('nodejs22.x');
        expect(f.Properties.Architectures).toEqual(['arm64']);
        expect(f.Properties.TracingConfig).toEqual({ Mode: 'Active' });
        expect(f.Properties.VpcConfig).toBeDefined();
        expect(f.Properties.Environment.Variables.NODE_OPTIONS).toBe('--enable-source-maps');
        expect(f.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME).toBeDefined();
      }
    });

    test('one expert function per manifest expert, sized from the manifest, at a stable construct path', () => {
      // Prepare
      const { manifest } = loadManifest();
      // Assess
      for (const e of manifest.experts) {
        const id = FUNCTIONS.expert.id(e.name);
        const fn = built.pipeline.node.findChild(id).node.findChild('Handler').node.findChild('Function');
        expect(fn.node.path).toBe(`SonomarkPipeline/${id}/Handler/Function`);
        // The expert's own function, found by its construct path (no environment variable names the expert).
        const props = template.toJSON().Resources[built.pipeline.getLogicalId(fn.node.defaultChild as any)].Properties;
        expect(props).toMatchObject({
          MemorySize: e.lambda.memoryMb,
          Timeout: e.lambda.timeoutSeconds,
          ReservedConcurrentExecutions: e.lambda.reservedConcurrency,
          // No model in the bundle: the manifest and model are read from the artifacts bucket's models/
          Environment: { Variables: { ARTIFACTS_BUCKET: expect.anything() } },
        });
        expect(props.Environment.Variables.MODELS_DIR).toBeUndefined();
      }
    });

    test("expertOverrides sizes one expert's function and leaves the others at the manifest's values", () => {
      // Prepare
      const { manifest } = loadManifest();
      const [first, ...others] = manifest.experts;
      const overrides = { [first!.name]: { memoryMb: 2048, timeoutSeconds: 120, reservedConcurrency: 3 } };
      // Act
      const custom = synth({ context: { sonomark: { expertOverrides: overrides } }, nag: false });
      const sizing = (name: string) => {
        const fn = custom.pipeline.node.findChild(FUNCTIONS.expert.id(name)).node.findChild('Handler').node;
        const cfn = fn.findChild('Function').node.defaultChild as any;
        const props = custom.pipelineTemplate.toJSON().Resources[custom.pipeline.getLogicalId(cfn)].Properties;
        return [props.MemorySize, props.Timeout, props.ReservedConcurrentExecutions];
      };
      // Assess
      expect(sizing(first!.name)).toEqual([2048, 120, 3]);
      for (const e of others) {
        expect(sizing(e.name)).toEqual([e.lambda.memoryMb, e.lambda.timeoutSeconds, e.lambda.reservedConcurrency]);
      }
    });

    test('partial expertOverrides keep the manifest for the fields they leave out', () => {
      // Prepare
      const e = loadManifest().manifest.experts[0]!;
      // Act
      const custom = synth({
        context: { sonomark: { expertOverrides: { [e.name]: { reservedConcurrency: 7 } } } },
        nag: false,
      });
      // Assess
      const fn = custom.pipeline.node.findChild(FUNCTIONS.expert.id(e.name)).node.findChild('Handler').node;
      const cfn = fn.findChild('Function').node.defaultChild as any;
      expect(custom.pipelineTemplate.toJSON().Resources[custom.pipeline.getLogicalId(cfn)].Properties).toMatchObject({
        MemorySize: e.lambda.memoryMb,
        Timeout: e.lambda.timeoutSeconds,
        ReservedConcurrentExecutions: 7,
      });
    });

    test("Finalize gets this deployment's price rates (SCAN_RATES), each expert at its function's memory", () => {
      // Prepare
      const { manifest } = loadManifest();
      const memory = (name: string): number => {
        const fn = built.pipeline.node.findChild(FUNCTIONS.expert.id(name)).node.findChild('Handler').node;
        const cfn = fn.findChild('Function').node.defaultChild as any;
        return template.toJSON().Resources[built.pipeline.getLogicalId(cfn)].Properties.MemorySize;
      };
      // Act
      const rates = finalizeRates(built);
      // Assess
      expect(rates.expertMemoryMb).toEqual(Object.fromEntries(manifest.experts.map((e) => [e.name, memory(e.name)])));
      expect(rates).toEqual(
        scanRates(
          built.config,
          manifest.experts.map((e) => ({ name: e.name, memoryMb: e.lambda.memoryMb })),
        ),
      );
      expect(rates.basis).toContain('us-east-1');
      // Only Finalize prices scans.
      const withRates = (Object.values(template.findResources('AWS::Lambda::Function')) as any[]).filter(
        (f) => f.Properties.Environment.Variables.SCAN_RATES !== undefined,
      );
      expect(withRates).toHaveLength(1);
    });

    test('the price rates follow the compute mode, expertOverrides and the config price table', () => {
      // Prepare
      const e = loadManifest().manifest.experts[0]!;
      // Act
      const custom = synth({
        context: {
          computeMode: 'cpu',
          sonomark: {
            expertOverrides: { [e.name]: { memoryMb: 3008 } },
            prices: { source: 'eu-west-1 list prices', stepFunctionsStandard: { usdPerStateTransition: 0.00003 } },
          },
        },
        nag: false,
      });
      const rates = finalizeRates(custom);
      // Assess
      expect(rates.basis).toMatch(/^eu-west-1 list prices; extractor at Fargate x86_64 2 vCPU 4096 MiB on-demand/);
      expect(rates.extractor.minimumSeconds).toBe(60);
      expect(rates.expertMemoryMb[e.name]).toBe(3008);
      expect(rates.usdPerStateTransition).toBe(0.00003);
    });

    test('an override for an expert the manifest lacks fails synthesis, naming it', () => {
      // Assess
      expect(() =>
        synth({ context: { sonomark: { expertOverrides: { nosuch: { memoryMb: 512 } } } }, nag: false }),
      ).toThrow(/expertOverrides names expert\(s\) not in the manifest: nosuch/);
    });
  });

  describe('least privilege', () => {
    // Actions AWS does not authorize per resource; each must be explained where it is granted.
    const RESOURCE_STAR_ALLOWED = new Set([
      'xray:PutTraceSegments',
      'xray:PutTelemetryRecords',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      'ec2:CreateNetworkInterface',
      'ec2:DescribeNetworkInterfaces',
      'ec2:DeleteNetworkInterface',
      'ec2:AssignPrivateIpAddresses',
      'ec2:UnassignPrivateIpAddresses',
      'ecr:GetAuthorizationToken',
      'logs:CreateLogDelivery',
      'logs:GetLogDelivery',
      'logs:UpdateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:DescribeResourcePolicies',
      'logs:DescribeLogGroups',
      // The .sync Batch integration polls its job; DescribeJobs has no resource-level permissions.
      'batch:DescribeJobs',
    ]);

    test('no IAM statement grants Resource "*" except for actions AWS cannot scope', () => {
      // Prepare
      const offending = [...allStatements(template), ...allStatements(built.storageTemplate)].filter(
        ({ statement }) => {
          const resources = [statement.Resource].flat();
          if (!resources.includes('*')) return false;
          const actions = [statement.Action].flat() as string[];
          return actions.some((a) => !RESOURCE_STAR_ALLOWED.has(a));
        },
      );
      // Assess
      expect(offending).toEqual([]);
    });

    test("RecordFailure may read the extractor's error documents under features/, and nothing else in S3", () => {
      // Prepare
      const role = built.pipeline.recordFailureFunction.role;
      const roleId = built.pipeline.getLogicalId(role.node.defaultChild as any);
      const policies = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([, r]) =>
        JSON.stringify((r as any).Properties.Roles).includes(roleId),
      );
      // Act
      const s3 = policies
        .flatMap(([, r]) => (r as any).Properties.PolicyDocument.Statement as Record<string, any>[])
        .filter((st) => ([st.Action].flat() as string[]).some((a) => a.startsWith('s3:')));
      // Assess
      expect(s3).toHaveLength(1);
      expect([s3[0]?.Action].flat().sort()).toEqual(['s3:GetObject', 's3:GetObjectVersion']);
      expect(JSON.stringify(s3[0]?.Resource)).toContain(`/${FEATURES_PREFIX}*`);
      expect(JSON.stringify(s3[0]?.Resource)).not.toContain(UPLOADS_PREFIX);
    });

    test('no wildcard actions in identity policies', () => {
      // Prepare
      const wild = allStatements(template).filter(({ statement }) =>
        ([statement.Action].flat() as string[]).some((a) => a.includes('*')),
      );
      // Assess
      expect(wild.map((w) => w.statement.Action)).toEqual([]);
    });
  });

  describe('encryption', () => {
    test('topic, log groups and the one queue (ExecutionEnded DLQ) use the KMS key (the trigger queue is in TriggerStack)', () => {
      // Assess
      template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
      template.resourceCountIs('AWS::SQS::Queue', 1);
      template.allResourcesProperties('AWS::SQS::Queue', { KmsMasterKeyId: Match.anyValue() });
      template.allResourcesProperties('AWS::Logs::LogGroup', { KmsKeyId: Match.anyValue() });
    });

    test('alarm on failed executions notifies the topic', () => {
      // Assess
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ExecutionsFailed',
        Namespace: 'AWS/States',
        AlarmActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
      });
    });
  });

  describe('jobs RUNNABLE too long', () => {
    test("a rule matches Batch's Job Queue Blocked events of the extractor queue only", () => {
      // Prepare
      const { spot, onDemand } = jobQueueIds(template);
      // Assess
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.batch'],
          'detail-type': ['Batch Job Queue Blocked'],
          detail: {
            jobQueue: [{ 'Fn::GetAtt': [spot, 'JobQueueArn'] }, { 'Fn::GetAtt': [onDemand, 'JobQueueArn'] }],
          },
        },
      });
    });

    test('the alarm counts that rule in AWS/Events TriggeredRules and notifies the topic', () => {
      // Prepare
      const ruleId = Object.keys(
        template.findResources('AWS::Events::Rule', {
          Properties: { EventPattern: { 'detail-type': ['Batch Job Queue Blocked'] } },
        }),
      )[0]!;
      // Assess
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Events',
        MetricName: 'TriggeredRules',
        Dimensions: [{ Name: 'RuleName', Value: { Ref: ruleId } }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
      });
    });

    test("the rule's message names the job and Batch's reason, never the container environment (object key)", () => {
      // Prepare
      const rule = Object.values(
        template.findResources('AWS::Events::Rule', {
          Properties: { EventPattern: { 'detail-type': ['Batch Job Queue Blocked'] } },
        }),
      )[0] as any;
      const target = rule.Properties.Targets[0];
      // Assess
      expect(target.Arn).toEqual({ Ref: expect.stringMatching(/^AlarmTopic/) });
      expect(target.InputTransformer.InputPathsMap).toEqual({
        'detail-jobName': '$.detail.jobName',
        'detail-statusReason': '$.detail.statusReason',
      });
      expect(JSON.stringify(target)).not.toMatch(/container|environment|INPUT_KEY/i);
    });

    test('only that rule may publish to the topic as events.amazonaws.com', () => {
      // Prepare
      const policy = Object.values(template.findResources('AWS::SNS::TopicPolicy'))[0] as any;
      const fromEvents = (policy.Properties.PolicyDocument.Statement as any[]).filter(
        (st) => st.Principal?.Service === 'events.amazonaws.com',
      );
      // Assess
      expect(fromEvents).toHaveLength(1);
      expect(fromEvents[0].Condition.ArnEquals['aws:SourceArn']['Fn::GetAtt'][0]).toMatch(/^ExtractorQueueBlockedRule/);
    });
  });

  test('the pipeline template holds only functions local mode binds: the workflow tasks and ExecutionEnded', () => {
    // Prepare
    const ids = Object.keys(template.findResources('AWS::Lambda::Function'));
    // Assess
    expect(
      ids.every((id) => /^(ValidateUpload|Finalize|RecordFailure|ExecutionEnded|LoadExperts|Expert[A-Z])/.test(id)),
    ).toBe(true);
    // The queue-blocked rule and the execution-ended rule.
    template.resourceCountIs('AWS::Events::Rule', 2);
  });
});
