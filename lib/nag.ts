/**
 * cdk-nag (3.x) wiring: the AwsSolutions and HIPAA Security packs run as CDK
 * validation plugins, and every finding sonomark accepts is acknowledged with
 * a reason.
 *
 * Most acknowledgements sit on the construct (Validations.of(x).acknowledge) where
 * the resource is made. Findings whose id embeds a synthesized token (e.g.
 * `AwsSolutions-IAM5[Resource::SonomarkStorage:ExportsOutput…/uploads/*]`, only
 * known after cross-stack references are resolved) are matched by pattern below:
 * the first plugin runs the packs, and acknowledges each matching finding on its
 * resource through the same Validations API before the real packs report.
 */
import {
  Validations,
  type IPolicyValidationContext,
  type IPolicyValidationPlugin,
  type PolicyValidationPluginReport,
} from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks, type NagPack } from 'cdk-nag';
import type { IConstruct } from 'constructs';

export interface NagPatternAcknowledgement {
  /** Matched against the full finding id, e.g. `AwsSolutions-IAM5[Resource::<X.Arn>:*]`. */
  readonly id: RegExp;
  /** Matched against the violating resource's construct path. */
  readonly path: RegExp;
  readonly reason: string;
}

/** Every pattern-matched acknowledgement in the app, with why. */
export const NAG_PATTERN_ACKNOWLEDGEMENTS: readonly NagPatternAcknowledgement[] = [
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/(uploads|features|models)\/\*\]$/,
    path: /\/(ValidateUpload|RecordFailure|Expert[A-Za-z0-9]+\/Handler|Extractor\/JobRole|ExtractorFunction\/Role)\//,
    reason:
      'Object-level S3 permissions are scoped to one key prefix (uploads/, features/, or models/ for an expert reading its model version; the extractor, as a Batch job or in computeMode lambda as a function, reads uploads/ and writes features/); object keys are only known at run time.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/models\/manifest\.json\*\]$/,
    path: /\/LoadExperts\/Role\//,
    reason:
      'LoadExperts reads the one object models/manifest.json; CDK grant helpers append * to a key pattern, which here only widens to keys beginning with that exact name.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::<[A-Za-z0-9]+\.Arn>:\*\]$/,
    path: /\/Workflow\/StateMachine\/Role\//,
    reason:
      'CDK LambdaInvoke grants the function ARN and its qualified versions (arn:…:*) so a published version/alias can be invoked; still one function each.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job-definition\/\*\]$/,
    path: /\/Workflow\/StateMachine\/Role\//,
    reason:
      'batch:SubmitJob authorizes the job definition by name:revision; the revision changes on every deploy, so CDK grants job-definition/* in this account and region (the queue is a single ARN).',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job\/\*\]$/,
    path: /\/Workflow\/StateMachine\/Role\//,
    reason:
      'batch:TerminateJob (the .sync integration stopping an abandoned extractor job) authorizes the job ARN job/{jobId}, which Batch assigns at submission and which has no condition key for its queue or definition: job/* in this account and region.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    path: /\/Workflow\/StateMachine\/Role\//,
    reason:
      'X-Ray (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*), CloudWatch Logs delivery (logs:CreateLogDelivery, …) and batch:DescribeJobs (the .sync integration polling the extractor job) do not support resource-level permissions.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    path: /\/Extractor\/Container\/ExecutionRole\//,
    reason:
      'ecr:GetAuthorizationToken does not support resource-level permissions; image pulls are scoped to the asset repository.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    path: /^SonomarkTrigger\/StartExecution\/Role\//,
    reason:
      'xray:PutTraceSegments/PutTelemetryRecords (active tracing) do not support resource-level permissions; the function runs outside the VPC, so it has no ENI permissions.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    path: /\/(ValidateUpload|Finalize|RecordFailure|ExecutionEnded|LoadExperts|Expert[A-Za-z0-9]+\/Handler|ExtractorFunction)\/Role\//,
    reason:
      'ec2:*NetworkInterface* (Lambda VPC ENIs) and xray:PutTraceSegments/PutTelemetryRecords (active tracing) do not support resource-level permissions.',
  },
  // --- CohortStack (lib/stacks/cohort-stack.ts) ---
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/cohorts\/\*\]$/,
    path: /^(SonomarkCohort\/(CohortPlan|CohortScore|CohortReport)\/Role|SonomarkCohort\/CohortWorkflow\/StateMachine\/Role|SonomarkPipeline\/(Extractor\/JobRole|ExtractorFunction\/Role))\//,
    reason:
      "Scoped to the artifacts bucket's cohorts/ prefix: a run's batch item lists, batch outcomes, ResultWriter files and report live under cohorts/{site}/{runId}/, where the run id is the execution name, known only at run time.",
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/cohorts\/manifests\/\*\]$/,
    path: /^SonomarkCohort\/CohortWorkflow\/StateMachine\/Role\//,
    reason:
      'The Distributed Map reads the manifest the execution input names; manifests may only live under cohorts/manifests/ of the artifacts bucket, whose keys the operator chooses at run time.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/(uploads|features|models)\/\*\]$/,
    path: /^SonomarkCohort\/(CohortPlan|CohortScore|CohortReport)\/Role\//,
    reason:
      "Object-level S3 permissions scoped to one key prefix: the plan hashes clips under uploads/ and checks features/, the scorer reads features/ and the expert models under models/, the report reads the scans' features/ documents for the cohort page; object keys are only known at run time.",
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/models\/manifest\.json\*\]$/,
    path: /^SonomarkCohort\/(CohortPlan|CohortReport)\/Role\//,
    reason:
      'Reads the one object models/manifest.json (the current extractor and experts); the grant helper appends * to a key pattern, which here only widens to keys beginning with that exact name.',
  },
  {
    // In computeMode lambda, ExtractBatch invokes the pipeline's extractor function (imported from that stack).
    id: /^AwsSolutions-IAM5\[Resource::(<Cohort(Plan|Score|Report)Function[A-Za-z0-9]+\.Arn>|SonomarkPipeline:ExportsOutputFnGetAttExtractorFunction[A-Za-z0-9]+Arn[A-Za-z0-9]+):\*\]$/,
    path: /^SonomarkCohort\/CohortWorkflow\/StateMachine\/Role\//,
    reason:
      'CDK LambdaInvoke grants the function ARN and its qualified versions (arn:…:*) so a published version/alias can be invoked; still one function each.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:(job-definition|job)\/\*\]$/,
    path: /^SonomarkCohort\/CohortWorkflow\/StateMachine\/Role\//,
    reason:
      'batch:SubmitJob authorizes the job definition by name:revision (the revision changes on every deploy) and batch:TerminateJob the job ARN job/{jobId} assigned at submission, with no condition key for queue or definition: both wildcards stay in this account and region, and the queue is a single ARN.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:.*\]$/,
    path: /^SonomarkCohort\/CohortWorkflow\/StateMachine\/DistributedMapPolicy\//,
    reason:
      'The Distributed Map describes, stops and redrives its own child executions, whose names Step Functions assigns at run time: executions of this one state machine only (execution:{its name}:*).',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    path: /^SonomarkCohort\/CohortWorkflow\/StateMachine\/Role\//,
    reason:
      'X-Ray (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*), CloudWatch Logs delivery (logs:CreateLogDelivery, …) and batch:DescribeJobs (the .sync integration polling the batch extractor job) do not support resource-level permissions.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    path: /^SonomarkCohort\/(CohortPlan|CohortScore|CohortReport)\/Role\//,
    reason:
      'ec2:*NetworkInterface* (Lambda VPC ENIs) and xray:PutTraceSegments/PutTelemetryRecords (active tracing) do not support resource-level permissions.',
  },
  // --- ApiStack (lib/stacks/api-stack.ts) ---
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/(uploads|invoices)\/\*\]$/,
    path: /^SonomarkApi\/(SiteApi|MonthlyInvoices)\/Role\//,
    reason:
      "Scoped to one key prefix: the API function signs upload POSTs under uploads/ (each POST's policy then names one exact key), the invoice job writes invoices/; object keys are only known at run time.",
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/(uploads|features|invoices)\/[A-Za-z0-9][A-Za-z0-9_-]*\/\*\]$/,
    path: /^SonomarkApi\/SiteRole[A-Za-z0-9]+\//,
    reason:
      "A site role's objects are those under its own site prefix (uploads/{site}/, features/{site}/, invoices/{site}/); the keys below it are only known at run time.",
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:execute-api:.*\/v1\/GET\/(scans\/\*|studies\/\*\/scans)\]$/,
    path: /^SonomarkApi\/SiteRole[A-Za-z0-9]+\//,
    reason:
      'The * is the {scanId} or {studyId} path parameter of one route; which scans or studies a site reads is decided by its own partition in the handler, not by the ARN.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::.*\/cohorts\/[A-Za-z0-9][A-Za-z0-9_-]*\/\*\/report\.html\]$/,
    path: /^SonomarkApi\/SiteApi\/Role\//,
    reason:
      "GET /cohorts/{runId}/report reads and presigns one registered site's cohort page, cohorts/{site}/{runId}/report.html: the * is the run id (the cohort execution's name, known only at run time), and an S3 ARN wildcard cannot be kept within one path segment; the key always ends in /report.html, and only the cohort functions write under cohorts/.",
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:execute-api:.*\/v1\/GET\/cohorts\/\*\/report\]$/,
    path: /^SonomarkApi\/SiteRole[A-Za-z0-9]+\//,
    reason:
      "The * is the {runId} path parameter of the one route GET /cohorts/{runId}/report; which run's page a site gets is decided by its own site prefix in the handler (cohorts/{caller's site}/{runId}/), not by the ARN.",
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    path: /^SonomarkApi\/(SiteApi|MonthlyInvoices)\/Role\//,
    reason:
      'ec2:*NetworkInterface* (Lambda VPC ENIs) and xray:PutTraceSegments/PutTelemetryRecords (active tracing) do not support resource-level permissions.',
  },
  {
    id: /^AwsSolutions-IAM5\[Resource::<MonthlyInvoicesFunction[A-Za-z0-9]+\.Arn>:\*\]$/,
    path: /^SonomarkApi\/InvoiceScheduleRole\//,
    reason:
      'The scheduler target grants lambda:InvokeFunction on the invoice function and its qualified versions (arn:…:*); still that one function.',
  },
  {
    id: /^AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy\/service-role\/AmazonAPIGatewayPushToCloudWatchLogs\]$/,
    path: /^SonomarkApi\/RestApi\/CloudWatchRole\//,
    reason:
      'The AWS-managed policy of the account-wide role API Gateway uses to write execution logs; API Gateway uses that one role for every API in the account and region, so it cannot be scoped to this API.',
  },
];

