/**
 * CohortStack: the Distributed Map's reader, batcher, limits and writer; the schedules of config
 * `cohorts`; least privilege; cdk-nag; and the structural proof that re-scoring needs no GPU:
 * every path from a batch's plan to its end, for a batch whose items all have features, reaches
 * ScoreBatch without passing a batch:submitJob state.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, HIPAASecurityChecks } from 'cdk-nag';
import { COHORT_STATE } from '../../core/contract';
import { allStatements, definitionOf, synth } from './helpers';

const context = {
  sonomark: {
    cohortBatching: { batchSize: 7, maxConcurrency: 3, toleratedFailurePercentage: 5 },
    cohorts: [
      { name: 'weekly', site: 'site-a', cron: '0 3 ? * MON *', prefix: 'uploads/site-a/' },
      {
        name: 'trial',
        site: 'site-b',
        cron: '30 1 1 * ? *',
        manifest: { key: 'cohorts/manifests/trial.csv', format: 'csv' },
      },
    ],
  },
};
const built = synth({ context });
const template = Template.fromStack(built.cohort);
const definition = definitionOf(template);
const MAPS = [COHORT_STATE.mapCsv, COHORT_STATE.mapJsonl, COHORT_STATE.mapPrefix];

type State = Record<string, any>;

describe('the cohort Distributed Map', () => {
  it.each(MAPS)(
    '%s batches items, bounds concurrency and failures, and writes results under the run prefix',
    (name) => {
      // Prepare
      const map = definition.States[name] as State;
      // Assess
      expect(map.Type).toBe('Map');
      expect(map.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
      expect(map.ItemBatcher).toEqual({
        MaxItemsPerBatch: 7,
        BatchInput: { 'site.$': '$.site', 'runPrefix.$': '$.run.runPrefix' },
      });
      expect(map.MaxConcurrency).toBe(3);
      expect(map.ToleratedFailurePercentage).toBe(5);
      expect(map.ResultWriter.Resource).toMatch(/:states:::s3:putObject$/);
      expect(map.ResultWriter.Parameters['Prefix.$']).toBe('$.run.runPrefix');
      expect(map.ResultWriter.Parameters.Bucket).toMatch(/Artifacts/);
    },
  );

  it('reads a CSV or JSONL manifest the input names, or lists an uploads prefix', () => {
    // Prepare
    const reader = (name: string) => (definition.States[name] as State).ItemReader;
    // Assess
    expect(reader(COHORT_STATE.mapCsv)).toMatchObject({
      Resource: expect.stringMatching(/:states:::s3:getObject$/),
      ReaderConfig: { InputType: 'CSV', CSVHeaderLocation: 'FIRST_ROW' },
      Parameters: { 'Bucket.$': '$.manifest.bucket', 'Key.$': '$.manifest.key' },
    });
    expect(reader(COHORT_STATE.mapJsonl)).toMatchObject({ ReaderConfig: { InputType: 'JSONL' } });
    expect(reader(COHORT_STATE.mapPrefix)).toMatchObject({
      Resource: expect.stringMatching(/:states:::s3:listObjectsV2$/),
      Parameters: { 'Bucket.$': '$.run.uploadsBucket', 'Prefix.$': '$.prefix' },
    });
    // The run folder is cohorts/{site}/{execution name}/.
    expect(definition.States.CsvInitRun.Parameters['runPrefix.$']).toBe(
      "States.Format('cohorts/{}/{}/', $.site, $$.Execution.Name)",
    );
  });

  it('keeps execution data out of its log and is a STANDARD state machine', () => {
    // Assess
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      LoggingConfiguration: { IncludeExecutionData: false, Level: 'ALL' },
      TracingConfiguration: { Enabled: true },
    });
  });
});

describe('cohort schedules', () => {
  it('start the state machine with the input a manual start takes, in UTC, one per configured cohort', () => {
    // Prepare
    const schedules = Object.values(template.findResources('AWS::Scheduler::Schedule')) as State[];
    // An input naming the artifacts bucket is an Fn::Join around its (imported) name.
    const text = (v: any): string =>
      typeof v === 'string'
        ? v
        : (v['Fn::Join'][1] as any[]).map((p) => (typeof p === 'string' ? p : 'BUCKET')).join('');
    const inputs = schedules.map((s) => JSON.parse(text(s.Properties.Target.Input)));
    // Assess
    expect(schedules.map((s) => s.Properties.ScheduleExpression).sort()).toEqual([
      'cron(0 3 ? * MON *)',
      'cron(30 1 1 * ? *)',
    ]);
    for (const s of schedules) expect(s.Properties.ScheduleExpressionTimezone).toBe('Etc/UTC');
    // Their stored input is encrypted with the project key, not an AWS-owned one.
    for (const s of schedules) expect(JSON.stringify(s.Properties.KmsKeyArn)).toMatch(/Key/);
    expect(inputs).toEqual(
      expect.arrayContaining([
        { site: 'site-a', prefix: 'uploads/site-a/' },
        {
          site: 'site-b',
          manifest: { bucket: 'BUCKET', key: 'cohorts/manifests/trial.csv', format: 'csv' },
        },
      ]),
    );
  });

  it('may only start this state machine, and decrypt their own input with the project key', () => {
    // Prepare
    const scheduler = allStatements(template).filter((s) => /SchedulerRole/.test(s.where));
    // Assess
    expect(scheduler.map((s) => s.statement)).toEqual([
      expect.objectContaining({
        Action: 'states:StartExecution',
        Resource: { Ref: expect.stringMatching(/^CohortWorkflowStateMachine/) },
      }),
      expect.objectContaining({
        Action: 'kms:Decrypt',
        Resource: { 'Fn::ImportValue': expect.stringMatching(/^SonomarkStorage:.*Key.*Arn/) },
      }),
    ]);
  });

  it('are absent by default', () => {
    // Act
    const plain = synth();
    // Assess
    Template.fromStack(plain.cohort).resourceCountIs('AWS::Scheduler::Schedule', 0);
  });
});

describe('cohort permissions', () => {
  const statements = allStatements(template);
  const ofRole = (re: RegExp) => statements.filter((s) => re.test(s.where)).map((s) => s.statement);
  const flat = (v: unknown) => JSON.stringify(v);

  it('lets the Distributed Map start its own child executions and nothing else', () => {
    // Prepare
    const map = ofRole(/DistributedMapPolicy/);
    // Assess
    expect(map).toContainEqual(
      expect.objectContaining({
        Action: 'states:StartExecution',
        Resource: { Ref: expect.stringMatching(/^CohortWorkflowStateMachine/) },
      }),
    );
    for (const s of map) expect(flat(s.Resource)).toMatch(/CohortWorkflowStateMachine/);
  });

  it('scopes every S3 grant of every cohort role to a prefix, never a whole bucket or *', () => {
    // Prepare
    const s3 = statements.filter((s) => flat(s.statement.Action).includes('s3:'));
    // Assess
    expect(s3.length).toBeGreaterThan(0);
    for (const { statement } of s3) {
      const resource = flat(statement.Resource);
      expect(resource).not.toBe('"*"');
      const listing = flat(statement.Action).includes('s3:ListBucket');
      if (listing) expect(statement.Condition?.StringLike?.['s3:prefix']).toBeDefined();
      else expect(resource).toMatch(/\/(uploads|features|models|cohorts)\//);
    }
  });

  it('reads manifests from cohorts/manifests/ and lists only uploads/', () => {
    // Prepare
    const machine = ofRole(/CohortWorkflowStateMachineRole/);
    // Assess
    expect(machine).toContainEqual(expect.objectContaining({ Action: 's3:GetObject', Resource: expect.anything() }));
    expect(flat(machine)).toContain('/cohorts/manifests/*');
    expect(machine).toContainEqual(
      expect.objectContaining({ Action: 's3:ListBucket', Condition: { StringLike: { 's3:prefix': ['uploads/*'] } } }),
    );
  });

  it('lets the plan read and claim scan items (a conditional PutItem, as Validate), never update or delete them', () => {
    // Prepare
    const plan = ofRole(/CohortPlanRole/).filter((s) => flat(s.Action).includes('dynamodb:'));
    // Assess
    expect(plan).toEqual([expect.objectContaining({ Action: ['dynamodb:GetItem', 'dynamodb:PutItem'] })]);
  });

  it('lets the report read what the page shows (features, scan items and results) and write only under cohorts/', () => {
    // Prepare
    const report = ofRole(/CohortReportRole/);
    const fn = Object.entries(template.toJSON().Resources as Record<string, State>).find(
      ([k, r]) => /^CohortReport/.test(k) && r.Type === 'AWS::Lambda::Function',
    )?.[1];
    // Assess: reads of the table (item and partition Query) with no write, features read, cohorts/ written
    const ddb = report.filter((s) => flat(s.Action).includes('dynamodb:'));
    expect(ddb).toEqual([expect.objectContaining({ Action: ['dynamodb:GetItem', 'dynamodb:Query'] })]);
    expect(flat(ddb[0]!.Resource)).not.toContain('/index/');
    const writes = report.filter((s) => flat(s.Action).includes('s3:PutObject'));
    expect(writes).toHaveLength(1);
    expect(flat(writes[0]!.Resource)).toMatch(/\/cohorts\/\*"/);
    const reads = report.filter((s) => flat(s.Action).includes('s3:GetObject'));
    expect(flat(reads)).toContain('/features/*');
    expect(flat(reads)).toContain('/cohorts/*');
    expect(flat(reads)).not.toContain('/uploads/');
    // It names the table, and has the time to render a large cohort's page
    expect(fn?.Properties.Environment.Variables.RESULTS_TABLE).toBeDefined();
    expect(fn?.Properties.Timeout).toBe(900);
  });

  it('lets the extractor read batch item lists under cohorts/', () => {
    // Prepare
    const job = allStatements(built.pipelineTemplate).filter((s) => /ExtractorJobRole/.test(s.where));
    // Assess
    expect(flat(job.map((s) => s.statement))).toContain('/cohorts/*');
  });
});

describe('cdk-nag', () => {
  it.each([
    ['AwsSolutions', () => new AwsSolutionsChecks()],
    ['HIPAA Security', () => new HIPAASecurityChecks()],
  ])('%s has no unacknowledged finding in the cohort stack', (_name, pack) => {
    // Act
    const findings = pack()
      .validateScope(built.cohort)
      .violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} ${r.constructPath ?? ''}`));
    // Assess
    expect(findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// The structural proof of "no GPU for re-scoring"
// ---------------------------------------------------------------------------

function valueAt(doc: unknown, path: string): unknown {
  let v: any = doc;
  for (const part of path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean))
    v = v?.[part];
  return v;
}

/** Step Functions' Choice rule semantics, for the operators the cohort definition uses. */
function matches(rule: State, input: unknown): boolean {
  if (rule.And) return (rule.And as State[]).every((r) => matches(r, input));
  if (rule.Or) return (rule.Or as State[]).some((r) => matches(r, input));
  if (rule.Not) return !matches(rule.Not, input);
  const v = valueAt(input, rule.Variable);
  if ('IsPresent' in rule) return (v !== undefined) === rule.IsPresent;
  if ('IsString' in rule) return (typeof v === 'string') === rule.IsString;
  if ('NumericGreaterThan' in rule) return typeof v === 'number' && v > rule.NumericGreaterThan;
  if ('StringEquals' in rule) return v === rule.StringEquals;
  throw new Error(`Choice operator not modelled by this test: ${JSON.stringify(rule)}`);
}

