import { Match, type Template } from 'aws-cdk-lib/assertions';
import { ENV } from '../../core/contract';
import { STACK_IDS } from '../../lib/app';
import { allStatements, synth, type Synthesized } from './helpers';

describe('TriggerStack', () => {
  let built: Synthesized;
  let template: Template;
  let functionId: string;
  let queueId: string;
  let ruleId: string;

  beforeAll(() => {
    // Prepare / Act
    built = synth({ nag: false });
    template = built.triggerTemplate;
    functionId = Object.keys(template.findResources('AWS::Lambda::Function'))[0]!;
    queueId = Object.keys(template.findResources('AWS::SQS::Queue'))[0]!;
    ruleId = Object.keys(template.findResources('AWS::Events::Rule'))[0]!;
  });

  test('is its own stack, deployed after the pipeline it starts', () => {
    // Assess
    expect(built.trigger.stackName).toBe(STACK_IDS.trigger);
    expect(built.trigger.dependencies).toContain(built.pipeline);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs('AWS::Events::Rule', 1);
    template.resourceCountIs('AWS::SQS::Queue', 1);
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

  test('rule targets the StartExecution function (not the state machine) with the DLQ and a retry policy', () => {
    // Assess
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [
        {
          Id: Match.anyValue(),
          Arn: { 'Fn::GetAtt': [functionId, 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } },
          RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
        },
      ],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [functionId, 'Arn'] },
      SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
    });
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
      ReservedConcurrentExecutions: 20,
      Timeout: 10,
      KmsKeyArn: expect.anything(),
    });
    expect(fn.Properties.Environment.Variables[ENV.stateMachineArn]).toEqual({
      'Fn::ImportValue': expect.stringMatching(/^SonomarkPipeline:.*StateMachine/),
    });
    expect(fn.Properties.VpcConfig).toBeUndefined();
  });

  test('a failure inside the starter is retried by Lambda, then dead-lettered to the same queue', () => {
    // Assess
    template.hasResourceProperties('AWS::Lambda::Function', {
      DeadLetterConfig: { TargetArn: { 'Fn::GetAtt': [queueId, 'Arn'] } },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: functionId },
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21600,
    });
  });

  test('least privilege: states:StartExecution on the one state machine, and nothing else of Step Functions', () => {
    // Prepare
    const statements = allStatements(template).map((s) => s.statement);
    const states = statements.filter((st) => ([st.Action].flat() as string[]).some((a) => a.startsWith('states:')));
    // Assess
    expect(states).toEqual([
      {
        Action: 'states:StartExecution',
        Effect: 'Allow',
        Resource: { 'Fn::ImportValue': expect.stringMatching(/^SonomarkPipeline:.*StateMachine/) },
      },
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
