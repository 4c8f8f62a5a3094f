/**
 * The feature-extractor job: a Batch queue whose compute runs the container in
 * gpu-tasks/feature-extractor on one NVIDIA GPU (EC2 g5/g6, spot first with an
 * on-demand fallback, scaled to zero when idle), or on Fargate when
 * `computeMode` is `cpu`. The VPC (isolated subnets, no NAT; see network.ts) is
 * passed in.
 */
import { Duration, RemovalPolicy, Size, Validations } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { Construct } from 'constructs';
import { FEATURES_PREFIX, UPLOADS_PREFIX } from '../keys';
import { PACKAGE_ROOT } from '../paths';
import { grantReadObjects, grantWriteObjects } from './grants';

export const EXTRACTOR_DOCKERFILE = 'gpu-tasks/feature-extractor/Dockerfile';

export interface GpuJobProps {
  readonly vpc: ec2.IVpc;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly uploadsBucket: s3.IBucket;
  readonly artifactsBucket: s3.IBucket;
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  /** @default 'gpu' */
  readonly computeMode?: 'gpu' | 'cpu';
  /** EC2 instance types for `gpu` mode. @default ['g5.xlarge', 'g6.xlarge'] */
  readonly instanceTypes?: readonly string[];
  /** @default 16 */
  readonly maxvCpus?: number;
  /** Attempt timeout. @default Duration.hours(1) */
  readonly timeout?: Duration;
}

export class GpuJob extends Construct {
  readonly jobQueue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  readonly jobRole: iam.Role;
  readonly logGroup: logs.LogGroup;
  /** Compute environments in the queue's order (spot first). */
  readonly computeEnvironments: batch.IManagedComputeEnvironment[];

  constructor(scope: Construct, id: string, props: GpuJobProps) {
    super(scope, id);
    const mode = props.computeMode ?? 'gpu';
    const maxvCpus = props.maxvCpus ?? 16;
    const subnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'sonomark feature extractor: read uploads, write features',
    });
    grantReadObjects(this.jobRole, props.uploadsBucket, UPLOADS_PREFIX, props.encryptionKey);
    grantWriteObjects(this.jobRole, props.artifactsBucket, FEATURES_PREFIX, props.encryptionKey);

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const image = ecs.ContainerImage.fromAsset(PACKAGE_ROOT, {
      file: EXTRACTOR_DOCKERFILE,
      // CUDA images and onnxruntime's CUDA provider are x86_64; g5/g6 are x86_64.
      platform: Platform.LINUX_AMD64,
    });
    const logging = ecs.LogDrivers.awsLogs({ streamPrefix: 'extractor', logGroup: this.logGroup });
    const environment = { ONNX_EXECUTION_PROVIDER: mode === 'gpu' ? 'cuda' : 'cpu' };

    let container: batch.IEcsContainerDefinition;
    if (mode === 'gpu') {
      const instanceRole = new iam.Role(this, 'InstanceRole', {
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        managedPolicies: [
          iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonEC2ContainerServiceforEC2Role'),
        ],
      });
      Validations.of(instanceRole).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]',
        reason:
          'AWS Batch/ECS container instances need this AWS-maintained policy to register with ECS; the job itself runs under JobRole.',
      });
      const ec2Ce = (ceId: string, spot: boolean) =>
        new batch.ManagedEc2EcsComputeEnvironment(this, ceId, {
          vpc: props.vpc,
          vpcSubnets: subnets,
          securityGroups: [props.securityGroup],
          spot,
          allocationStrategy: spot
            ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
            : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
          instanceTypes: (props.instanceTypes ?? ['g5.xlarge', 'g6.xlarge']).map((t) => new ec2.InstanceType(t)),
          useOptimalInstanceClasses: false,
          images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
          instanceRole,
          minvCpus: 0,
          maxvCpus,
          updateToLatestImageVersion: true,
        });
      this.computeEnvironments = [ec2Ce('SpotComputeEnvironment', true), ec2Ce('OnDemandComputeEnvironment', false)];
      container = new batch.EcsEc2ContainerDefinition(this, 'Container', {
        image,
        gpu: 1,
        // g5.xlarge / g6.xlarge: 4 vCPU, 16 GiB; leave headroom for the ECS agent.
        cpu: 4,
        memory: Size.gibibytes(14),
        jobRole: this.jobRole,
        logging,
        environment,
      });
    } else {
      const fargateCe = (ceId: string, spot: boolean) =>
        new batch.FargateComputeEnvironment(this, ceId, {
          vpc: props.vpc,
          vpcSubnets: subnets,
          securityGroups: [props.securityGroup],
          spot,
          maxvCpus,
          updateToLatestImageVersion: true,
        });
      this.computeEnvironments = [
        fargateCe('SpotComputeEnvironment', true),
        fargateCe('OnDemandComputeEnvironment', false),
      ];
      container = new batch.EcsFargateContainerDefinition(this, 'Container', {
        image,
        cpu: 4,
        memory: Size.gibibytes(16),
        jobRole: this.jobRole,
        logging,
        environment,
        assignPublicIp: false,
        fargateCpuArchitecture: ecs.CpuArchitecture.X86_64,
        fargateOperatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      });
    }

    this.jobQueue = new batch.JobQueue(this, 'Queue', {
      priority: 1,
      computeEnvironments: this.computeEnvironments.map((computeEnvironment, i) => ({
        computeEnvironment,
        order: i + 1,
      })),
    });

    this.jobDefinition = new batch.EcsJobDefinition(this, 'JobDefinition', {
      container,
      timeout: props.timeout ?? Duration.hours(1),
      propagateTags: true,
      // Retry only what is not the clip's fault: a reclaimed spot instance or a lost
      // host (both surface as status reason "Host EC2*") and an image pull that failed
      // on the host. A decode or model error exits non-zero and must not be retried
      // (it would fail the same way, on a paid GPU).
      retryAttempts: 3,
      retryStrategies: [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
    });
  }
}