/**
 * Every path from `start` to an end of the processor: Next, Catch and Default edges all
 * followed, Choice rules evaluated against `input` (the state after PlanBatch).
 */
function paths(states: Record<string, State>, start: string, input: unknown): string[][] {
  const out: string[][] = [];
  const walk = (name: string, seen: string[]) => {
    if (seen.includes(name)) throw new Error(`cycle at ${name}`);
    const path = [...seen, name];
    const s = states[name] as State;
    const next: string[] = [];
    if (s.Type === 'Choice') {
      const hit = (s.Choices as State[]).find((c) => matches(c, input));
      next.push(hit ? hit.Next : s.Default);
    } else {
      if (s.Next) next.push(s.Next);
      for (const c of s.Catch ?? []) next.push(c.Next);
    }
    if (next.length === 0) out.push(path);
    for (const n of next) walk(n, path);
  };
  walk(start, []);
  return out;
}

const submitsJob = (s: State) => typeof s.Resource === 'string' && /:states:::batch:submitJob/.test(s.Resource);

describe('re-scoring a cohort needs no GPU', () => {
  it.each([
    ['Csv', COHORT_STATE.mapCsv],
    ['Jsonl', COHORT_STATE.mapJsonl],
    ['Prefix', COHORT_STATE.mapPrefix],
  ])('in the %s map, a batch whose items all have features reaches ScoreBatch without a Batch job', (label, map) => {
    // Prepare: the processor, starting at its plan state
    const processor = (definition.States[map] as State).ItemProcessor;
    const states = processor.States as Record<string, State>;
    expect(processor.StartAt).toBe(`${label}${COHORT_STATE.plan}`);
    expect(Object.values(states).some(submitsJob)).toBe(true);

    // Act: every path for a plan with nothing to extract, and for one with two clips to extract
    const scoreOnly = paths(states, processor.StartAt, { plan: { extractCount: 0 } });
    const withNew = paths(states, processor.StartAt, { plan: { extractCount: 2 } });

    // Assess
    expect(scoreOnly.length).toBeGreaterThan(0);
    for (const p of scoreOnly) {
      expect(p).toContain(`${label}${COHORT_STATE.score}`);
      expect(p.filter((n) => submitsJob(states[n] as State))).toEqual([]);
    }
    // The walk can tell: with clips to extract, every path passes the Batch job before scoring.
    for (const p of withNew) {
      const job = p.findIndex((n) => submitsJob(states[n] as State));
      expect(job).toBeGreaterThanOrEqual(0);
      expect(p.indexOf(`${label}${COHORT_STATE.score}`)).toBeGreaterThan(job);
    }
  });

  it('runs the extractor in batch mode: one job per batch, its item list named by ITEMS_BUCKET/ITEMS_KEY', () => {
    // Prepare
    const states = (definition.States[COHORT_STATE.mapCsv] as State).ItemProcessor.States as Record<string, State>;
    const job = Object.values(states).find(submitsJob) as State;
    // Assess
    expect(job.Parameters.ContainerOverrides.Environment).toEqual([
      { Name: 'ITEMS_BUCKET', 'Value.$': '$.plan.itemsBucket' },
      { Name: 'ITEMS_KEY', 'Value.$': '$.plan.itemsKey' },
    ]);
  });

  it('hands ScoreBatch the job’s timing and the pipeline’s rates, so cohort scans are billed like uploads', () => {
    // Prepare
    const states = (definition.States[COHORT_STATE.mapCsv] as State).ItemProcessor.States as Record<string, State>;
    const job = Object.values(states).find(submitsJob) as State;
    const score = states[`Csv${COHORT_STATE.score}`] as State;
    const pipeline = Template.fromStack(built.pipeline).toJSON() as { Resources: Record<string, State> };
    const envOf = (t: { Resources: Record<string, State> }, id: RegExp) =>
      Object.entries(t.Resources).find(([k, r]) => id.test(k) && r.Type === 'AWS::Lambda::Function')?.[1]?.Properties
        .Environment.Variables as Record<string, unknown>;
    // Assess: the measured seconds reach the score step, whose state holds them when the job ran
    expect(job.ResultSelector).toEqual({
      'jobId.$': '$.JobId',
      'startedAt.$': '$.StartedAt',
      'stoppedAt.$': '$.StoppedAt',
    });
    expect(job.ResultPath).toBe('$.extract');
    expect(score.Parameters).toBeUndefined(); // the whole state, `extract` included when present
    const rates = envOf(template.toJSON() as { Resources: Record<string, State> }, /^CohortScore/)?.SCAN_RATES;
    expect(rates).toBeDefined();
    expect(rates).toEqual(envOf(pipeline, /^Finalize/)?.SCAN_RATES);
  });
});
