/**
 * The extractor as a Lambda function (`computeMode: 'lambda'`): the same extractor code as
 * the Batch job (gpu-tasks/feature-extractor/src/lambda.ts over main.ts), packaged as a
 * container image from the extractor's Dockerfile (target `runtime-lambda`, on the AWS
 * Lambda Node.js base image).
 *
 * Why an image and not a zip: a zip bundle would fit (onnxruntime-node's linux binaries are
 * 25 MB arm64 / 45 MB x64, a static ffmpeg about 70 MB, against the 250 MB unzipped limit),
 * but only by picking one platform's files out of onnxruntime-node's 288 MB package and an
 * ffmpeg binary in the bundling hooks: a second way of packaging the extractor. The image
 * reuses the Dockerfile's build and dependency stages of the Batch images, so the three
 * targets ship the same bundle, the same onnxruntime and the same models.
 *
 * Its role gets exactly what the Batch job role gets (GpuJob: read uploads, write features,
 * read/create the DICOM salt object), plus what every sonomark function has: its log group,
 * X-Ray, its VPC ENIs. Invoked synchronously by Step Functions only, like the other
 * workflow functions (no DLQ; the workflow retries, catches and records failures).
 */
import { type Duration, Size, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { Construct } from 'constructs';
import { ENV, EXTRACTOR_FUNCTION, METRICS_NAMESPACE } from '../../core/contract';
import { DICOM_PSEUDONYM_SALT_KEY, FEATURES_PREFIX, UPLOADS_PREFIX } from '../../core/keys';
import { PACKAGE_ROOT } from '../../core/paths';
import { EXTRACTOR_DOCKERFILE } from './gpu-job';
import { grantReadCreateObject, grantReadObjects, grantWriteObjects } from './grants';
import { functionLogGroupAndRole, vpcEniStatement } from './sonomark-function';

/** The Dockerfile target of the Lambda image (beside gpu-job.ts EXTRACTOR_IMAGE_TARGETS). */
export const EXTRACTOR_LAMBDA_TARGET = 'runtime-lambda';

/** The extractor function's concurrency cap: what the benchmark's scale model checks against Lambda's quotas. */
export const EXTRACTOR_RESERVED_CONCURRENCY = 20;

export interface ExtractorFunctionProps {
  readonly vpc: ec2.IVpc;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly uploadsBucket: s3.IBucket;
  readonly artifactsBucket: s3.IBucket;
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  /** config `lambdaExtractor`. */
  readonly memoryMb: number;
  readonly timeout: Duration;
  readonly ephemeralStorageMiB: number;
}

export class ExtractorFunction extends Construct {
  readonly function: lambda.DockerImageFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ExtractorFunctionProps) {
    super(scope, id);
    ({ logGroup: this.logGroup, role: this.role } = functionLogGroupAndRole(this, {
      ...props,
      description:
        'sonomark feature extractor (Lambda): read uploads, write features, read/create the DICOM pseudonym salt',
    }));
    // Exactly the Batch job role's grants (gpu-job.ts), so the two modes reach the same data.
    grantReadObjects(this.role, props.uploadsBucket, UPLOADS_PREFIX, props.encryptionKey);
    grantWriteObjects(this.role, props.artifactsBucket, FEATURES_PREFIX, props.encryptionKey);
    grantReadCreateObject(this.role, props.artifactsBucket, DICOM_PSEUDONYM_SALT_KEY, props.encryptionKey);

    this.function = new lambda.DockerImageFunction(this, 'Function', {
      code: lambda.DockerImageCode.fromImageAsset(PACKAGE_ROOT, {
        file: EXTRACTOR_DOCKERFILE,
        target: EXTRACTOR_LAMBDA_TARGET,
        // Every sonomark function is arm64, and the price table prices Lambda on arm64.
        platform: Platform.LINUX_ARM64,
      }),
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memoryMb,
      timeout: props.timeout,
      ephemeralStorageSize: Size.mebibytes(props.ephemeralStorageMiB),
      reservedConcurrentExecutions: EXTRACTOR_RESERVED_CONCURRENCY,
      tracing: lambda.Tracing.ACTIVE,
      logGroup: this.logGroup,
      role: this.role,
      environmentEncryption: props.encryptionKey,
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [props.securityGroup],
      environment: {
        [ENV.powertoolsServiceName]: EXTRACTOR_FUNCTION.serviceName,
        [ENV.powertoolsMetricsNamespace]: METRICS_NAMESPACE,
        // The image sets MODELS_DIR, FFMPEG_PATH and ONNX_EXECUTION_PROVIDER (Dockerfile); the
        // salt object's bucket is the deployment's. The salt itself never is in the environment.
        [ENV.artifactsBucket]: props.artifactsBucket.bucketName,
      },
    });
    this.role.addToPolicy(vpcEniStatement());
    Validations.of(this.function).acknowledge({
      id: 'HIPAA.Security-LambdaDLQ',
      reason:
        'Invoked synchronously by Step Functions only (the Extract state); failures are retried and caught by the workflow, which records them. A DLQ applies to asynchronous invocations.',
    });
  }
}
