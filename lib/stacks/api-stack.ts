/**
 * The multi-site API and pay-per-scan invoicing: an API Gateway REST API over the SiteApi
 * function (core/site-api.ts), one IAM role per registered site (config `sites`), and the
 * monthly invoice job on an EventBridge Scheduler schedule.
 *
 * A stack of its own: local mode binds every Lambda function of PipelineStack to a workflow
 * task, and neither function here is one; and it exists only when the registry has sites
 * (no site, no caller), so the default deployment is unchanged.
 *
 * Authorization is AWS_IAM rather than Cognito: a site is an organisation whose systems
 * (PACS exporters, research pipelines) call the API unattended, which IAM roles serve with
 * short-lived SigV4 credentials and no passwords to store; the same role carries the
 * `s3:prefix` / `dynamodb:LeadingKeys` conditions that confine the site's own direct reads, so
 * one principal per site is both its API identity and its data boundary. The handler maps
 * the role's unique id (requestContext.identity.caller `AROA…:session`) to the site; nothing
 * in a request can name another site. Cognito user pools would add per-person accounts,
 * which sites manage better in their own identity provider federated to these roles.
 */
import { Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { ENV, FUNCTIONS, pascalName } from '../../core/contract';
import { cohortReportKey } from '../../core/cohort-run';
import { INVOICES_PREFIX, siteItemsPrefix, sitePk, sitePrefixes, TABLE_KEYS, UPLOADS_PREFIX } from '../../core/keys';
import type { ScanRates } from '../../core/pricing';
import { sitePriceTable, type SonomarkConfig } from '../config';
import { SonomarkFunction } from '../constructs/sonomark-function';
import { scanRates } from '../rates';

export interface ApiStackProps extends StackProps {
  readonly config: SonomarkConfig;
  readonly key: kms.IKey;
  readonly uploadsBucket: s3.IBucket;
  /** Holds features/{site}/, invoices/{site}/ and the cohort pages cohorts/{site}/{runId}/report.html. */
  readonly artifactsBucket: s3.IBucket;
  readonly resultsTable: dynamodb.ITable;
  readonly vpc: ec2.IVpc;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Each expert's name and memory, for each site's rates. */
  readonly experts: readonly { readonly name: string; readonly memoryMb: number }[];
}

/** The API's routes: each one IAM-authorized and served by the one function. */
export const API_ROUTES = [
  { method: 'POST', path: '/uploads' },
  { method: 'GET', path: '/scans' },
  { method: 'GET', path: '/scans/{scanId}' },
  { method: 'GET', path: '/studies/{studyId}/scans' },
  { method: 'GET', path: '/usage' },
  { method: 'GET', path: '/cohorts/{runId}/report' },
] as const;

/** API Gateway stage throttling (every route): a site's batch uploader, not a public website. */
export const API_THROTTLE = { rateLimit: 20, burstLimit: 40 } as const;

export class ApiStack extends Stack {
  readonly api: apigw.RestApi;
  readonly apiFunction: SonomarkFunction;
  readonly invoiceFunction: SonomarkFunction;
  /** One role per registered site, by site id. */
  readonly siteRoles: Record<string, iam.Role> = {};
  readonly accessLogGroup: logs.LogGroup;
  readonly invoiceSchedule: scheduler.Schedule;

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);
    const { config, key } = props;
    const logRetention = config.logRetentionDays as logs.RetentionDays;
    Validations.of(this).acknowledge({
      id: 'HIPAA.Security-IAMNoInlinePolicy',
      reason:
        'Inline policies here are the DefaultPolicy documents of the two function roles and each site role, every one scoped to named resources and deployed with its role; none is shared between roles, so a managed policy would add indirection without narrowing access.',
    });

    const registry = Object.fromEntries(
      config.sites.map((site): [string, { displayName: string; rates: ScanRates }] => [
        site.id,
        {
          displayName: site.displayName,
          rates: scanRates({ ...config, prices: sitePriceTable(config, site) }, props.experts),
        },
      ]),
    );
    const common = {
      encryptionKey: key,
      logRetention,
      vpc: props.vpc,
      securityGroup: props.securityGroup,
    };

    // --- The API function: read-only on the table, signs upload POSTs for uploads/ ---
    this.apiFunction = new SonomarkFunction(this, FUNCTIONS.api.id, {
      ...common,
      handler: FUNCTIONS.api,
      timeout: Duration.seconds(10),
      reservedConcurrentExecutions: 20,
      environment: {
        [ENV.siteRegistry]: JSON.stringify(registry),
        [ENV.maxUploadBytes]: String(config.maxUploadBytes),
      },
    });
    this.apiFunction.function.addEnvironment(ENV.resultsTable, props.resultsTable.tableName);
    this.apiFunction.function.addEnvironment(ENV.uploadsBucket, props.uploadsBucket.bucketName);
    grantReadItems(this.apiFunction.role, props.resultsTable, key);
    // A presigned POST carries the signer's authority: S3 accepts it only if this role may put
    // the object. The policy in each POST then narrows it to one key, type and size.
    this.apiFunction.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.uploadsBucket.arnForObjects(`${UPLOADS_PREFIX}*`)],
      }),
    );
    this.apiFunction.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['kms:GenerateDataKey'], resources: [key.keyArn] }),
    );
    // GET /cohorts/{runId}/report: HeadObject, and the presigned GET it hands out (S3 checks the
    // signer's permission when the link is used), on each registered site's cohort pages only.
    // `*` stands for the run id (an ARN wildcard cannot stop at a `/`; only cohort functions write
    // under cohorts/); the trailing `/` after the site keeps site-a from matching site-ab's runs.
    // kms:Decrypt for the SSE-KMS object comes with grantReadItems above.
    this.apiFunction.function.addEnvironment(ENV.artifactsBucket, props.artifactsBucket.bucketName);
    if (config.sites.length > 0) {
      this.apiFunction.role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['s3:GetObject'],
          resources: config.sites.map((site) => props.artifactsBucket.arnForObjects(cohortReportKey(site.id, '*'))),
        }),
      );
    }

    // --- The REST API ---
    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: logRetention,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.api = new apigw.RestApi(this, 'RestApi', {
      description: 'sonomark multi-site API: upload links, results and usage, each scoped to the caller site',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // Execution logs need the account-level CloudWatch role; CDK creates it with the API.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: 'v1',
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogGroup),
        // Who (the caller's role id), what route, the outcome: no path values, bodies or query strings.
        accessLogFormat: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: apigw.AccessLogField.contextRequestId(),
            caller: apigw.AccessLogField.contextIdentityCaller(),
            resourcePath: apigw.AccessLogField.contextResourcePath(),
            httpMethod: apigw.AccessLogField.contextHttpMethod(),
            status: apigw.AccessLogField.contextStatus(),
            requestTime: apigw.AccessLogField.contextRequestTime(),
            responseLatency: apigw.AccessLogField.contextResponseLatency(),
          }),
        ),
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        tracingEnabled: true,
        throttlingRateLimit: API_THROTTLE.rateLimit,
        throttlingBurstLimit: API_THROTTLE.burstLimit,
      },
      defaultMethodOptions: { authorizationType: apigw.AuthorizationType.IAM },
      disableExecuteApiEndpoint: false,
    });
    const validator = this.api.addRequestValidator('Validator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const uploadModel = this.api.addModel('UploadRequest', {
      contentType: 'application/json',
      schema: {
        type: apigw.JsonSchemaType.OBJECT,
        required: ['studyId', 'fileName'],
        additionalProperties: false,
        properties: {
          studyId: { type: apigw.JsonSchemaType.STRING, pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' },
          fileName: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 512 },
          size: { type: apigw.JsonSchemaType.INTEGER, minimum: 1 },
          contentType: { type: apigw.JsonSchemaType.STRING, maxLength: 100 },
        },
      },
    });
    const integration = new apigw.LambdaIntegration(this.apiFunction.function, { proxy: true });
    const method = (
      resource: apigw.IResource,
      httpMethod: string,
      extra: Partial<apigw.MethodOptions> = {},
    ): apigw.Method =>
      resource.addMethod(httpMethod, integration, {
        authorizationType: apigw.AuthorizationType.IAM,
        requestValidator: validator,
        ...extra,
      });
    method(this.api.root.addResource('uploads'), 'POST', { requestModels: { 'application/json': uploadModel } });
    const scans = this.api.root.addResource('scans');
    method(scans, 'GET', {
      requestParameters: {
        'method.request.querystring.from': false,
        'method.request.querystring.to': false,
        'method.request.querystring.limit': false,
      },
    });
    method(scans.addResource('{scanId}'), 'GET', { requestParameters: { 'method.request.path.scanId': true } });
    method(this.api.root.addResource('studies').addResource('{studyId}').addResource('scans'), 'GET', {
      requestParameters: { 'method.request.path.studyId': true, 'method.request.querystring.limit': false },
    });
    method(this.api.root.addResource('usage'), 'GET', {
      requestParameters: { 'method.request.querystring.month': true },
    });
    method(this.api.root.addResource('cohorts').addResource('{runId}').addResource('report'), 'GET', {
      requestParameters: { 'method.request.path.runId': true },
    });
    Validations.of(this.api).acknowledge(
      {
        id: 'AwsSolutions-COG4',
        reason:
          'Every method uses AWS_IAM authorization (SigV4, one IAM role per site); Cognito is deliberately not used, see the ApiStack comment.',
      },
      {
        id: 'AwsSolutions-APIG3',
        reason:
          'No WAF web ACL: every route requires a SigV4 signature of a site role, so unsigned traffic is refused by API Gateway before any integration runs, and stage throttling bounds what a signed caller can send.',
      },
      {
        id: 'HIPAA.Security-APIGWCacheEnabledAndEncrypted',
        reason:
          "Caching is off on purpose: every response belongs to the calling site, and a cache keyed on the path would serve one site's scans or usage to another.",
      },
      {
        id: 'HIPAA.Security-APIGWSSLEnabled',
        reason:
          'Client certificates authenticate API Gateway to an HTTP backend; the only integration here is a Lambda proxy integration, which API Gateway invokes through the Lambda API with IAM.',
      },
    );
    // The account-level CloudWatch role's AwsSolutions-IAM4 is acknowledged by pattern (lib/nag.ts).

    // --- One role per site: API access, and its own prefixes and partition only ---
    const roleIds: Record<string, string> = {};
    for (const site of config.sites) {
      const role = new iam.Role(this, `SiteRole${pascalName(site.id)}`, {
        description: `sonomark site ${site.id}: the API, and its own uploads, features, invoices and results`,
        // The deploying account's administrators decide who may assume it (a site's federated users).
        assumedBy: new iam.AccountRootPrincipal(),
        maxSessionDuration: Duration.hours(1),
      });
      grantSiteAccess(role, site.id, this.api, props, key);
      roleIds[site.id] = role.roleId;
      this.siteRoles[site.id] = role;
    }
    // {roleUniqueId: siteId}: the role ids resolve at deploy time.
    this.apiFunction.function.addEnvironment(
      ENV.siteRoleIds,
      this.toJsonString(Object.fromEntries(Object.entries(roleIds).map(([siteId, roleId]) => [roleId, siteId]))),
    );

    // --- The monthly invoices ---
    this.invoiceFunction = new SonomarkFunction(this, FUNCTIONS.invoices.id, {
      ...common,
      handler: FUNCTIONS.invoices,
      timeout: Duration.minutes(5),
      reservedConcurrentExecutions: 1,
      environment: { [ENV.siteRegistry]: JSON.stringify(registry) },
    });
    this.invoiceFunction.function.addEnvironment(ENV.resultsTable, props.resultsTable.tableName);
    this.invoiceFunction.function.addEnvironment(ENV.invoicesBucket, props.artifactsBucket.bucketName);
    grantReadItems(this.invoiceFunction.role, props.resultsTable, key);
    this.invoiceFunction.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.artifactsBucket.arnForObjects(`${INVOICES_PREFIX}*`)],
      }),
    );
    this.invoiceFunction.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['kms:GenerateDataKey'], resources: [key.keyArn] }),
    );
    const scheduleDlq = new sqs.Queue(this, 'InvoiceScheduleDeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(scheduleDlq).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the invoice schedule.',
    });
    // The schedule's own role (rather than the target's default one) so it can also encrypt
    // what it sends to the KMS-encrypted dead-letter queue; this account's schedules only.
    const scheduleRole = new iam.Role(this, 'InvoiceScheduleRole', {
      description: 'sonomark monthly invoice schedule: invokes the invoice function',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    });
    scheduleRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [key.keyArn] }),
    );
    this.invoiceSchedule = new scheduler.Schedule(this, 'MonthlyInvoiceSchedule', {
      description: "Writes each site's invoice CSV for the previous month",
      // 06:00 UTC on the 1st: scans received on the last evening of the month have finished.
      schedule: scheduler.ScheduleExpression.cron({ minute: '0', hour: '6', day: '1', month: '*', year: '*' }),
      key,
      target: new schedulerTargets.LambdaInvoke(this.invoiceFunction.function, {
        role: scheduleRole,
        input: scheduler.ScheduleTargetInput.fromObject({}),
        deadLetterQueue: scheduleDlq,
        retryAttempts: 3,
        maxEventAge: Duration.hours(6),
      }),
    });
  }
}

