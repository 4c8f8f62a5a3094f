/**
 * The permission matrix: for every IAM role in the synthesized app, what it may do
 * to the project's storage (each bucket and key prefix, the results table and its
 * indexes) and every action its policies grant, written out explicitly. The
 * storage columns are IAM's decisions (local/iam-policy.ts evaluate) over probe
 * requests, so a wildcard that widens access (s3:* on *, a bucket ARN without a
 * prefix, an expert role reading raw uploads) changes the matrix and fails here,
 * whichever statement or construct introduced it.
 */
import { CfnElement, Stack } from 'aws-cdk-lib';
import { CfnRole } from 'aws-cdk-lib/aws-iam';
import { Template } from 'aws-cdk-lib/assertions';
import {
  evaluate,
  localBucketArn,
  localTableArn,
  policyStatements,
  rolePolicy,
  type IamTemplate,
  type LocalResourceNames,
  type RolePolicy,
} from '../../local/iam-policy';
import { COHORTS_PREFIX } from '../../core/cohort-run';
import { MODELS } from '../../core/contract';
import { DICOM_PSEUDONYM_SALT_KEY, FEATURES_PREFIX, UPLOADS_PREFIX } from '../../core/keys';
import { synth, type Synthesized } from './helpers';
import { PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { readOrCreatePseudonymSalt } from '../../core/dicom/salt-object';
import { enforceRolePolicy } from '../../local/iam-guard';
import { s3Body } from '../unit/helpers/fakes';

const BUCKETS = { uploads: 'uploads', artifacts: 'artifacts', accessLogs: 'access-logs' } as const;
const TABLE = 'results';
/** Key prefixes probed in every bucket: the three the workflow uses and one that no role should reach. */
const PREFIXES = [UPLOADS_PREFIX, FEATURES_PREFIX, MODELS.bucketPrefix, COHORTS_PREFIX, 'other/'];
/** Single objects probed in every bucket: the DICOM pseudonym salt, which only the extractor may read or create. */
const OBJECTS = [DICOM_PSEUDONYM_SALT_KEY];
const S3_OBJECT_ACTIONS = [
  's3:GetObject',
  's3:GetObjectVersion',
  's3:PutObject',
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:AbortMultipartUpload',
  's3:PutObjectAcl',
];
const UNCONDITIONAL_WRITE = { 's3:if-none-match': undefined, 's3:if-match': undefined };
const CREATE_ONLY_WRITE = { 's3:if-none-match': '*', 's3:if-match': undefined };
const S3_BUCKET_ACTIONS = ['s3:ListBucket', 's3:ListBucketVersions', 's3:PutBucketPolicy', 's3:DeleteBucket'];
const TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
  'dynamodb:DeleteTable',
  'dynamodb:UpdateTable',
];

interface RoleMatrix {
  /** `<bucket>/<prefix>*: action,…` and `<bucket>: action,…` for every allowed probe. */
  readonly storage: string[];
  /** Every action an Allow statement names, as written (wildcards kept). */
  readonly actions: string[];
  readonly notes: readonly string[];
}