/** Runs first: acknowledges the pattern-matched findings so the real packs do not report them. */
export class NagPatternAcknowledger implements IPolicyValidationPlugin {
  readonly name = 'sonomark-nag-acknowledgements';

  constructor(
    private readonly packs: () => NagPack[],
    private readonly acknowledgements: readonly NagPatternAcknowledgement[] = NAG_PATTERN_ACKNOWLEDGEMENTS,
  ) {}

  validate(context: IPolicyValidationContext): PolicyValidationPluginReport {
    const root = (context as IPolicyValidationContext & { appConstruct?: IConstruct }).appConstruct;
    if (root) acknowledgeMatchingFindings(root, this.packs(), this.acknowledgements);
    return { success: true, violations: [] };
  }
}

/** Acknowledges (with reasons) every finding of `packs` under `root` that matches a pattern. */
export function acknowledgeMatchingFindings(
  root: IConstruct,
  packs: NagPack[],
  acknowledgements: readonly NagPatternAcknowledgement[] = NAG_PATTERN_ACKNOWLEDGEMENTS,
): number {
  const byPath = new Map(root.node.findAll().map((c) => [c.node.path, c] as const));
  let count = 0;
  for (const pack of packs) {
    for (const violation of pack.validateScope(root).violations) {
      for (const resource of violation.violatingResources) {
        const path = resource.constructPath ?? '';
        const ack = acknowledgements.find((a) => a.id.test(violation.ruleName) && a.path.test(path));
        const construct = byPath.get(path);
        if (ack && construct) {
          Validations.of(construct).acknowledge({ id: violation.ruleName, reason: ack.reason });
          count++;
        }
      }
    }
  }
  return count;
}

/** Registers the acknowledger and the AwsSolutions + HIPAA Security packs on the app. */
export function addNagChecks(app: IConstruct): void {
  Validations.of(app).addPlugins(
    new NagPatternAcknowledger(() => [new AwsSolutionsChecks(), new HIPAASecurityChecks()]),
    new AwsSolutionsChecks(app),
    new HIPAASecurityChecks(app),
  );
}
