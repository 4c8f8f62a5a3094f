/**
 * The one place every sonomark Lambda function gets its defaults (runtime,
 * architecture, tracing, log group, network, bundling), so no function can
 * drift from them. Modelled on Powertools' FunctionWithLogGroup.
 */
import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { PACKAGE_ROOT } from '../../core/paths';

export const POWERTOOLS_NAMESPACE = 'sonomark';

export interface SonomarkFunctionProps {
  /** Handler file relative to the package root, e.g. `lambdas/finalize/handler.ts`; it exports `handler`. */
  readonly entry: string;
  /** Powertools service name (logs, metrics, traces). */
  readonly serviceName: string;
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
  /** Extra environment variables. */
  readonly environment?: Record<string, string>;
  /** Modules left out of the esbuild bundle (the afterBundling hook must ship them). */
  readonly externalModules?: string[];
  /** Shell commands run in the package root after esbuild; `outputDir` is the asset directory. */
  readonly afterBundling?: (inputDir: string, outputDir: string) => string[];
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

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // An explicit role instead of AWSLambdaBasicExecutionRole: that managed policy lets
    // the function write to any log group; this one only to its own.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `sonomark ${props.serviceName} function`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );

    const afterBundling = props.afterBundling;
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: path.join(PACKAGE_ROOT, props.entry),
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
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: POWERTOOLS_NAMESPACE,
        NODE_OPTIONS: '--enable-source-maps',
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
          afterBundling: (inputDir, outputDir) => (afterBundling ? afterBundling(inputDir, outputDir) : []),
        },
      },
    });

    if (props.vpc) {
      // Lambda needs these EC2 actions to manage its VPC ENIs; AWS does not support
      // resource-level permissions for them (service authorization reference).
      this.role.addToPolicy(
        new iam.PolicyStatement({
          actions: [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DeleteNetworkInterface',
            'ec2:AssignPrivateIpAddresses',
            'ec2:UnassignPrivateIpAddresses',
          ],
          resources: ['*'],
        }),
      );
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
}