function storageColumn(role: RolePolicy, bucketPolicies: Record<string, RolePolicy['statements']>): string[] {
  const rows: string[] = [];
  // An object write is probed as AWS sees it: without a conditional header (an overwrite), and,
  // when that is denied, with If-None-Match (create only): granted that way, it reads "(if-none-match)".
  const allowed = (actions: string[], arn: string, resourcePolicy: RolePolicy['statements'] = []) =>
    actions.flatMap((a) => {
      if (a !== 's3:PutObject') return evaluate(role, a, arn, resourcePolicy).allowed ? [a] : [];
      if (evaluate(role, a, arn, resourcePolicy, UNCONDITIONAL_WRITE).allowed) return [a];
      return evaluate(role, a, arn, resourcePolicy, CREATE_ONLY_WRITE).allowed ? [`${a}(if-none-match)`] : [];
    });
  const row = (label: string, actions: string[]) => actions.length && rows.push(`${label}: ${actions.join(',')}`);
  for (const bucket of Object.values(BUCKETS)) {
    const arn = localBucketArn(bucket);
    row(bucket, allowed(S3_BUCKET_ACTIONS, arn, bucketPolicies[arn]));
    for (const prefix of PREFIXES)
      row(`${bucket}/${prefix}*`, allowed(S3_OBJECT_ACTIONS, `${arn}/${prefix}some/key`, bucketPolicies[arn]));
    for (const key of OBJECTS)
      row(`${bucket}/${key}`, allowed(S3_OBJECT_ACTIONS, `${arn}/${key}`, bucketPolicies[arn]));
  }
  row(TABLE, allowed(TABLE_ACTIONS, localTableArn(TABLE)));
  row(`${TABLE}/index/bySite`, allowed(TABLE_ACTIONS, `${localTableArn(TABLE)}/index/bySite`));
  row(`${TABLE}/index/other`, allowed(TABLE_ACTIONS, `${localTableArn(TABLE)}/index/other`));
  return rows;
}

/** The matrix of every role in the app, keyed by the role's construct path. */
function permissionMatrix(
  built: Synthesized,
  /** Filled with each role's resolved policy and the bucket policies, for tests that run code under them. */
  resolved?: Map<string, { policy: RolePolicy; bucketPolicies: Record<string, RolePolicy['statements']> }>,
): Record<string, RoleMatrix> {
  const storageJson = built.storageTemplate.toJSON() as IamTemplate;
  const templates: [Stack, IamTemplate][] = [
    [built.storage, storageJson],
    [built.pipeline, built.pipelineTemplate.toJSON() as IamTemplate],
    [built.trigger, built.triggerTemplate.toJSON() as IamTemplate],
    [built.cohort, Template.fromStack(built.cohort).toJSON() as IamTemplate],
  ];
  const idOf = (c: { node: { defaultChild?: unknown } }) =>
    built.storage.getLogicalId(c.node.defaultChild as CfnElement);
  const names: LocalResourceNames = {
    buckets: {
      [idOf(built.storage.uploadsBucket)]: BUCKETS.uploads,
      [idOf(built.storage.artifactsBucket)]: BUCKETS.artifacts,
      [idOf(built.storage.accessLogsBucket)]: BUCKETS.accessLogs,
    },
    tables: { [idOf(built.storage.resultsTable)]: TABLE },
  };
  const exporters = templates.map(([, t]) => t);
  const bucketPolicies: Record<string, RolePolicy['statements']> = {};
  for (const r of Object.values(storageJson.Resources).filter((x) => x.Type === 'AWS::S3::BucketPolicy')) {
    const { Ref } = r.Properties!.Bucket as { Ref: string };
    bucketPolicies[localBucketArn(names.buckets[Ref]!)] = policyStatements(r.Properties!.PolicyDocument, {
      template: storageJson,
      exporters: [],
      names,
    });
  }

  const out: Record<string, RoleMatrix> = {};
  for (const role of built.app.node.findAll().filter((c): c is CfnRole => c instanceof CfnRole)) {
    // The cohort state machine's DistributedMapPolicy names its own executions through Fn::Select,
    // which the local IAM model does not resolve; test/infra/cohort.test.ts checks that role.
    if (role.node.path.startsWith('SonomarkCohort/CohortWorkflow/StateMachine/')) continue;
    const stack = Stack.of(role);
    const template = templates.find(([s]) => s === stack)?.[1];
    if (!template) throw new Error(`role ${role.node.path} is in no known stack`);
    const policy = rolePolicy(template, stack.getLogicalId(role), { template, exporters, names });
    const actions = new Set<string>();
    for (const s of policy.statements)
      if (s.Effect === 'Allow') for (const a of s.Action ?? ['NotAction']) actions.add(a);
    resolved?.set(role.node.path.replace(/\/Resource$/, ''), { policy, bucketPolicies });
    out[role.node.path.replace(/\/Resource$/, '')] = {
      storage: storageColumn(policy, bucketPolicies),
      actions: [...actions].sort(),
      notes: policy.notes,
    };
  }
  return out;
}

