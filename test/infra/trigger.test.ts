import { Match, type Template } from 'aws-cdk-lib/assertions';
import { ENV } from '../../core/contract';
import { STACK_IDS } from '../../lib/app';
import { allStatements, synth, type Synthesized } from './helpers';

describe('TriggerStack', () => {
  let built: Synthesized;
  let template: Template;
  let functionId: string;
  let queueId: string;
  let uploadQueueId: string;
  let ruleId: string;

  beforeAll(() => {
    // Prepare / Act
    built = synth({ nag: false });
    template = built.triggerTemplate;
    functionId = Object.keys(template.findResources('AWS::Lambda::Function'))[0]!;
    const queues = Object.keys(template.findResources('AWS::SQS::Queue'));
    queueId = queues.find((id) => id.includes('TriggerDeadLetterQueue'))!;
    uploadQueueId = queues.find((id) => id.includes('UploadQueue'))!;
    ruleId = Object.keys(template.findResources('AWS::Events::Rule'))[0]!;
  });

  test('is its own stack, deployed after the pipeline it starts', () => {
    // Assess
    expect(built.trigger.stackName).toBe(STACK_IDS.trigger);
    expect(built.trigger.dependencies).toContain(built.pipeline);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs('AWS::Events::Rule', 1);
    template.resourceCountIs('AWS::SQS::Queue', 2);
  });

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

  test('rule targets the upload queue (not the starter, not the state machine) with the DLQ and a retry policy', () => {
    // Assess
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [
        {
          Id: Match.anyValue(),
          Arn: { 'Fn::GetAtt': [uploadQueueId, 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } },
          RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
        },
      ],
    });
    template.resourceCountIs('AWS::Lambda::Permission', 0);
  });

  test('the upload queue: KMS, TLS only, 14 days, visibility above the starter timeout, DLQ after maxReceiveCount', () => {
    // Prepare
    const queue = template.findResources('AWS::SQS::Queue')[uploadQueueId] as any;
    const fn = template.findResources('AWS::Lambda::Function')[functionId] as any;
    // Assess
    expect(queue.Properties).toMatchObject({
      KmsMasterKeyId: expect.anything(),
      MessageRetentionPeriod: 1209600,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [queueId, 'Arn'] }, maxReceiveCount: 50 },
    });
    expect(queue.Properties.VisibilityTimeout).toBeGreaterThan(fn.Properties.Timeout);
    expect(queue.DeletionPolicy).toBe('Retain');
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy')) as any[];
    const uploadPolicy = policies.find((p) => JSON.stringify(p.Properties.Queues).includes(uploadQueueId));
    expect(uploadPolicy.Properties.PolicyDocument.Statement).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        expect.objectContaining({
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [ruleId, 'Arn'] } } },
        }),
      ]),
    );
  });

  test('the starter drains the queue: partial batch failures, bounded concurrency, the admission cap in its env', () => {
    // Prepare
    const fn = template.findResources('AWS::Lambda::Function')[functionId] as any;
    // Assess
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [uploadQueueId, 'Arn'] },
      FunctionName: { Ref: functionId },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
    expect(fn.Properties.ReservedConcurrentExecutions).toBe(2);
    expect(fn.Properties.Environment.Variables).toMatchObject({
      [ENV.maxRunningScans]: '64',
      [ENV.admissionWaitSeconds]: String(fn.Properties.Timeout - 30),
    });
    // No asynchronous invocation any more: the queue's redrive policy is the only retry.
    template.resourceCountIs('AWS::Lambda::EventInvokeConfig', 0);
    expect(fn.Properties.DeadLetterConfig).toBeUndefined();
  });

  test('admission settings come from the config', () => {
    // Prepare / Act
    const t = synth({
      context: {
        sonomark: { admission: { maxRunningScans: 500, starterConcurrency: 4, batchSize: 5, maxReceiveCount: 9 } },
      },
      nag: false,
    }).triggerTemplate;
    // Assess
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 5,
      ScalingConfig: { MaximumConcurrency: 4 },
    });
    t.hasResourceProperties('AWS::Lambda::Function', {
      ReservedConcurrentExecutions: 4,
      Environment: { Variables: Match.objectLike({ [ENV.maxRunningScans]: '500' }) },
    });
    t.hasResourceProperties('AWS::SQS::Queue', { RedrivePolicy: Match.objectLike({ maxReceiveCount: 9 }) });
  });

  test('siteIds narrows the rule to those sites', () => {
    // Prepare / Act
    const narrowed = synth({ context: { sonomark: { siteIds: ['siteA', 'siteB'] } }, nag: false }).triggerTemplate;
    // Assess
    narrowed.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        detail: Match.objectLike({ object: { key: [{ prefix: 'uploads/siteA/' }, { prefix: 'uploads/siteB/' }] } }),
      }),
    });
  });

  test('the starter: nodejs22.x arm64, traced, reserved concurrency, the state machine ARN, outside the VPC', () => {
    // Prepare
    const fn = template.findResources('AWS::Lambda::Function')[functionId] as any;
    // Assess
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      Timeout: 300,
      KmsKeyArn: expect.anything(),
    });
    expect(fn.Properties.Environment.Variables[ENV.stateMachineArn]).toEqual({
      'Fn::ImportValue': expect.stringMatching(/^SonomarkPipeline:.*StateMachine/),
    });
    expect(fn.Properties.VpcConfig).toBeUndefined();
  });

  test('least privilege: StartExecution and ListExecutions on the one state machine, nothing else of Step Functions', () => {
    // Prepare
    const statements = allStatements(template).map((s) => s.statement);
    const states = statements.filter((st) => ([st.Action].flat() as string[]).some((a) => a.startsWith('states:')));
    // Assess
    const machine = { 'Fn::ImportValue': expect.stringMatching(/^SonomarkPipeline:.*StateMachine/) };
    expect(states).toEqual([
      { Action: 'states:StartExecution', Effect: 'Allow', Resource: machine },
      { Action: 'states:ListExecutions', Effect: 'Allow', Resource: machine },
    ]);
    for (const st of statements) {
      expect(([st.Action].flat() as string[]).some((a) => a.includes('*'))).toBe(false);
      if ([st.Resource].flat().includes('*')) {
        expect([st.Action].flat().sort()).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
      }
    }
    expect(JSON.stringify(statements)).not.toMatch(/ec2:|s3:|dynamodb:/);
  });

  test('the DLQ: KMS, TLS only, 14 days, retained; EventBridge may send to it from this rule only', () => {
    // Assess
    template.hasResource('AWS::SQS::Queue', {
      Properties: { KmsMasterKeyId: Match.anyValue(), MessageRetentionPeriod: 1209600 },
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [ruleId, 'Arn'] } } },
          }),
        ]),
      },
    });
  });

  test('DLQ depth alarms to the pipeline alarm topic', () => {
    // Assess
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [{ 'Fn::ImportValue': Match.stringLikeRegexp('^SonomarkPipeline:.*AlarmTopic') }],
    });
  });

  test('the starter log group is KMS-encrypted', () => {
    // Assess
    template.allResourcesProperties('AWS::Logs::LogGroup', { KmsKeyId: Match.anyValue() });
  });
});
