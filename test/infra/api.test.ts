/**
 * ApiStack: auth on every route, request validation, access logs, throttling, one role per
 * registered site confined by s3:prefix and dynamodb:LeadingKeys, the monthly invoice
 * schedule, and cdk-nag clean. Absent when no site is registered (the default).
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, HIPAASecurityChecks, type NagPack } from 'cdk-nag';
import { API_ROUTES, API_THROTTLE } from '../../lib/stacks/api-stack';
import { synth, type Synthesized } from './helpers';

const SITES = [
  { id: 'site-a', displayName: 'Hospital A' },
  { id: 'site-ab', displayName: 'Clinic AB', prices: { lambdaArm64: { usdPerGbSecond: 0.00001, usdPerRequest: 0 } } },
];

let built: Synthesized;
let template: Template;

beforeAll(() => {
  // Prepare / Act: nag packs run as validation plugins and throw on any unacknowledged error.
  built = synth({ context: { sonomark: { sites: SITES } } });
  template = Template.fromStack(built.api!);
});

type Resource = { Properties: Record<string, any> };
const resources = (type: string): Resource[] => Object.values(template.findResources(type)) as Resource[];
const json = (v: unknown): string => JSON.stringify(v);

/** The statements of the policies attached to the site role whose description names `siteId`. */
function siteStatements(siteId: string): any[] {
  const roles = template.findResources('AWS::IAM::Role', {
    Properties: {
      Description: `sonomark site ${siteId}: the API, and its own uploads, features, invoices and results`,
    },
  });
  const [logicalId] = Object.keys(roles);
  expect(logicalId).toBeDefined();
  return resources('AWS::IAM::Policy')
    .filter((p) => json(p.Properties.Roles).includes(`"${logicalId}"`))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

describe('ApiStack', () => {
  test('exists only with a site registry', () => {
    // Assess
    expect(synth({ nag: false }).api).toBeUndefined();
    expect(built.api).toBeDefined();
  });

  test('every route exists and every method is IAM-authorized with a request validator', () => {
    // Prepare
    const methods = resources('AWS::ApiGateway::Method');
    // Assess
    expect(methods).toHaveLength(API_ROUTES.length);
    for (const m of methods) {
      expect(m.Properties.AuthorizationType).toBe('AWS_IAM');
      expect(m.Properties.RequestValidatorId).toBeDefined();
    }
    expect(methods.map((m) => m.Properties.HttpMethod).sort()).toEqual(API_ROUTES.map((r) => r.method).sort());
    const usage = methods.find((m) => json(m.Properties.RequestParameters ?? {}).includes('querystring.month'));
    expect(usage?.Properties.RequestParameters['method.request.querystring.month']).toBe(true);
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
  });

  test('the stage has KMS-encrypted access logs, throttling and tracing, and no cache', () => {
    // Assess
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      AccessLogSetting: { DestinationArn: { 'Fn::GetAtt': [Match.anyValue(), 'Arn'] } },
      TracingEnabled: true,
      MethodSettings: [
        Match.objectLike({
          ThrottlingRateLimit: API_THROTTLE.rateLimit,
          ThrottlingBurstLimit: API_THROTTLE.burstLimit,
          DataTraceEnabled: false,
        }),
      ],
    });
    const stage = resources('AWS::ApiGateway::Stage')[0]!;
    expect(stage.Properties.CacheClusterEnabled).toBeFalsy();
    for (const lg of resources('AWS::Logs::LogGroup')) expect(lg.Properties.KmsKeyId).toBeDefined();
    // The access log format holds no path values or query strings.
    expect(stage.Properties.AccessLogSetting.Format).not.toMatch(/\$context\.(path|requestOverride|querystring)/);
  });

  test.each(SITES.map((s) => s.id))("%s's role reaches only its own prefixes and partition", (siteId) => {
    // Prepare
    const statements = siteStatements(siteId);
    const text = json(statements);
    const other = SITES.map((s) => s.id).find((s) => s !== siteId)!;
    // Assess: S3 objects and listing under the site's prefixes only
    expect(text).toContain(`/uploads/${siteId}/*`);
    expect(text).toContain(`/features/${siteId}/*`);
    expect(text).toContain(`/invoices/${siteId}/*`);
    expect(text).not.toContain(`/${other}/`);
    const lists = statements.filter((s) => json(s.Action).includes('s3:ListBucket'));
    expect(lists).toHaveLength(2);
    for (const s of lists) {
      const prefixes = s.Condition.StringLike['s3:prefix'] as string[];
      for (const p of prefixes) expect(p).toMatch(new RegExp(`^(uploads|features|invoices)/${siteId}/\\*$`));
    }
    // DynamoDB: reads only, every partition key the site's (table SITE#{site}#…, index SITE#{site})
    const ddb = statements.filter((s) => json(s.Action).includes('dynamodb:'));
    expect(ddb).toHaveLength(1);
    expect(ddb[0].Action.sort()).toEqual(['dynamodb:GetItem', 'dynamodb:Query']);
    expect(ddb[0].Condition).toEqual({
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`SITE#${siteId}#*`, `SITE#${siteId}`] },
      Null: { 'dynamodb:LeadingKeys': 'false' },
    });
    // No wildcard action; the API's routes only
    for (const s of statements) for (const a of [s.Action].flat()) expect(a).not.toMatch(/\*/);
    const invoke = statements.find((s) => json(s.Action).includes('execute-api:Invoke'));
    expect(invoke.Resource).toHaveLength(API_ROUTES.length);
  });

  test("the API function maps each site role's unique id to its site and knows each site's rates", () => {
    // Prepare
    const fn = resources('AWS::Lambda::Function').find((f) =>
      json(f.Properties.Environment?.Variables ?? {}).includes('SITE_ROLE_IDS'),
    )!;
    const vars = fn.Properties.Environment.Variables;
    // Assess
    expect(json(vars.SITE_ROLE_IDS)).toContain('RoleId');
    const registry = JSON.parse(vars.SITE_REGISTRY);
    expect(Object.keys(registry)).toEqual(['site-a', 'site-ab']);
    expect(registry['site-ab'].rates.lambda.usdPerGbSecond).toBe(0.00001);
    expect(registry['site-a'].rates.lambda.usdPerGbSecond).not.toBe(0.00001);
  });

  test('GET /cohorts/{runId}/report: a method with its path parameter, callable by each site role', () => {
    // Prepare
    const methods = resources('AWS::ApiGateway::Method');
    const report = methods.filter((m) => json(m.Properties.RequestParameters ?? {}).includes('path.runId'));
    const paths = resources('AWS::ApiGateway::Resource').map((r) => r.Properties.PathPart);
    // Assess
    expect(report).toHaveLength(1);
    expect(report[0]!.Properties).toMatchObject({
      HttpMethod: 'GET',
      AuthorizationType: 'AWS_IAM',
      RequestParameters: { 'method.request.path.runId': true },
    });
    expect(paths).toEqual(expect.arrayContaining(['cohorts', '{runId}', 'report']));
    for (const site of SITES) {
      const invoke = siteStatements(site.id).find((st) => json(st.Action).includes('execute-api:Invoke'));
      expect(json(invoke.Resource)).toContain('/GET/cohorts/*/report');
    }
  });

  test("the API function reads only the registered sites' cohort pages, no other cohort object", () => {
    // Prepare: the function's role and its policy statements
    const fn = resources('AWS::Lambda::Function').find((f) =>
      json(f.Properties.Environment?.Variables ?? {}).includes('SITE_ROLE_IDS'),
    )!;
    const roleId = fn.Properties.Role['Fn::GetAtt'][0] as string;
    const statements = resources('AWS::IAM::Policy')
      .filter((p) => json(p.Properties.Roles).includes(`"${roleId}"`))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    const reads = statements.filter((st) => json(st.Action).includes('s3:GetObject'));
    // Assess: one statement, GetObject alone, on cohorts/{site}/*/report.html of each registered site
    expect(fn.Properties.Environment.Variables.ARTIFACTS_BUCKET).toBeDefined();
    expect(reads).toHaveLength(1);
    expect(reads[0].Action).toBe('s3:GetObject');
    const keys = (reads[0].Resource as any[]).map((r) => r['Fn::Join'][1].at(-1) as string);
    expect(keys).toEqual(['/cohorts/site-a/*/report.html', '/cohorts/site-ab/*/report.html']);
    // No listing (a missing page reads as 403, answered 404) and no other S3 read anywhere
    expect(json(statements)).not.toContain('s3:ListBucket');
    expect(json(statements)).not.toMatch(/cohorts\/\*"/);
    // Decrypting the SSE-KMS page is the role's existing kms:Decrypt on the one key
    expect(json(statements)).toContain('kms:Decrypt');
  });

  test('the invoice job runs monthly on EventBridge Scheduler, KMS-encrypted, with a dead-letter queue', () => {
    // Assess
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 6 1 * ? *)',
      KmsKeyArn: Match.anyValue(),
      Target: Match.objectLike({ DeadLetterConfig: { Arn: Match.anyValue() } }),
    });
    // Its role may invoke the function and encrypt what it sends to the KMS-encrypted queue.
    const [roleId] = Object.keys(
      template.findResources('AWS::IAM::Role', {
        Properties: { Description: 'sonomark monthly invoice schedule: invokes the invoice function' },
      }),
    );
    const statements = resources('AWS::IAM::Policy')
      .filter((p) => json(p.Properties.Roles).includes(`"${roleId}"`))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(json(statements)).toContain('lambda:InvokeFunction');
    expect(json(statements)).toContain('kms:GenerateDataKey');
  });

  test.each([
    ['AwsSolutions', new AwsSolutionsChecks()],
    ['HIPAA Security', new HIPAASecurityChecks()],
  ])('%s: no unacknowledged findings', (_name, pack: NagPack) => {
    // Assess
    const found = pack
      .validateScope(built.app)
      .violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} ${r.constructPath ?? ''}`));
    expect(found).toEqual([]);
  });
});