const READ = 's3:GetObject,s3:GetObjectVersion';
const RESULTS_RW =
  'dynamodb:GetItem,dynamodb:BatchGetItem,dynamodb:Query,dynamodb:PutItem,dynamodb:UpdateItem,dynamodb:BatchWriteItem,dynamodb:ConditionCheckItem,dynamodb:DescribeTable';
const RESULTS = [`${TABLE}: ${RESULTS_RW}`, `${TABLE}/index/bySite: ${RESULTS_RW}`];
const LAMBDA_BASE = [
  'ec2:AssignPrivateIpAddresses',
  'ec2:CreateNetworkInterface',
  'ec2:DeleteNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:UnassignPrivateIpAddresses',
  'logs:CreateLogStream',
  'logs:PutLogEvents',
  'xray:PutTelemetryRecords',
  'xray:PutTraceSegments',
];
const TABLE_KMS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'];
const expert = {
  // Its features and, since experts live outside the image, its model and the manifest (models/).
  storage: [`artifacts/features/*: ${READ}`, `artifacts/models/*: ${READ}`, ...RESULTS],
  actions: [...LAMBDA_BASE, ...TABLE_KMS, ...RESULTS_RW.split(','), 's3:GetObject', 's3:GetObjectVersion'].sort(),
  notes: [],
};

