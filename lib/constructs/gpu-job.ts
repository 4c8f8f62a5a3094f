/**
 * The feature-extractor job: a Batch queue whose compute runs the container in
 * gpu-tasks/feature-extractor on one NVIDIA GPU (EC2 g5/g6, spot first with an
 * on-demand fallback, scaled to zero when idle), or on Fargate when
 * `computeMode` is `cpu`. The VPC (no NAT; see network.ts), the subnets and
 * whether the compute gets a public IP (`network.egress`) are passed in.
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
import { ENV } from '../../core/contract';
import { FEATURES_PREFIX, UPLOADS_PREFIX } from '../../core/keys';
import { PACKAGE_ROOT } from '../../core/paths';
import { grantReadObjects, grantWriteObjects } from './grants';

export const EXTRACTOR_DOCKERFILE = 'gpu-tasks/feature-extractor/Dockerfile';

/** Status reason of a job whose Fargate Spot task was reclaimed (ECS "Your Spot Task was interrupted."). */
export const FARGATE_SPOT_RECLAIMED = 'Your Spot Task was interrupted*';

export interface GpuJobProps {
  readonly vpc: ec2.IVpc;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Subnets of the compute environments. @default - the isolated subnets */
  readonly subnets?: ec2.SubnetSelection;
  /**
   * Give each Fargate task a public IPv4 address (`network.egress: 'public-ip'`); on EC2
   * the public subnets' auto-assign setting does it. @default false
   */
  readonly assignPublicIp?: boolean;
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
  /**
   * How long a job may stay blocked at the head of the queue in RUNNABLE (no capacity,
   * or no compute environment that fits it) before Batch cancels it. 10 minutes to 24 hours.
   * @default Duration.minutes(30)
   */
  readonly runnableTimeLimit?: Duration;
  /** The Fargate task of `cpu` mode. @default { architecture: 'x86_64', vcpus: 2, memoryMiB: 4096 } */
  readonly cpuJob?: CpuJobProps;
}

export interface CpuJobProps {
  readonly architecture: 'x86_64' | 'arm64';
  readonly vcpus: number;
  readonly memoryMiB: number;
}

/** Dockerfile targets: the CUDA image for EC2 GPU hosts, a slim Node image for Fargate. */
export const EXTRACTOR_IMAGE_TARGETS = { gpu: 'runtime', cpu: 'runtime-cpu' } as const;

/**
 * Why Batch may cancel a job that is stuck RUNNABLE (JobQueue jobStateTimeLimitActions).
 * All three mean waiting will not help: every environment short of instances of the
 * configured types (a job can sit RUNNABLE on a spot environment that cannot get any),
 * every environment's maxvCpus below the job, or no instance type that fits its
 * GPU/vCPU/memory.
 */
export const RUNNABLE_CANCEL_REASONS = [
  batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
  batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
  batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
] as const;

export class GpuJob extends Construct {
  readonly jobQueue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  readonly jobRole: iam.Role;
  readonly logGroup: logs.LogGroup;
  /** Compute environments in the queue's order (spot first). */
  readonly computeEnvironments: batch.IManagedComputeEnvironment[];
  readonly computeMode: 'gpu' | 'cpu';

  constructor(scope: Construct, id: string, props: GpuJobProps) {
    super(scope, id);
    const mode = props.computeMode ?? 'gpu';
    this.computeMode = mode;
    const cpuJob = props.cpuJob ?? { architecture: 'x86_64', vcpus: 2, memoryMiB: 4096 };
    const maxvCpus = props.maxvCpus ?? 16;
    const subnets = props.subnets ?? { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

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
      target: EXTRACTOR_IMAGE_TARGETS[mode],
      // CUDA images and onnxruntime's CUDA provider are x86_64, and so are g5/g6. The
      // CPU image runs on either Fargate architecture.
      platform: mode === 'cpu' && cpuJob.architecture === 'arm64' ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
    });
    const logging = ecs.LogDrivers.awsLogs({ streamPrefix: 'extractor', logGroup: this.logGroup });
    const environment = { [ENV.onnxExecutionProvider]: mode === 'gpu' ? 'cuda' : 'cpu' };

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
      // The extractor is small (< 2 M parameters, ≤ 64 frames of 128×128): 2 vCPU and
      // 4 GiB run it with room to spare; bigger clips only decode longer.
      container = new batch.EcsFargateContainerDefinition(this, 'Container', {
        image,
        cpu: cpuJob.vcpus,
        memory: Size.mebibytes(cpuJob.memoryMiB),
        jobRole: this.jobRole,
        logging,
        environment,
        assignPublicIp: props.assignPublicIp ?? false,
        fargateCpuArchitecture:
          cpuJob.architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
        fargateOperatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      });
    }

    const runnableTimeLimit = props.runnableTimeLimit ?? Duration.minutes(30);
    this.jobQueue = new batch.JobQueue(this, 'Queue', {
      priority: 1,
      computeEnvironments: this.computeEnvironments.map((computeEnvironment, i) => ({
        computeEnvironment,
        order: i + 1,
      })),
      // A job that cannot get capacity would otherwise sit RUNNABLE until the execution
      // times out (hours), holding its scan RUNNING. Cancelled, it fails the Extract
      // task, and the workflow records the scan FAILED with Batch's reason.
      jobStateTimeLimitActions: RUNNABLE_CANCEL_REASONS.map((reason) => ({
        action: batch.JobStateTimeLimitActionsAction.CANCEL,
        state: batch.JobStateTimeLimitActionsState.RUNNABLE,
        maxTime: runnableTimeLimit,
        reason,
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
        // Fargate Spot reclaim: ECS stops the task with this stoppedReason.
        ...(mode === 'cpu'
          ? [
              batch.RetryStrategy.of(
                batch.Action.RETRY,
                batch.Reason.custom({ onStatusReason: FARGATE_SPOT_RECLAIMED }),
              ),
            ]
          : []),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
    });
  }
}
