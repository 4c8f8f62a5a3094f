import { ModelError } from '../../../core/errors';
import {
  extractDefinition,
  LOCAL_ACCOUNT,
  LOCAL_REGION,
  localFunctionArn,
  resolveToken,
  lambdaFunctions,
  taskStates,
  type CfnTemplate,
} from '../../../local/asl';
import { bindTaskStates, roleOfConstructPath, type LocalHandlers } from '../../../local/bindings';

const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';
const BATCH_SYNC = 'arn:aws:states:::batch:submitJob.sync';

function template(extra: CfnTemplate['Resources'] = {}): CfnTemplate {
  return {
    Resources: {
      ValidateFn: {
        Type: 'AWS::Lambda::Function',
        Metadata: { 'aws:cdk:path': 'SonomarkPipeline/ValidateUpload/Function/Resource' },
      },
      ExpertDiagnosisFn: {
        Type: 'AWS::Lambda::Function',
        Metadata: { 'aws:cdk:path': 'SonomarkPipeline/ExpertDiagnosis/Handler/Function/Resource' },
      },
      Queue: { Type: 'AWS::Batch::JobQueue' },
      ...extra,
    },
  };
}

describe('resolveToken', () => {
  it('resolves Fn::Join of a Ref to a Lambda function to its local ARN', () => {
    // Prepare
    const value = { 'Fn::Join': ['', ['"', { Ref: 'ValidateFn' }, '"']] };

    // Act
    const text = resolveToken(value, template());

    // Assess
    expect(text).toBe(`"${localFunctionArn('ValidateFn')}"`);
    expect(localFunctionArn('ValidateFn')).toBe(`arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:ValidateFn`);
  });

  it('resolves Fn::GetAtt Arn of a Lambda function to its local ARN', () => {
    // Prepare
    const value = { 'Fn::GetAtt': ['ExpertDiagnosisFn', 'Arn'] };

    // Act
    const text = resolveToken(value, template());

    // Assess
    expect(text).toBe('arn:aws:lambda:local-1:000000000000:function:ExpertDiagnosisFn');
  });

  it('gives other resources a placeholder naming type, id and attribute', () => {
    // Prepare / Act
    const ref = resolveToken({ Ref: 'Queue' }, template());
    const att = resolveToken({ 'Fn::GetAtt': ['Missing', 'Arn'] }, template());

    // Assess
    expect(ref).toBe('local:AWS::Batch::JobQueue:Queue:Ref');
    expect(att).toBe('local:unknown:Missing:Arn');
  });

  it.each([
    ['AWS::Partition', 'aws'],
    ['AWS::Region', 'local-1'],
    ['AWS::AccountId', '000000000000'],
    ['AWS::URLSuffix', 'amazonaws.com'],
  ])('resolves pseudo parameter %s to %s', (ref, expected) => {
    // Prepare / Act
    const text = resolveToken({ 'Fn::Join': [':', ['arn', { Ref: ref }]] }, template());

    // Assess
    expect(text).toBe(`arn:${expected}`);
  });

  it('resolves Fn::ImportValue to a local import placeholder', () => {
    // Prepare
    const value = { 'Fn::ImportValue': 'SonomarkData:ExportsOutputRefResultsTable' };

    // Act
    const text = resolveToken(value, template());

    // Assess
    expect(text).toBe('local:import:SonomarkData:ExportsOutputRefResultsTable');
  });

  it.each([
    [
      { 'Fn::Sub': 'arn:${AWS::Partition}' },
      'Unsupported CloudFormation intrinsic in state machine definition: Fn::Sub',
    ],
    [42, 'Unsupported CloudFormation value in state machine definition: 42'],
    [['a'], 'Unsupported CloudFormation value'],
  ])('throws a ModelError on %j', (value, message) => {
    // Prepare / Act / Assess
    expect(() => resolveToken(value, template())).toThrow(ModelError);
    expect(() => resolveToken(value, template())).toThrow(message);
  });
});