/** The expected matrix of the default app (GPU compute, endpoint egress). */
const EXPECTED: Record<string, RoleMatrix> = {
  'SonomarkPipeline/Network/Vpc/FlowLog/IAMRole': {
    storage: [],
    actions: ['logs:CreateLogStream', 'logs:DescribeLogStreams', 'logs:PutLogEvents'],
    notes: [],
  },
  'SonomarkPipeline/ValidateUpload/Role': {
    storage: [`uploads/uploads/*: ${READ}`, ...RESULTS],
    actions: [...LAMBDA_BASE, ...TABLE_KMS, ...RESULTS_RW.split(','), 's3:GetObject', 's3:GetObjectVersion'].sort(),
    notes: [],
  },
  'SonomarkPipeline/LoadExperts/Role': {
    // Exactly the manifest object (models/manifest.json), narrower than any probed prefix:
    // no clip, no feature, no expert file, no result.
    storage: [],
    actions: [...LAMBDA_BASE, 'kms:Decrypt', 's3:GetObject', 's3:GetObjectVersion'].sort(),
    notes: [],
  },
  'SonomarkPipeline/ExecutionEnded/ExecutionEnded/Role': {
    // Reads the execution pointer and conditionally marks its scan FAILED; sends to its own DLQ.
    storage: [`${TABLE}: dynamodb:GetItem,dynamodb:UpdateItem`],
    actions: [
      ...LAMBDA_BASE,
      'dynamodb:GetItem',
      'dynamodb:UpdateItem',
      'kms:Decrypt',
      'kms:Encrypt',
      'kms:GenerateDataKey',
      'sqs:SendMessage',
    ].sort(),
    notes: [],
  },
  'SonomarkPipeline/Finalize/Role': {
    storage: RESULTS,
    actions: [...LAMBDA_BASE, ...TABLE_KMS, ...RESULTS_RW.split(',')].sort(),
    notes: [],
  },
  'SonomarkPipeline/RecordFailure/Role': {
    // features/ only: the extractor's error document (cb2d16b); never the raw uploads.
    storage: [`artifacts/features/*: ${READ}`, ...RESULTS],
    actions: [...LAMBDA_BASE, ...TABLE_KMS, ...RESULTS_RW.split(','), 's3:GetObject', 's3:GetObjectVersion'].sort(),
    notes: [],
  },
  'SonomarkPipeline/ExpertDiagnosis/Handler/Role': expert,
  'SonomarkPipeline/ExpertSeverity/Handler/Role': expert,
  'SonomarkPipeline/ExpertTriage/Handler/Role': expert,
  'SonomarkPipeline/ExpertBLines/Handler/Role': expert,
  'SonomarkPipeline/ExpertXrayBacterialViral/Handler/Role': expert,
  'SonomarkPipeline/ExpertXrayCovid/Handler/Role': expert,
  'SonomarkPipeline/ExpertXrayPneumonia/Handler/Role': expert,
  'SonomarkPipeline/Extractor/JobRole': {
    // cohorts/: a cohort batch's item list (CohortStack runs this job in batch mode).
    storage: [
      `uploads/uploads/*: ${READ}`,
      'artifacts/features/*: s3:PutObject,s3:AbortMultipartUpload',
      `artifacts/cohorts/*: ${READ}`,
      // The DICOM pseudonym salt: read, and created on first use (core/dicom/salt-object.ts);
      // an overwrite (PutObject without If-None-Match) is not granted.
      `artifacts/${DICOM_PSEUDONYM_SALT_KEY}: s3:GetObject,s3:PutObject(if-none-match)`,
    ],
    actions: [
      'kms:Decrypt',
      'kms:GenerateDataKey',
      's3:AbortMultipartUpload',
      's3:GetObject',
      's3:GetObjectVersion',
      's3:PutObject',
    ],
    notes: [],
  },
  'SonomarkPipeline/Extractor/InstanceRole': {
    storage: [],
    actions: [],
    notes: [
      'managed policy arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role is not modelled (its statements are not granted)',
    ],
  },
  'SonomarkPipeline/Extractor/Container/ExecutionRole': {
    storage: [],
    actions: [
      'ecr:BatchCheckLayerAvailability',
      'ecr:BatchGetImage',
      'ecr:GetAuthorizationToken',
      'ecr:GetDownloadUrlForLayer',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
    ],
    notes: [],
  },
  'SonomarkPipeline/Workflow/StateMachine/Role': {
    storage: [],
    actions: [
      // DescribeJobs and TerminateJob: the .sync integration cancels a job it abandons.
      'batch:DescribeJobs',
      'batch:SubmitJob',
      'batch:TerminateJob',
      'events:DescribeRule',
      'events:PutRule',
      'events:PutTargets',
      'lambda:InvokeFunction',
      'logs:CreateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:DescribeLogGroups',
      'logs:DescribeResourcePolicies',
      'logs:GetLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:UpdateLogDelivery',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ],
    notes: [],
  },
};

/**
 * The cohort stack's functions (its state machine's role is checked in cohort.test.ts). The
 * plan hashes clips, reads scan items and claims them (PutItem); the models/manifest.json and cohorts/ listing
 * grants are narrower than the prefixes probed here, so they show in `actions` only.
 */
