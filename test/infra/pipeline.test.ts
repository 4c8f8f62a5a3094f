import { Match, type Template } from 'aws-cdk-lib/assertions';
import { loadManifest } from '../../lib/manifest';
import { FUNCTION_IDS } from '../../lib/stacks/pipeline-stack';
import { EXTRACT_ENV, STATE } from '../../lib/workflow-contract';
import { allStatements, definitionOf, synth, type Synthesized } from './helpers';

describe('PipelineStack', () => {
  let built: Synthesized;
  let template: Template;
  let definition: Record<string, any>;

  beforeAll(() => {
    // Prepare / Act
    built = synth();
    template = built.pipelineTemplate;
    definition = definitionOf(template);
  });

  describe('trigger', () => {
    test('EventBridge rule matches S3 Object Created under uploads/ of the uploads bucket', () => {
      // Assess
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.s3'],
          'detail-type': ['Object Created'],
          detail: {
            bucket: { name: [Match.anyValue()] },
            object: { key: [{ prefix: 'uploads/' }] },
          },
        },
      });
    });

    test('rule targets the state machine with a KMS-encrypted DLQ and a retry policy', () => {
      // Assess
      template.hasResourceProperties('AWS::Events::Rule', {
        Targets: [
          Match.objectLike({
            Arn: { Ref: Match.stringLikeRegexp('StateMachine') },
            DeadLetterConfig: { Arn: Match.anyValue() },
            RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
          }),
        ],
      });
      template.hasResourceProperties('AWS::SQS::Queue', { KmsMasterKeyId: Match.anyValue() });
    });

    test('siteIds narrows the rule to those sites', () => {
      // Prepare / Act
      const narrowed = synth({ context: { sonomark: { siteIds: ['siteA', 'siteB'] } }, nag: false }).pipelineTemplate;
      // Assess
      narrowed.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: Match.objectLike({
          detail: Match.objectLike({ object: { key: [{ prefix: 'uploads/siteA/' }, { prefix: 'uploads/siteB/' }] } }),
        }),
      });
    });
  });

  describe('state machine', () => {
    const outsideMapTasks = [STATE.validate, STATE.extract, STATE.finalize];

    test('is a Standard workflow with tracing and ALL-level KMS-encrypted logging', () => {
      // Assess
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
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

    test('Start wraps the event; Validate lifts ValidateOutput into $.validation', () => {
      // Prepare
      const s = definition.States;
      // Assess
      expect(s[STATE.start].Parameters).toEqual({ 'event.$': '$' });
      expect(s[STATE.validate].Resource).toMatch(/:states:::lambda:invoke$/);
      expect(s[STATE.validate].Parameters.Payload).toEqual({ 'event.$': '$.event' });
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
      });
      expect(extract.Parameters.Timeout.AttemptDurationSeconds).toBeGreaterThan(0);
      expect(extract.ResultSelector).toEqual({
        'jobId.$': '$.JobId',
        'startedAt.$': '$.StartedAt',
        'stoppedAt.$': '$.StoppedAt',
      });
      expect(extract.ResultPath).toBe('$.extract');
    });

    test('LoadExperts lists every manifest expert with its function ARN', () => {
      // Prepare
      const { manifest } = loadManifest();
      const result = definition.States[STATE.loadExperts].Result as any[];
      // Assess
      expect(result.map((e) => e.name)).toEqual(manifest.experts.map((e) => e.name));
      for (const e of result) {
        expect(Object.keys(e).sort()).toEqual(['file', 'functionArn', 'name', 'sha256', 'version']);
        expect(e.functionArn).toMatch(/^<.*Expert.*Arn.*>$/);
      }
    });

    test('Score maps ScoreExpert over $.experts with a dynamic FunctionName, returning the Payload', () => {
      // Prepare
      const score = definition.States[STATE.score];
      const task = score.ItemProcessor.States[STATE.scoreExpert];
      // Assess
      expect(score.ItemsPath).toBe('$.experts');
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
      for (const name of [...outsideMapTasks, STATE.score]) {
        expect(definition.States[name].Catch).toEqual([
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE.recordFailure },
        ]);
      }
      const tasks = Object.entries(definition.States).filter(([, s]: [string, any]) => s.Type === 'Task');
      expect(tasks.map(([n]) => n).sort()).toEqual([...outsideMapTasks, STATE.recordFailure].sort());
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
      expect(extractRetry[0]).toMatchObject({
        JitterStrategy: 'FULL',
        ErrorEquals: expect.arrayContaining(['Batch.AWSBatchException']),
      });
      expect(scoreRetry[0]).toMatchObject({
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
        { Action: 'EXIT', OnReason: '*' },
      ]);
    });

    test('queue puts the spot GPU environment first; both scale from zero', () => {
      // Prepare
      const queue = Object.values(template.findResources('AWS::Batch::JobQueue'))[0] as any;
      const order = (queue.Properties.ComputeEnvironmentOrder as any[]).sort((a, b) => a.Order - b.Order);
      const envs = template.findResources('AWS::Batch::ComputeEnvironment');
      const ref = (o: any): string => o.ComputeEnvironment.Ref ?? o.ComputeEnvironment['Fn::GetAtt'][0];
      const first = envs[ref(order[0])] as any;
      const second = envs[ref(order[1])] as any;
      // Assess
      expect(order).toHaveLength(2);
      expect(first.Properties.ComputeResources).toMatchObject({
        Type: 'SPOT',
        AllocationStrategy: 'SPOT_PRICE_CAPACITY_OPTIMIZED',
        MinvCpus: 0,
        InstanceTypes: ['g5.xlarge', 'g6.xlarge'],
      });
      expect(second.Properties.ComputeResources).toMatchObject({ Type: 'EC2', MinvCpus: 0 });
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
  });

  describe('Lambda', () => {
    test('every function is nodejs22.x on arm64 with active tracing, in the VPC', () => {
      // Prepare
      const fns = Object.values(template.findResources('AWS::Lambda::Function')) as any[];
      // Assess
      expect(fns.length).toBe(3 + loadManifest().manifest.experts.length);
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
        const id = FUNCTION_IDS.expert(e.name);
        const fn = built.pipeline.node.findChild(id).node.findChild('Handler').node.findChild('Function');
        expect(fn.node.path).toBe(`SonomarkPipeline/${id}/Handler/Function`);
        template.hasResourceProperties('AWS::Lambda::Function', {
          MemorySize: e.lambda.memoryMb,
          Timeout: e.lambda.timeoutSeconds,
          ReservedConcurrentExecutions: e.lambda.reservedConcurrency,
          Environment: { Variables: Match.objectLike({ SONOMARK_EXPERT: e.name, MODELS_DIR: '/var/task/models' }) },
        });
      }
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
    test('queue, topic and log groups use the KMS key', () => {
      // Assess
      template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
      template.allResourcesProperties('AWS::SQS::Queue', { KmsMasterKeyId: Match.anyValue() });
      template.allResourcesProperties('AWS::Logs::LogGroup', { KmsKeyId: Match.anyValue() });
    });

    test('alarms on failed executions and on DLQ depth notify the topic', () => {
      // Assess
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ExecutionsFailed',
        Namespace: 'AWS/States',
        AlarmActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        AlarmActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
      });
    });
  });
});