describe('extractDefinition', () => {
  it('resolves the Fn::Join DefinitionString of the one state machine and parses it', () => {
    // Prepare
    const t = template({
      Machine: {
        Type: 'AWS::StepFunctions::StateMachine',
        Properties: {
          DefinitionString: {
            'Fn::Join': [
              '',
              [
                '{"StartAt":"Validate","States":{"Validate":{"Type":"Task","Resource":"arn:',
                { Ref: 'AWS::Partition' },
                ':states:::lambda:invoke","Parameters":{"FunctionName":"',
                { 'Fn::GetAtt': ['ValidateFn', 'Arn'] },
                '"},"End":true}}}',
              ],
            ],
          },
        },
      },
    });

    // Act
    const definition = extractDefinition(t);

    // Assess
    expect(definition).toEqual({
      StartAt: 'Validate',
      States: {
        Validate: {
          Type: 'Task',
          Resource: LAMBDA_INVOKE,
          Parameters: { FunctionName: localFunctionArn('ValidateFn') },
          End: true,
        },
      },
    });
  });

  it('accepts a plain-string DefinitionString', () => {
    // Prepare
    const t = template({
      Machine: {
        Type: 'AWS::StepFunctions::StateMachine',
        Properties: { DefinitionString: '{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}' },
      },
    });

    // Act
    const definition = extractDefinition(t);

    // Assess
    expect(definition).toEqual({ StartAt: 'Done', States: { Done: { Type: 'Succeed' } } });
  });

  it('throws when the template has no state machine', () => {
    // Prepare / Act / Assess
    expect(() => extractDefinition(template())).toThrow(ModelError);
    expect(() => extractDefinition(template())).toThrow('Expected exactly one state machine');
    expect(() => extractDefinition(template())).toThrow('found 0');
  });

  it('throws when the template has two state machines', () => {
    // Prepare
    const machine = { Type: 'AWS::StepFunctions::StateMachine', Properties: { DefinitionString: '{}' } };
    const t = template({ A: machine, B: machine });

    // Act / Assess
    expect(() => extractDefinition(t)).toThrow('Expected exactly one state machine in the pipeline template, found 2.');
  });

  it('throws when the state machine has no definition', () => {
    // Prepare
    const t = template({ Machine: { Type: 'AWS::StepFunctions::StateMachine', Properties: {} } });

    // Act / Assess
    expect(() => extractDefinition(t)).toThrow('State machine has no DefinitionString.');
  });
});

describe('taskStates', () => {
  it('finds Task states at the top level, in a Map ItemProcessor and in Parallel branches', () => {
    // Prepare
    const definition = {
      StartAt: 'Validate',
      States: {
        Validate: { Type: 'Task', Resource: LAMBDA_INVOKE, Next: 'Score' },
        Score: {
          Type: 'Map',
          ItemProcessor: {
            StartAt: 'Expert',
            States: { Expert: { Type: 'Task', Resource: LAMBDA_INVOKE, End: true } },
          },
          Next: 'Both',
        },
        Both: {
          Type: 'Parallel',
          Branches: [
            { StartAt: 'Extract', States: { Extract: { Type: 'Task', Resource: BATCH_SYNC, End: true } } },
            {
              StartAt: 'Wait',
              States: {
                Wait: { Type: 'Pass', Next: 'Finalize' },
                Finalize: { Type: 'Task', Resource: LAMBDA_INVOKE, End: true },
              },
            },
          ],
          End: true,
        },
      },
    };

    // Act
    const tasks = taskStates(definition);

    // Assess
    expect(tasks).toEqual([
      { name: 'Validate', resource: LAMBDA_INVOKE },
      { name: 'Expert', resource: LAMBDA_INVOKE },
      { name: 'Extract', resource: BATCH_SYNC },
      { name: 'Finalize', resource: LAMBDA_INVOKE },
    ]);
  });

  it('also walks the legacy Map Iterator', () => {
    // Prepare
    const definition = {
      States: {
        M: { Type: 'Map', Iterator: { States: { Inner: { Type: 'Task', Resource: 'x', End: true } } }, End: true },
      },
    };

    // Act
    const tasks = taskStates(definition);

    // Assess
    expect(tasks).toEqual([{ name: 'Inner', resource: 'x' }]);
  });
});