const WRITE_COHORTS = 'artifacts/cohorts/*: s3:PutObject,s3:AbortMultipartUpload';
const S3_RW = ['s3:AbortMultipartUpload', 's3:GetObject', 's3:GetObjectVersion', 's3:PutObject'];
const EXPECTED_COHORT: Record<string, RoleMatrix> = {
  'SonomarkCohort/CohortPlan/Role': {
    storage: [
      `uploads/uploads/*: ${READ}`,
      `artifacts/features/*: ${READ}`,
      WRITE_COHORTS,
      // It claims the scans it sends on (claimScan), as Validate does.
      `${TABLE}: dynamodb:GetItem,dynamodb:PutItem`,
    ],
    actions: [
      ...LAMBDA_BASE,
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'kms:Decrypt',
      'kms:GenerateDataKey',
      ...S3_RW,
    ].sort(),
    notes: [],
  },
  'SonomarkCohort/CohortScore/Role': {
    storage: [`artifacts/features/*: ${READ}`, `artifacts/models/*: ${READ}`, WRITE_COHORTS, ...RESULTS],
    actions: [...LAMBDA_BASE, ...TABLE_KMS, ...RESULTS_RW.split(','), ...S3_RW].sort(),
    notes: [],
  },
  // The report also reads what the cohort page shows: each scan's features, item and results (no write).
  'SonomarkCohort/CohortReport/Role': {
    storage: [
      `artifacts/features/*: ${READ}`,
      `artifacts/cohorts/*: ${READ},s3:PutObject,s3:AbortMultipartUpload`,
      `${TABLE}: dynamodb:GetItem,dynamodb:Query`,
    ],
    actions: [
      ...LAMBDA_BASE,
      'dynamodb:GetItem',
      'dynamodb:Query',
      'kms:Decrypt',
      'kms:GenerateDataKey',
      ...S3_RW,
      's3:ListBucket',
    ].sort(),
    notes: [],
  },
};

describe('the permission matrix of the default app', () => {
  let matrix: Record<string, RoleMatrix>;
  const resolved = new Map<string, { policy: RolePolicy; bucketPolicies: Record<string, RolePolicy['statements']> }>();
  beforeAll(() => {
    matrix = permissionMatrix(synth(), resolved);
  });

  it('under the extractor role as local mode enforces it: the salt is created on first use, an unconditional overwrite is denied', async () => {
    // Prepare: an S3 client with the local IAM guard for the synthesized job role, in front of a
    // one-object store that honours If-None-Match as S3 does (nothing leaves the process).
    const { policy, bucketPolicies } = resolved.get('SonomarkPipeline/Extractor/JobRole')!;
    const s3 = new S3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'local-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      forcePathStyle: true,
    });
    enforceRolePolicy(s3, 's3', policy, bucketPolicies);
    const store: { body?: string; puts: number } = { puts: 0 };
    const s3Error = (name: string, httpStatusCode: number) =>
      new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode }, message: name });
    (s3.middlewareStack.add as (m: unknown, o: unknown) => void)(
      (_next: unknown, context: { commandName?: string }) => async (args: { input: Record<string, unknown> }) => {
        if (context.commandName === 'GetObjectCommand') {
          if (store.body === undefined) throw s3Error('AccessDenied', 403); // no s3:ListBucket: a missing key reads 403
          return { output: { Body: s3Body(store.body), $metadata: {} } };
        }
        if (args.input.IfNoneMatch === '*' && store.body !== undefined) throw s3Error('PreconditionFailed', 412);
        store.body = String(args.input.Body);
        store.puts++;
        return { output: { $metadata: {} } };
      },
      { step: 'build', name: 'oneObjectStore' },
    );
    const bucket = BUCKETS.artifacts;
    // Act: first use, a second container's use, then an overwrite without the header
    const salt = await readOrCreatePseudonymSalt(s3, bucket);
    const again = await readOrCreatePseudonymSalt(s3, bucket);
    const overwrite = s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: DICOM_PSEUDONYM_SALT_KEY, Body: 'f'.repeat(64) }),
    );
    // Assess
    expect(salt).toMatch(/^[0-9a-f]{64}$/);
    expect(again).toBe(salt);
    await expect(overwrite).rejects.toMatchObject({
      name: 'AccessDenied',
      message: expect.stringMatching(
        /not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::artifacts\/secrets\/…"/,
      ),
    });
    expect({ body: store.body, puts: store.puts }).toEqual({ body: `${salt}\n`, puts: 1 });
  });

  it('is exactly the expected one for the pipeline stack: no role may do more (or less) to the storage', () => {
    const pipeline = Object.fromEntries(Object.entries(matrix).filter(([p]) => p.startsWith('SonomarkPipeline/')));
    expect(pipeline).toEqual(EXPECTED);
  });

  it('is exactly the expected one for the cohort stack', () => {
    const cohort = Object.fromEntries(Object.entries(matrix).filter(([p]) => p.startsWith('SonomarkCohort/')));
    expect(cohort).toEqual(EXPECTED_COHORT);
  });

  it('gives the storage and trigger stacks no role that can reach a bucket or the table', () => {
    const others = Object.entries(matrix).filter(
      ([p]) => !p.startsWith('SonomarkPipeline/') && !p.startsWith('SonomarkCohort/'),
    );
    expect(others.map(([p, m]) => [p, m.storage])).toEqual(others.map(([p]) => [p, []]));
  });

  it('lets exactly the extractor job role read and create (never overwrite) the DICOM pseudonym salt object, and no role delete it', () => {
    const label = `artifacts/${DICOM_PSEUDONYM_SALT_KEY}: `;
    const holders = Object.entries(matrix)
      .filter(([, m]) => m.storage.some((r) => r.startsWith(label)))
      .map(([p, m]) => [p, m.storage.find((r) => r.startsWith(label))]);
    expect(holders).toEqual([
      ['SonomarkPipeline/Extractor/JobRole', `${label}s3:GetObject,s3:PutObject(if-none-match)`],
    ]);
  });

  it('grants no role raw clips except the two steps that read them, and no role writes to uploads/', () => {
    const readers = Object.entries(matrix)
      .filter(([, m]) => m.storage.some((r) => r.startsWith('uploads/uploads/*')))
      .map(([p]) => p);
    // The cohort plan hashes clips for their scan ids, as Validate does.
    expect(readers.sort()).toEqual([
      'SonomarkCohort/CohortPlan/Role',
      'SonomarkPipeline/Extractor/JobRole',
      'SonomarkPipeline/ValidateUpload/Role',
    ]);
    for (const m of Object.values(matrix))
      expect(m.storage.filter((r) => r.startsWith('uploads') && /Put|Delete/.test(r))).toEqual([]);
  });
});

