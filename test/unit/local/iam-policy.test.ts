/**
 * The IAM evaluator local mode enforces (local/iam-policy.ts): how the templates'
 * statements resolve to local ARNs, and IAM's decision rules over them.
 */
import {
  evaluate,
  localPermissions,
  type IamTemplate,
  type PolicyStatement,
  type RolePolicy,
} from '../../../local/iam-policy';

const role = (...statements: PolicyStatement[]): RolePolicy => ({
  roleArn: 'arn:aws:iam::000000000000:role/R',
  statements,
  notes: [],
});
const allow = (Action: string[], Resource: string[], extra: Partial<PolicyStatement> = {}): PolicyStatement => ({
  Effect: 'Allow',
  Action,
  Resource,
  ...extra,
});
const deny = (Action: string[], Resource: string[], extra: Partial<PolicyStatement> = {}): PolicyStatement => ({
  Effect: 'Deny',
  Action,
  Resource,
  ...extra,
});
const OBJ = 'arn:aws:s3:::b/features/x/1.json';

describe('IAM decision rules', () => {
  it('allows an action and resource an Allow names, with * and ? wildcards; actions match case-insensitively', () => {
    const r = role(
      allow(['s3:get*'], ['arn:aws:s3:::b/features/*']),
      allow(['dynamodb:Query'], ['arn:aws:dynamodb:*:*:table/t?']),
    );
    expect(evaluate(r, 's3:GetObject', OBJ).allowed).toBe(true);
    expect(evaluate(r, 'dynamodb:Query', 'arn:aws:dynamodb:local-1:000000000000:table/t1').allowed).toBe(true);
    expect(evaluate(r, 'dynamodb:Query', 'arn:aws:dynamodb:local-1:000000000000:table/t12').allowed).toBe(false);
  });

  it('denies implicitly what no statement allows: another prefix, another action, an index of an allowed table', () => {
    const r = role(
      allow(['s3:GetObject'], ['arn:aws:s3:::b/features/*']),
      allow(['dynamodb:Query'], ['arn:aws:dynamodb:local-1:0:table/t']),
    );
    const other = evaluate(r, 's3:GetObject', 'arn:aws:s3:::b/uploads/clip.mp4');
    expect(other).toMatchObject({ allowed: false });
    expect(other.reason).toMatch(/no identity-based or resource-based policy allows the s3:GetObject action/);
    expect(evaluate(r, 's3:PutObject', OBJ).allowed).toBe(false);
    // Resource ARNs are case-sensitive.
    expect(evaluate(r, 's3:GetObject', 'arn:aws:s3:::b/Features/x').allowed).toBe(false);
    expect(evaluate(r, 'dynamodb:Query', 'arn:aws:dynamodb:local-1:0:table/t/index/bySite').allowed).toBe(false);
  });

  it('lets an explicit Deny win over any Allow, in the role or the resource policy', () => {
    const r = role(allow(['s3:*'], ['*']), deny(['s3:GetObject'], ['arn:aws:s3:::b/features/*']));
    expect(evaluate(r, 's3:GetObject', OBJ)).toMatchObject({ allowed: false });
    expect(evaluate(r, 's3:GetObject', OBJ).reason).toMatch(/explicit deny in the role's identity-based policy/);
    expect(evaluate(r, 's3:PutObject', OBJ).allowed).toBe(true);
    const bucketDeny = [deny(['s3:*'], ['arn:aws:s3:::b/*'], { Principal: ['*'] })];
    expect(evaluate(role(allow(['s3:*'], ['*'])), 's3:PutObject', OBJ, bucketDeny).allowed).toBe(false);
  });

  it('honours NotAction and NotResource', () => {
    const r = role(
      { Effect: 'Allow', NotAction: ['s3:DeleteObject'], Resource: ['arn:aws:s3:::b/*'] },
      { Effect: 'Deny', Action: ['s3:PutObject'], NotResource: ['arn:aws:s3:::b/features/*'] },
    );
    expect(evaluate(r, 's3:GetObject', OBJ).allowed).toBe(true);
    expect(evaluate(r, 's3:DeleteObject', OBJ).allowed).toBe(false);
    expect(evaluate(r, 's3:PutObject', OBJ).allowed).toBe(true);
    expect(evaluate(r, 's3:PutObject', 'arn:aws:s3:::b/uploads/x').allowed).toBe(false);
  });

  it('grants through a resource policy that names the role, and not one that names another principal', () => {
    const r = role();
    const mine = [allow(['s3:GetObject'], ['arn:aws:s3:::b/*'], { Principal: [r.roleArn] })];
    const theirs = [allow(['s3:GetObject'], ['arn:aws:s3:::b/*'], { Principal: ['arn:aws:iam::0:role/Other'] })];
    expect(evaluate(r, 's3:GetObject', OBJ, mine).allowed).toBe(true);
    expect(evaluate(r, 's3:GetObject', OBJ, theirs).allowed).toBe(false);
  });

  it('evaluates aws:SecureTransport (TLS in AWS): the enforce-SSL deny of the buckets does not apply', () => {
    const sslDeny = [
      deny(['s3:*'], ['arn:aws:s3:::b', 'arn:aws:s3:::b/*'], {
        Principal: ['*'],
        Condition: { Bool: { 'aws:SecureTransport': ['false'] } },
      }),
    ];
    const r = role(allow(['s3:GetObject'], ['arn:aws:s3:::b/*']));
    expect(evaluate(r, 's3:GetObject', OBJ, sslDeny)).toMatchObject({ allowed: true, unevaluated: [] });
  });

  it("evaluates Null and string operators on the request's own keys: a create-only PutObject grant", () => {
    // The shape lib/constructs/grants.ts writes for the DICOM pseudonym salt.
    const createOnly = role(allow(['s3:PutObject'], [OBJ], { Condition: { Null: { 's3:if-none-match': ['false'] } } }));
    const write = (ifNoneMatch: string | undefined) =>
      evaluate(createOnly, 's3:PutObject', OBJ, [], { 's3:if-none-match': ifNoneMatch, 's3:if-match': undefined });
    expect(write('*')).toMatchObject({ allowed: true, unevaluated: [] });
    expect(write(undefined)).toMatchObject({ allowed: false, unevaluated: [] });
    expect(write(undefined).reason).toMatch(
      /no identity-based or resource-based policy allows the s3:PutObject action$/,
    );
    // Without the request's keys (a command local mode cannot read them from), still conservative.
    expect(evaluate(createOnly, 's3:PutObject', OBJ).allowed).toBe(false);
    // An absent key matches no positive operator, every negated one, and anything IfExists.
    const on = (Condition: Record<string, Record<string, string[]>>) =>
      evaluate(role(allow(['s3:PutObject'], [OBJ], { Condition })), 's3:PutObject', OBJ, [], {
        's3:if-none-match': undefined,
      }).allowed;
    expect(on({ StringEquals: { 's3:if-none-match': ['*'] } })).toBe(false);
    expect(on({ StringNotEquals: { 's3:if-none-match': ['*'] } })).toBe(true);
    expect(on({ StringEqualsIfExists: { 's3:if-none-match': ['*'] } })).toBe(true);
    expect(on({ Null: { 's3:if-none-match': ['true'] } })).toBe(true);
    // A Deny on an unconditional overwrite applies to exactly that request.
    const denyOverwrite = role(
      allow(['s3:PutObject'], [OBJ]),
      deny(['s3:PutObject'], [OBJ], { Condition: { Null: { 's3:if-none-match': ['true'] } } }),
    );
    expect(evaluate(denyOverwrite, 's3:PutObject', OBJ, [], { 's3:if-none-match': undefined }).allowed).toBe(false);
    expect(evaluate(denyOverwrite, 's3:PutObject', OBJ, [], { 's3:if-none-match': '*' }).allowed).toBe(true);
  });

  it('treats a condition it cannot evaluate conservatively, and says so', () => {
    const cond = { StringEquals: { 's3:ExistingObjectTag/kind': ['x'] } };
    const allowIf = role(allow(['s3:GetObject'], ['*'], { Condition: cond }));
    const a = evaluate(allowIf, 's3:GetObject', OBJ);
    expect(a.allowed).toBe(false);
    expect(a.reason).toMatch(/StringEquals s3:ExistingObjectTag\/kind was not counted/);
    const denyIf = role(allow(['s3:GetObject'], ['*']), deny(['s3:GetObject'], ['*'], { Condition: cond }));
    const d = evaluate(denyIf, 's3:GetObject', OBJ);
    expect(d.allowed).toBe(false);
    expect(d.reason).toMatch(/cannot be evaluated locally, so it is assumed to hold/);
  });
});

describe('role policies from the templates', () => {
  const storage: IamTemplate = {
    Resources: {
      Up: { Type: 'AWS::S3::Bucket' },
      Tbl: { Type: 'AWS::DynamoDB::Table' },
      Key: { Type: 'AWS::KMS::Key' },
      UpPolicy: {
        Type: 'AWS::S3::BucketPolicy',
        Properties: {
          Bucket: { Ref: 'Up' },
          PolicyDocument: {
            Statement: [
              {
                Effect: 'Deny',
                Principal: { AWS: '*' },
                Action: 's3:*',
                Resource: [
                  { 'Fn::GetAtt': ['Up', 'Arn'] },
                  { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Up', 'Arn'] }, '/*']] },
                ],
                Condition: { Bool: { 'aws:SecureTransport': 'false' } },
              },
            ],
          },
        },
      },
    },
    Outputs: {
      UpArn: { Value: { 'Fn::GetAtt': ['Up', 'Arn'] }, Export: { Name: 'S:UpArn' } },
      TblArn: { Value: { 'Fn::GetAtt': ['Tbl', 'Arn'] }, Export: { Name: 'S:TblArn' } },
    },
  };
  const pipeline: IamTemplate = {
    Resources: {
      FnRole: { Type: 'AWS::IAM::Role', Properties: { ManagedPolicyArns: ['arn:aws:iam::aws:policy/Thing'] } },
      Fn: { Type: 'AWS::Lambda::Function', Properties: { Role: { 'Fn::GetAtt': ['FnRole', 'Arn'] } } },
      FnPolicy: {
        Type: 'AWS::IAM::Policy',
        Properties: {
          Roles: [{ Ref: 'FnRole' }],
          PolicyDocument: {
            Statement: [
              {
                Effect: 'Allow',
                Action: 's3:GetObject',
                Resource: { 'Fn::Join': ['', [{ 'Fn::ImportValue': 'S:UpArn' }, '/uploads/*']] },
              },
              {
                Effect: 'Allow',
                Action: ['dynamodb:Query'],
                Resource: [
                  { 'Fn::ImportValue': 'S:TblArn' },
                  { 'Fn::Sub': ['${T}/index/*', { T: { 'Fn::ImportValue': 'S:TblArn' } }] },
                ],
              },
              {
                Effect: 'Allow',
                Action: 'logs:PutLogEvents',
                Resource: { 'Fn::Sub': 'arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:x' },
              },
            ],
          },
        },
      },
      JobRole: { Type: 'AWS::IAM::Role', Properties: {} },
      Job: {
        Type: 'AWS::Batch::JobDefinition',
        Properties: { ContainerProperties: { JobRoleArn: { 'Fn::GetAtt': ['JobRole', 'Arn'] } } },
      },
    },
  };
  const names = { buckets: { Up: 'uploads-local' }, tables: { Tbl: 'results-local' } };

  it("resolve imports, joins, subs and pseudo parameters to the local buckets' and table's ARNs", () => {
    const p = localPermissions(pipeline, storage, names);
    expect(p.functions.Fn?.statements.map((s) => s.Resource)).toEqual([
      ['arn:aws:s3:::uploads-local/uploads/*'],
      [
        'arn:aws:dynamodb:local-1:000000000000:table/results-local',
        'arn:aws:dynamodb:local-1:000000000000:table/results-local/index/*',
      ],
      ['arn:aws:logs:local-1:000000000000:x'],
    ]);
    expect(p.functions.Fn?.notes).toEqual([expect.stringMatching(/managed policy .*Thing is not modelled/)]);
    expect(p.extractJob).toMatchObject({ roleArn: 'arn:aws:iam::000000000000:role/JobRole', statements: [] });
    expect(p.bucketPolicies['arn:aws:s3:::uploads-local']?.[0]).toMatchObject({
      Effect: 'Deny',
      Principal: ['*'],
      Condition: { Bool: { 'aws:SecureTransport': ['false'] } },
    });
  });

  it('refuse an import no stack exports and an intrinsic they cannot resolve', () => {
    const broken = (resource: unknown): IamTemplate => ({
      Resources: {
        ...pipeline.Resources,
        FnPolicy: {
          Type: 'AWS::IAM::Policy',
          Properties: {
            Roles: [{ Ref: 'FnRole' }],
            PolicyDocument: { Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: resource as never }] },
          },
        },
      },
    });
    expect(() => localPermissions(broken({ 'Fn::ImportValue': 'S:Nope' }), storage, names)).toThrow(
      /Fn::ImportValue names S:Nope, which no synthesized stack exports/,
    );
    expect(() => localPermissions(broken({ 'Fn::If': ['c', 'a', 'b'] }), storage, names)).toThrow(
      /Unsupported CloudFormation intrinsic in an IAM policy: Fn::If/,
    );
  });
});