/** GetItem and Query on the results table and its site index (the API and the invoice job write nothing there). */
function grantReadItems(role: iam.IRole, table: dynamodb.ITable, key: kms.IKey): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['dynamodb:GetItem', 'dynamodb:Query'],
      resources: [table.tableArn, `${table.tableArn}/index/${TABLE_KEYS.siteIndex}`],
    }),
  );
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [key.keyArn] }));
}

/**
 * A site role's permissions: invoke the API, and the site's own data only. S3 objects under
 * `uploads/{site}/`, `features/{site}/`, `invoices/{site}/` (listing restricted by `s3:prefix`),
 * and DynamoDB reads whose every partition key (`dynamodb:LeadingKeys`) is the site's: its
 * table items `SITE#{site}#…` or its index partition `SITE#{site}`.
 */
function grantSiteAccess(
  role: iam.Role,
  siteId: string,
  api: apigw.RestApi,
  props: ApiStackProps,
  key: kms.IKey,
): void {
  const prefixes = sitePrefixes(siteId);
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['execute-api:Invoke'],
      resources: API_ROUTES.map((r) => api.arnForExecuteApi(r.method, r.path.replace(/\{[^}]+\}/g, '*'), 'v1')),
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['s3:PutObject'],
      resources: [props.uploadsBucket.arnForObjects(`${prefixes.uploads}*`)],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [
        props.uploadsBucket.arnForObjects(`${prefixes.uploads}*`),
        props.artifactsBucket.arnForObjects(`${prefixes.features}*`),
        props.artifactsBucket.arnForObjects(`${prefixes.invoices}*`),
      ],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [props.uploadsBucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${prefixes.uploads}*`] } },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [props.artifactsBucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${prefixes.features}*`, `${prefixes.invoices}*`] } },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['dynamodb:GetItem', 'dynamodb:Query'],
      resources: [props.resultsTable.tableArn, `${props.resultsTable.tableArn}/index/${TABLE_KEYS.siteIndex}`],
      conditions: {
        'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${siteItemsPrefix(siteId)}*`, sitePk(siteId)] },
        // ForAllValues holds for a request without keys; require them.
        Null: { 'dynamodb:LeadingKeys': 'false' },
      },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key.keyArn] }),
  );
}