describe("the permission matrix in computeMode 'lambda'", () => {
  let matrix: Record<string, RoleMatrix>;
  beforeAll(() => {
    matrix = permissionMatrix(synth({ context: { sonomark: { computeMode: 'lambda' } } }), new Map());
  });

  it("gives the extractor function exactly the Batch job role's storage access, plus what every function has", () => {
    // Prepare
    const job = EXPECTED['SonomarkPipeline/Extractor/JobRole']!;
    // Assess
    expect(matrix['SonomarkPipeline/ExtractorFunction/Role']).toEqual({
      storage: job.storage,
      actions: [...new Set([...LAMBDA_BASE, ...job.actions])].sort(),
      notes: [],
    });
  });

  it('has no Batch role, and the state machine may invoke functions but do nothing to Batch', () => {
    // Prepare
    const pipeline = Object.fromEntries(Object.entries(matrix).filter(([p]) => p.startsWith('SonomarkPipeline/')));
    const machine = EXPECTED['SonomarkPipeline/Workflow/StateMachine/Role']!;
    const unchanged = Object.entries(EXPECTED).filter(
      ([p]) => !p.startsWith('SonomarkPipeline/Extractor/') && !p.startsWith('SonomarkPipeline/Workflow/'),
    );
    // Assess: the other roles as in the default app; Batch's .sync actions and its events rule are gone.
    expect(pipeline).toEqual({
      ...Object.fromEntries(unchanged),
      'SonomarkPipeline/ExtractorFunction/Role': pipeline['SonomarkPipeline/ExtractorFunction/Role'],
      'SonomarkPipeline/Workflow/StateMachine/Role': {
        ...machine,
        actions: machine.actions.filter((a) => !a.startsWith('batch:') && !a.startsWith('events:')),
      },
    });
  });
});
