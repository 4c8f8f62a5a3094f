/**
 * GPU capacity: several instance types, spot first with a move to on demand when the
 * spot queue cannot place a job (one workflow definition), spot reclaims and the
 * extractor's transient exits retried by Batch, AWS_REGION on the job.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { EXTRACTOR_EXIT_TRANSIENT, STATE } from '../../core/contract';
import { SPOT_CAPACITY_CANCEL_REASON } from '../../lib/constructs/gpu-job';
import { definitionOf, synth } from './helpers';

describe.each([['gpu'], ['cpu']])('GPU capacity (computeMode %s)', (computeMode) => {
  let template: Template;
  let definition: Record<string, any>;
  let queues: Record<string, any>;
  beforeAll(() => {
    template = synth({ nag: false, context: { sonomark: { computeMode } } }).pipelineTemplate;
    definition = definitionOf(template);
    queues = template.findResources('AWS::Batch::JobQueue');
  });

  test('Extract submits to the spot queue; ExtractOnDemand the same job to the on-demand queue', () => {
    // Prepare
    const extract = definition.States[STATE.extract];
    const onDemand = definition.States[STATE.extractOnDemand];
    const spotId = Object.keys(queues).find((id) => !id.includes('OnDemand'))!;
    const onDemandId = Object.keys(queues).find((id) => id.includes('OnDemand'))!;
    // Assess
    expect(JSON.stringify(extract.Parameters.JobQueue)).toContain(spotId);
    expect(JSON.stringify(onDemand.Parameters.JobQueue)).toContain(onDemandId);
    const { JobQueue: _a, ...extractRest } = extract.Parameters;
    const { JobQueue: _b, ...onDemandRest } = onDemand.Parameters;
    expect(onDemandRest).toEqual(extractRest);
    expect(onDemand.Resource).toBe(extract.Resource);
    expect(onDemand.ResultSelector).toEqual(extract.ResultSelector);
    expect(onDemand.ResultPath).toBe(extract.ResultPath);
    expect(onDemand.Next).toBe(extract.Next);
  });

  test("ExtractFailed sends only Batch's spot-capacity cancellation on demand, everything else to RecordFailure", () => {
    // Prepare
    const choice = definition.States[STATE.extractFailed];
    // Assess
    expect(choice.Type).toBe('Choice');
    expect(choice.Choices).toEqual([
      {
        And: [
          { Variable: '$.error.Cause', IsString: true },
          { Variable: '$.error.Cause', StringMatches: `*${SPOT_CAPACITY_CANCEL_REASON}*` },
        ],
        Next: STATE.extractOnDemand,
      },
    ]);
    expect(choice.Default).toBe(STATE.recordFailure);
  });

  test('the spot queue cancels a job starved of spot capacity after 10 minutes; the on-demand queue after 30', () => {
    // Prepare
    const byQueue = Object.entries(queues).map(([id, q]) => [
      id.includes('OnDemand') ? 'onDemand' : 'spot',
      Object.fromEntries((q.Properties.JobStateTimeLimitActions as any[]).map((a) => [a.Reason, a.MaxTimeSeconds])),
    ]);
    // Assess
    expect(Object.fromEntries(byQueue)).toEqual({
      spot: {
        'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY': 600,
        'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE': 1800,
        'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT': 1800,
      },
      onDemand: {
        'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY': 1800,
        'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE': 1800,
        'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT': 1800,
      },
    });
  });

  test('the job sets AWS_REGION, and Batch retries host loss and transient exits but no application failure', () => {
    // Prepare
    const jd = Object.values(template.findResources('AWS::Batch::JobDefinition'))[0] as any;
    const rules = jd.Properties.RetryStrategy.EvaluateOnExit as any[];
    // Assess
    expect(jd.Properties.ContainerProperties.Environment).toContainEqual({
      Name: 'AWS_REGION',
      Value: { Ref: 'AWS::Region' },
    });
    expect(rules).toContainEqual({ Action: 'RETRY', OnStatusReason: 'Host EC2*' });
    expect(rules).toContainEqual({ Action: 'RETRY', OnExitCode: String(EXTRACTOR_EXIT_TRANSIENT) });
    // Everything else (exit 1: a decode or model error) ends the job; Batch takes at most 5 rules.
    expect(rules[rules.length - 1]).toEqual({ Action: 'EXIT', OnReason: '*' });
    expect(rules.length).toBeLessThanOrEqual(5);
  });
});

test('several GPU instance types by default, each in both environments; spotCapacityWaitMinutes is configurable', () => {
  // Prepare / Act
  const t = synth({ nag: false, context: { sonomark: { spotCapacityWaitMinutes: 20 } } }).pipelineTemplate;
  // Assess
  for (const ce of Object.values(t.findResources('AWS::Batch::ComputeEnvironment')) as any[]) {
    expect(ce.Properties.ComputeResources.InstanceTypes).toEqual(['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge']);
  }
  const spot = Object.entries(t.findResources('AWS::Batch::JobQueue')).find(([id]) => !id.includes('OnDemand'))![1];
  expect((spot as any).Properties.JobStateTimeLimitActions[0]).toMatchObject({
    Reason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
    MaxTimeSeconds: 1200,
  });
  expect(() => synth({ nag: false, context: { sonomark: { spotCapacityWaitMinutes: 5 } } })).toThrow(
    /spotCapacityWaitMinutes/,
  );
});
