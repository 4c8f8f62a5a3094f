/**
 * The one place every sonomark Lambda function gets its defaults (runtime,
 * architecture, tracing, log group, network, bundling), so no function can
 * drift from them, and binds it to what it uses: each `bind*` method sets the
 * environment variable (its name from core/contract.ts) and makes the
 * least-privilege grant together. Modelled on Powertools' FunctionWithLogGroup.
 */
import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV, METRICS_NAMESPACE, MODELS, type FunctionNames } from '../../core/contract';
import { PACKAGE_ROOT } from '../../core/paths';
import { grantReadObjects, grantTableItems } from './grants';

/** Single-quotes a path for the bundling shell commands. */
export const shellQuote = (p: string): string => `'${p.replace(/'/g, `'\\''`)}'`;

/** Copies the manifest and the given model files into the bundle's models folder (MODELS.lambdaDir once deployed). */
export function modelCopyCommands(modelsDir: string, outputDir: string, files: readonly string[]): string[] {
  const dst = `${outputDir}/${MODELS.folder}`;
  const q = shellQuote;
  const cmds = [`mkdir -p ${q(dst)}`, `cp ${q(`${modelsDir}/${MODELS.manifestFile}`)} ${q(`${dst}/`)}`];
  for (const f of files) {
    cmds.push(`mkdir -p "$(dirname ${q(`${dst}/${f}`)})"`, `cp ${q(`${modelsDir}/${f}`)} ${q(`${dst}/${f}`)}`);
  }
  return cmds;
}

export interface SonomarkFunctionProps {
  /**
   * Which function (core/contract.ts FUNCTIONS): its code is
   * `lambdas/<folder>/handler.ts` (exporting `handler`), its Powertools service name
   * goes into POWERTOOLS_SERVICE_NAME.
   */
  readonly handler: FunctionNames;
  /**
   * What the role's description calls the function.
   * @default handler.folder
   */
  readonly label?: string;
  /** KMS key for the function's log group and environment variables. */
  readonly encryptionKey: kms.IKey;
  /** Log retention. */
  readonly logRetention: logs.RetentionDays;
  /**
   * VPC the function runs in (private isolated subnets; S3 and DynamoDB through gateway
   * endpoints). Required unless `outsideVpcReason` says why the function has no use for it.
   */
  readonly vpc?: ec2.IVpc;
  /** Security group of the function's ENIs: no ingress, egress to the VPC endpoints. Required with `vpc`. */
  readonly securityGroup?: ec2.ISecurityGroup;
  /**
   * Why this function runs outside the VPC (it becomes the acknowledgement of
   * HIPAA.Security-LambdaInsideVPC). Only for a function that touches no data store.
   * @default - the function runs in `vpc`
   */
  readonly outsideVpcReason?: string;
  /**
   * Asynchronous invocation (an EventBridge target): after Lambda's own retries the
   * event goes to this queue (KMS-encrypted with `encryptionKey`). Without it, the
   * function is invoked synchronously by Step Functions and needs no DLQ.
   * @default - synchronous only
   */
  readonly asyncInvoke?: {
    readonly deadLetterQueue: sqs.IQueue;
    /** Lambda's retries of a failed asynchronous invocation (0–2). */
    readonly retryAttempts: number;
    /** How long Lambda keeps retrying an event (60 s – 6 h). */
    readonly maxEventAge: Duration;
  };
  /** @default 256 */
  readonly memorySize?: number;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default 10 */
  readonly reservedConcurrentExecutions?: number;
  /** Extra environment variables (settings; what the function binds to comes from the `bind*` methods). */
  readonly environment?: Record<string, string>;
  /**
   * Ship the manifest and these model files (relative to `dir`) in the bundle and point
   * MODELS_DIR at them.
   * @default - no models
   */
  readonly models?: { readonly dir: string; readonly files: readonly string[] };
  /** Modules left out of the esbuild bundle (the afterBundling hook must ship them). */
  readonly externalModules?: string[];
  /** Shell commands run in the package root after esbuild; `outputDir` is the asset directory. */
  readonly afterBundling?: (inputDir: string, outputDir: string) => string[];
}

/** What `bindObjects` gives a function on a bucket; each part is optional. */
export interface BindObjectsOptions {
  /**
   * Read objects under this key prefix (and decrypt them).
   * @default - no access
   */
  readonly read?: string;
  /**
   * Environment variable (core/contract.ts ENV) that names the bucket.
   * @default - the bucket is not named: it comes in the payload
   */
  readonly envVar?: string;
}

/**
 * A function's own log group (KMS, retained) and its role, which may write to that log group only: an
 * explicit role instead of AWSLambdaBasicExecutionRole, whose managed policy lets the function write to
 * any log group. Children 'LogGroup' and 'Role' of `scope`. Shared by every sonomark function, the
 * extractor's container-image function included.
 */
export function functionLogGroupAndRole(
  scope: Construct,
  props: { logRetention: logs.RetentionDays; encryptionKey: kms.IKey; description: string },
): { logGroup: logs.LogGroup; role: iam.Role } {
  const logGroup = new logs.LogGroup(scope, 'LogGroup', {
    retention: props.logRetention,
    encryptionKey: props.encryptionKey,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const role = new iam.Role(scope, 'Role', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: props.description,
  });
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  );
  return { logGroup, role };
}

/**
 * What Lambda needs to manage a function's VPC ENIs; AWS supports no resource-level permissions for these
 * EC2 actions (service authorization reference), so the resource is `*` (acknowledged in lib/nag.ts).
 */
export function vpcEniStatement(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: [
      'ec2:CreateNetworkInterface',
      'ec2:DescribeNetworkInterfaces',
      'ec2:DeleteNetworkInterface',
      'ec2:AssignPrivateIpAddresses',
      'ec2:UnassignPrivateIpAddresses',
    ],
    resources: ['*'],
  });
}

export class SonomarkFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly logGroup: logs.LogGroup;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: SonomarkFunctionProps) {
    super(scope, id);
    if (props.vpc === undefined || props.securityGroup === undefined) {
      if (props.vpc !== undefined || props.securityGroup !== undefined || !props.outsideVpcReason) {
        throw new Error(`${id}: give both vpc and securityGroup, or neither and an outsideVpcReason.`);
      }
    }

    ({ logGroup: this.logGroup, role: this.role } = functionLogGroupAndRole(this, {
      ...props,
      description: `sonomark ${props.label ?? props.handler.folder} function`,
    }));

    const { afterBundling, models } = props;
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: path.join(PACKAGE_ROOT, 'lambdas', props.handler.folder, 'handler.ts'),
      handler: 'handler',
      projectRoot: PACKAGE_ROOT,
      depsLockFilePath: path.join(PACKAGE_ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(30),
      reservedConcurrentExecutions: props.reservedConcurrentExecutions ?? 10,
      logGroup: this.logGroup,
      role: this.role,
      environmentEncryption: props.encryptionKey,
      ...(props.vpc && props.securityGroup
        ? {
            vpc: props.vpc,
            vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
            securityGroups: [props.securityGroup],
          }
        : {}),
      ...(props.asyncInvoke
        ? {
            deadLetterQueue: props.asyncInvoke.deadLetterQueue,
            retryAttempts: props.asyncInvoke.retryAttempts,
            maxEventAge: props.asyncInvoke.maxEventAge,
          }
        : {}),
      environment: {
        [ENV.powertoolsServiceName]: props.handler.serviceName,
        [ENV.powertoolsMetricsNamespace]: METRICS_NAMESPACE,
        [ENV.nodeOptions]: '--enable-source-maps',
        ...(models ? { [ENV.modelsDir]: MODELS.lambdaDir } : {}),
        ...props.environment,
      },
      bundling: {
        // Local esbuild (a devDependency) only: synth must work offline, without Docker.
        forceDockerBundling: false,
        target: 'node22',
        format: nodejs.OutputFormat.CJS,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // The runtime ships AWS SDK v3; bundling our pinned one keeps behaviour identical to tests.
        bundleAwsSDK: true,
        externalModules: props.externalModules ?? [],
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir, outputDir) => [
            ...(afterBundling ? afterBundling(inputDir, outputDir) : []),
            ...(models ? modelCopyCommands(models.dir, outputDir, models.files) : []),
          ],
        },
      },
    });

    if (props.vpc) {
      // Lambda needs these EC2 actions to manage its VPC ENIs; AWS does not support
      // resource-level permissions for them (service authorization reference).
      this.role.addToPolicy(vpcEniStatement());
    } else {
      Validations.of(this.function).acknowledge({
        id: 'HIPAA.Security-LambdaInsideVPC',
        reason: props.outsideVpcReason as string,
      });
    }
    if (props.asyncInvoke) {
      // The function (CDK grants sqs:SendMessage) writes failed events to the KMS-encrypted DLQ.
      this.role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [props.encryptionKey.keyArn],
        }),
      );
    }
    // The Resource::* finding for these is acknowledged by pattern in lib/nag.ts
    // (per-finding ids; see NAG_PATTERN_ACKNOWLEDGEMENTS).
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Node.js 22 is the runtime sonomark targets and tests (package.json engines, onnxruntime-node binding); upgrade deliberately.',
    });
    if (!props.asyncInvoke) {
      Validations.of(this.function).acknowledge({
        id: 'HIPAA.Security-LambdaDLQ',
        reason:
          'Invoked synchronously by Step Functions only; failures are retried and caught by the workflow, which records them. A DLQ applies to asynchronous invocations.',
      });
    }
  }

  /** Names the results table in RESULTS_TABLE; item-level reads and writes on it and its site index. */
  bindResultsTable(table: dynamodb.ITable, key: kms.IKey): void {
    this.function.addEnvironment(ENV.resultsTable, table.tableName);
    grantTableItems(this.function, table, key);
  }

  /** Objects of `bucket`: read under a prefix, and/or the bucket's name in an environment variable. */
  bindObjects(bucket: s3.IBucket, key: kms.IKey, options: BindObjectsOptions): void {
    if (options.envVar) this.function.addEnvironment(options.envVar, bucket.bucketName);
    if (options.read !== undefined) grantReadObjects(this.function, bucket, options.read, key);
  }

  /** Names the state machine in STATE_MACHINE_ARN; states:StartExecution on it alone. */
  bindStateMachine(stateMachine: sfn.IStateMachine): void {
    this.function.addEnvironment(ENV.stateMachineArn, stateMachine.stateMachineArn);
    stateMachine.grantStartExecution(this.function);
  }
}