describe('roleOfConstructPath', () => {
  it.each([
    ['SonomarkPipeline/ValidateUpload/Function/Resource', 'validate'],
    ['SonomarkPipeline/ExpertDiagnosis/Handler/Function/Resource', 'expert'],
    ['SonomarkPipeline/ExpertSeverity2/Handler/Function/Resource', 'expert'],
    ['SonomarkPipeline/Finalize/Function/Resource', 'finalize'],
    ['SonomarkPipeline/RecordFailure/Function/Resource', 'recordFailure'],
    ['SonomarkPipeline/Expertise/Function/Resource', undefined],
    ['SonomarkPipeline/LogRetention/Resource', undefined],
    ['', undefined],
  ])('maps %j to %s', (cdkPath, role) => {
    // Prepare / Act
    const actual = roleOfConstructPath(cdkPath);

    // Assess
    expect(actual).toBe(role);
  });
});

describe('bindTaskStates', () => {
  const definition = {
    StartAt: 'Validate',
    States: {
      Validate: { Type: 'Task', Resource: LAMBDA_INVOKE, Next: 'Extract' },
      Extract: { Type: 'Task', Resource: BATCH_SYNC, End: true },
    },
  };

  function fakeHandlers(overrides: Partial<LocalHandlers> = {}): LocalHandlers & { calls: unknown[] } {
    const calls: unknown[] = [];
    const lambda = (role: string) => async (payload: unknown) => {
      calls.push({ role, payload });
      return { ok: role };
    };
    return {
      calls,
      lambdas: {
        validate: lambda('validate'),
        expert: lambda('expert'),
        finalize: lambda('finalize'),
        recordFailure: lambda('recordFailure'),
        executionEnded: lambda('executionEnded'),
        loadExperts: lambda('loadExperts'),
        extractor: lambda('extractor'),
      },
      extractJob: async (env) => {
        calls.push({ role: 'extract', env });
      },
      ...overrides,
    };
  }

  it('binds a lambda:invoke Task to the handler behind FunctionName', async () => {
    // Prepare
    const handlers = fakeHandlers();
    const bound = bindTaskStates(definition, lambdaFunctions(template()), handlers);

    // Act
    const out = await bound.Validate!({ FunctionName: localFunctionArn('ValidateFn'), Payload: { key: 'k' } });

    // Assess
    expect(Object.keys(bound).sort()).toEqual(['Extract', 'Validate']);
    expect(out).toEqual({ ExecutedVersion: '$LATEST', Payload: { ok: 'validate' }, StatusCode: 200 });
    expect(handlers.calls).toEqual([{ role: 'validate', payload: { key: 'k' } }]);
  });

  it('routes to the expert handler by ARN', async () => {
    // Prepare
    const handlers = fakeHandlers();
    const bound = bindTaskStates(definition, lambdaFunctions(template()), handlers);

    // Act
    const out = await bound.Validate!({ FunctionName: localFunctionArn('ExpertDiagnosisFn'), Payload: 1 });

    // Assess
    expect(out).toMatchObject({ Payload: { ok: 'expert' }, StatusCode: 200 });
  });

  it('surfaces a handler error by its name, with a JSON errorType/errorMessage cause', async () => {
    // Prepare
    const failing = Object.assign(new Error('The file is not a video.'), { name: 'InvalidUpload' });
    const handlers = fakeHandlers({
      lambdas: {
        ...fakeHandlers().lambdas,
        validate: async () => {
          throw failing;
        },
      },
    });
    const bound = bindTaskStates(definition, lambdaFunctions(template()), handlers);

    // Act
    const err = (await bound.Validate!({ FunctionName: localFunctionArn('ValidateFn'), Payload: {} }).catch(
      (e: unknown) => e,
    )) as Error;

    // Assess
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('InvalidUpload');
    expect(JSON.parse(err.message)).toEqual({ errorType: 'InvalidUpload', errorMessage: 'The file is not a video.' });
  });

  it('rejects an invocation of a function with no local handler', async () => {
    // Prepare
    const bound = bindTaskStates(definition, lambdaFunctions(template()), fakeHandlers());

    // Act / Assess
    await expect(bound.Validate!({ FunctionName: 'arn:aws:lambda:x:1:function:Other', Payload: {} })).rejects.toThrow(
      'has no local handler',
    );
  });

  it('passes the Batch container override environment as an env object', async () => {
    // Prepare
    const handlers = fakeHandlers();
    const bound = bindTaskStates(definition, lambdaFunctions(template()), handlers);

    // Act
    const out = (await bound.Extract!({
      JobName: 'extract',
      JobQueue: 'q',
      JobDefinition: 'd',
      ContainerOverrides: {
        Environment: [
          { Name: 'SCAN', Value: '{"scanId":"x"}' },
          { Name: 'MODE', Value: 'local' },
        ],
      },
    })) as Record<string, unknown>;

    // Assess
    expect(handlers.calls).toEqual([{ role: 'extract', env: { SCAN: '{"scanId":"x"}', MODE: 'local' } }]);
    expect(out).toMatchObject({ JobName: 'extract', Status: 'SUCCEEDED', Container: { ExitCode: 0 } });
  });

  it('fails a Batch Task with States.TaskFailed and a FAILED job description as Cause', async () => {
    // Prepare
    const handlers = fakeHandlers({
      extractJob: async () => {
        throw new Error('decode failed');
      },
    });
    const bound = bindTaskStates(definition, lambdaFunctions(template()), handlers);

    // Act
    const err = (await bound.Extract!({ JobName: 'extract', JobQueue: 'q', JobDefinition: 'd' }).catch(
      (e: unknown) => e,
    )) as Error;

    // Assess
    expect(err.name).toBe('States.TaskFailed');
    const cause = JSON.parse(err.message) as Record<string, unknown>;
    expect(cause).toMatchObject({
      JobName: 'extract',
      Status: 'FAILED',
      StatusReason: 'Essential container in task exited',
      Container: { ExitCode: 1 },
    });
  });

  it('throws at bind time on a Task whose Resource local mode cannot run', () => {
    // Prepare
    const withSqs = {
      StartAt: 'Notify',
      States: { Notify: { Type: 'Task', Resource: 'arn:aws:states:::sqs:sendMessage', End: true } },
    };

    // Act / Assess
    expect(() => bindTaskStates(withSqs, lambdaFunctions(template()), fakeHandlers())).toThrow(
      'Task state Notify uses arn:aws:states:::sqs:sendMessage, which local mode cannot run.',
    );
  });

  it('throws at bind time on a Lambda function with no recognizable construct path', () => {
    // Prepare
    const t = template({
      Stray: { Type: 'AWS::Lambda::Function', Metadata: { 'aws:cdk:path': 'SonomarkPipeline/Custom/Resource' } },
      NoPath: { Type: 'AWS::Lambda::Function' },
    });

    // Act / Assess
    expect(() => bindTaskStates(definition, lambdaFunctions(t), fakeHandlers())).toThrow(
      'Lambda function Stray (SonomarkPipeline/Custom/Resource) has no local handler.',
    );
    const onlyNoPath = template({ NoPath: { Type: 'AWS::Lambda::Function' } });
    expect(() => bindTaskStates(definition, lambdaFunctions(onlyNoPath), fakeHandlers())).toThrow(
      'Lambda function NoPath (no construct path) has no local handler.',
    );
  });
});
