/**
 * Reliability in the pipeline template: the state machine can cancel the Batch jobs it
 * abandons, its executions that end badly reach ExecutionEnded, and they alarm.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { ENV, EXECUTION_ENDED_STATUSES, FUNCTIONS } from '../../core/contract';
import { allStatements, definitionOf, synth, type Synthesized } from './helpers';

/** Every statement of the policies attached to a role (by logical id). */
function roleStatements(template: Template, roleLogicalId: string): Record<string, any>[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((r: any) => JSON.stringify(r.Properties.Roles).includes(roleLogicalId))
    .flatMap((r: any) => r.Properties.PolicyDocument.Statement as Record<string, any>[]);
}

const actionsOf = (st: Record<string, any>): string[] => [st.Action].flat() as string[];

describe('reliability (PipelineStack)', () => {
  let built: Synthesized;
  let template: Template;

  beforeAll(() => {
    // Prepare / Act
    built = synth({ nag: false });
    template = built.pipelineTemplate;
  });

  describe('the state machine cancels the Batch jobs it abandons (.sync)', () => {
    let statements: Record<string, any>[];
    beforeAll(() => {
      const role = built.pipeline.workflow.stateMachine.role;
      statements = roleStatements(template, built.pipeline.getLogicalId(role.node.defaultChild as any));
    });

    test('batch:TerminateJob on job/* of this account and region only (the job ARN is known only at run time)', () => {
      // Act
      const terminate = statements.filter((st) => actionsOf(st).includes('batch:TerminateJob'));
      // Assess
      expect(terminate).toHaveLength(1);
      expect(actionsOf(terminate[0]!)).toEqual(['batch:TerminateJob']);
      expect(terminate[0]!.Resource).toEqual({
        'Fn::Join': [
          '',
          [
            'arn:',
            { Ref: 'AWS::Partition' },
            ':batch:',
            { Ref: 'AWS::Region' },
            ':',
            { Ref: 'AWS::AccountId' },
            ':job/*',
          ],
        ],
      });
    });

    test('batch:DescribeJobs alone on "*" (it supports no resource-level permissions)', () => {
      // Act
      const describe_ = statements.filter((st) => actionsOf(st).includes('batch:DescribeJobs'));
      // Assess
      expect(describe_).toHaveLength(1);
      expect(actionsOf(describe_[0]!)).toEqual(['batch:DescribeJobs']);
      expect(describe_[0]!.Resource).toBe('*');
    });

    test('batch:SubmitJob stays on the two queues (spot, then on-demand) and the job definitions', () => {
      // Act
      const submit = statements.filter((st) => actionsOf(st).includes('batch:SubmitJob'));
      const queueIds = Object.keys(template.findResources('AWS::Batch::JobQueue')).sort();
      // Assess: one statement per submitting state (Extract, ExtractOnDemand), each on its own queue
      expect(queueIds).toHaveLength(2);
      expect(submit).toHaveLength(2);
      const queuesNamed = submit.map((st) => queueIds.filter((q) => JSON.stringify(st.Resource).includes(q)));
      expect(queuesNamed.flat().sort()).toEqual(queueIds);
      for (const st of submit) {
        expect(JSON.stringify(st.Resource)).toContain(':job-definition/*');
        expect(st.Resource).not.toContain('*');
      }
    });
  });

  test('Step Functions logs no execution data (state input and output hold object keys)', () => {
    // Prepare
    const sm = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0] as any;
    // Assess
    expect(sm.Properties.LoggingConfiguration.IncludeExecutionData).toBe(false);
  });

  test('Validate passes the execution id and holds claims exactly as long as an execution can run', () => {
    // Prepare
    const definition = definitionOf(template);
    const fn = built.pipeline.validateFunction.function;
    const vars =
      template.toJSON().Resources[built.pipeline.getLogicalId(fn.node.defaultChild as any)].Properties.Environment
        .Variables;
    // Assess
    expect(definition.States.Validate.Parameters.Payload['execution.$']).toBe('$$.Execution.Id');
    expect(Number(vars[ENV.scanLeaseSeconds])).toBe(definition.TimeoutSeconds);
  });

  describe('executions that end badly', () => {
    let ruleProps: any;
    let fnLogicalId: string;

    beforeAll(() => {
      const rules = Object.values(template.findResources('AWS::Events::Rule')) as any[];
      ruleProps = rules.find((r) => JSON.stringify(r.Properties.EventPattern).includes('aws.states'))?.Properties;
      fnLogicalId = built.pipeline.getLogicalId(
        built.pipeline.executionEnded.function.function.node.defaultChild as any,
      );
    });

    test('a rule on this state machine TIMED_OUT, ABORTED and FAILED executions targets ExecutionEnded, with a DLQ', () => {
      // Prepare
      const smId = Object.keys(template.findResources('AWS::StepFunctions::StateMachine'))[0]!;
      // Assess
      expect(ruleProps.EventPattern).toEqual({
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [{ Ref: smId }], status: [...EXECUTION_ENDED_STATUSES] },
      });
      expect(ruleProps.Targets).toHaveLength(1);
      expect(ruleProps.Targets[0].Arn).toEqual({ 'Fn::GetAtt': [fnLogicalId, 'Arn'] });
      expect(ruleProps.Targets[0].DeadLetterConfig.Arn).toBeDefined();
    });

    test('ExecutionEnded is a SonomarkFunction in the VPC, named from the contract', () => {
      // Prepare
      const fn = template.toJSON().Resources[fnLogicalId];
      // Assess
      expect(fn.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME).toBe(FUNCTIONS.executionEnded.serviceName);
      expect(fn.Properties.VpcConfig).toBeDefined();
      expect(fn.Properties.Environment.Variables[ENV.resultsTable]).toBeDefined();
    });

    test('its role may only get and conditionally update items of the results table: no S3, no put, no query', () => {
      // Prepare
      const role = built.pipeline.executionEnded.function.role;
      const statements = roleStatements(template, built.pipeline.getLogicalId(role.node.defaultChild as any));
      const actions = statements.flatMap(actionsOf);
      // Assess
      expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual([
        'dynamodb:GetItem',
        'dynamodb:UpdateItem',
      ]);
      expect(actions.filter((a) => a.startsWith('s3:') || a.startsWith('states:') || a.startsWith('batch:'))).toEqual(
        [],
      );
      const dynamo = statements.find((st) => actionsOf(st).includes('dynamodb:UpdateItem'))!;
      expect(JSON.stringify(dynamo.Resource)).not.toContain('index');
    });

    test.each([
      ['ExecutionsTimedOut', 'ExecutionsTimedOutAlarm'],
      ['ExecutionsAborted', 'ExecutionsAbortedAlarm'],
      ['ExecutionsFailed', 'ExecutionsFailedAlarm'],
    ])('%s alarms (>= 1 in 5 minutes) to the alarm topic', (metricName, id) => {
      // Prepare
      const alarms = template.findResources('AWS::CloudWatch::Alarm');
      const entry = Object.entries(alarms).find(([logicalId]) => logicalId.startsWith(id));
      // Assess
      expect(entry).toBeDefined();
      const p = (entry![1] as any).Properties;
      expect(p).toMatchObject({
        MetricName: metricName,
        Namespace: 'AWS/States',
        Threshold: 1,
        Period: 300,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
      expect(p.AlarmActions).toHaveLength(1);
    });
  });

  test('no statement in the pipeline grants batch:* or states:* wholesale', () => {
    // Assess
    const wide = allStatements(template).filter(({ statement }) =>
      actionsOf(statement).some((a) => a === 'batch:*' || a === 'states:*'),
    );
    expect(wide).toEqual([]);
  });
});
