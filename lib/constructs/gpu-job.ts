/**
 * The feature-extractor job: two Batch queues whose compute runs the container in
 * gpu-tasks/feature-extractor on one NVIDIA GPU (EC2 g4dn/g5/g6, scaled to zero when
 * idle), or on Fargate when `computeMode` is `cpu`: a spot queue, where every job goes
 * first, and an on-demand queue. A job the spot queue cannot place for lack of capacity
 * is cancelled after `spotCapacityWait` (SPOT_CAPACITY_CANCEL_REASON) and the workflow
 * submits it again to the on-demand queue (workflow.ts, ExtractOnDemand), so a spot
 * shortage costs minutes, never the scan. A reclaimed spot host is retried by Batch
 * itself (retryStrategies). The VPC (no NAT; see network.ts), the subnets and
 * whether the compute gets a public IP (`network.egress`) are passed in.
 */
import { Aws, Duration, RemovalPolicy, Size, Validations } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { Construct } from 'constructs';
import { ENV, EXTRACTOR_EXIT_TRANSIENT } from '../../core/contract';
import { DICOM_PSEUDONYM_SALT_KEY, FEATURES_PREFIX, UPLOADS_PREFIX } from '../../core/keys';
import { PACKAGE_ROOT } from '../../core/paths';
import { grantReadCreateObject, grantReadObjects, grantWriteObjects } from './grants';

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
  /** EC2 instance types for `gpu` mode. @default DEFAULT_GPU_INSTANCE_TYPES */
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
  /**
   * How long a job may wait at the head of the spot queue for spot capacity
   * (CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY) before Batch cancels it there and the
   * workflow moves it to the on-demand queue. 10 minutes to 24 hours.
   * @default Duration.minutes(10)
   */
  readonly spotCapacityWait?: Duration;
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

/** Defined in core/contract.ts (local mode names it without loading aws-cdk-lib); re-exported for the constructs. */
export { SPOT_CAPACITY_CANCEL_REASON } from '../../core/contract';

/**
 * Default GPU instance types: single-GPU NVIDIA types with at least the job's 4 vCPU and
 * 16 GiB whose GPUs run onnxruntime's CUDA 12 build (T4, A10G, L4). Several families and
 * sizes give the spot allocation strategy pools to choose from; each is in the price table.
 */
export const DEFAULT_GPU_INSTANCE_TYPES = ['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge'];

export class GpuJob extends Construct {
  /** The spot queue: every Extract job starts here. */
  readonly jobQueue: batch.JobQueue;
  /** The on-demand queue: ExtractOnDemand resubmits a job the spot queue could not place. */
  readonly onDemandQueue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  readonly jobRole: iam.Role;
  readonly logGroup: logs.LogGroup;
  /** Compute environments: the spot queue's, then the on-demand queue's. */
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
      description: 'sonomark feature extractor: read uploads, write features, read/create the DICOM pseudonym salt',
    });
    grantReadObjects(this.jobRole, props.uploadsBucket, UPLOADS_PREFIX, props.encryptionKey);
    grantWriteObjects(this.jobRole, props.artifactsBucket, FEATURES_PREFIX, props.encryptionKey);
    // The DICOM pseudonym salt: this role alone reads it, and creates it on first use
    // (core/dicom/salt-object.ts says why an S3 object and not a secret store).
    grantReadCreateObject(this.jobRole, props.artifactsBucket, DICOM_PSEUDONYM_SALT_KEY, props.encryptionKey);

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
    const environment = {
      [ENV.onnxExecutionProvider]: mode === 'gpu' ? 'cuda' : 'cpu',
      // The container requires it (its S3 client's region) and Batch on EC2 does not set it.
      AWS_REGION: Aws.REGION,
      // Where the DICOM pseudonym salt object lives; the salt itself never is in the environment.
      [ENV.artifactsBucket]: props.artifactsBucket.bucketName,
    };

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
          instanceTypes: (props.instanceTypes ?? DEFAULT_GPU_INSTANCE_TYPES).map((t) => new ec2.InstanceType(t)),
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
        // The smallest default types (g4dn/g5/g6.xlarge): 4 vCPU, 16 GiB; leave headroom for the ECS agent.
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
    const spotCapacityWait = props.spotCapacityWait ?? Duration.minutes(10);
    // A job that cannot get capacity would otherwise sit RUNNABLE until the execution
    // times out (hours), holding its scan RUNNING. Cancelled, it fails its Extract state:
    // in the spot queue, a capacity shortage moves it to the on-demand queue; anything
    // else, and any cancellation in the on-demand queue, records the scan FAILED with
    // Batch's reason.
    const cancelRunnable = (capacityWait: Duration): batch.JobStateTimeLimitAction[] =>
      RUNNABLE_CANCEL_REASONS.map((reason) => ({
        action: batch.JobStateTimeLimitActionsAction.CANCEL,
        state: batch.JobStateTimeLimitActionsState.RUNNABLE,
        maxTime:
          reason === batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY
            ? capacityWait
            : runnableTimeLimit,
        reason,
      }));
    const [spotCe, onDemandCe] = this.computeEnvironments as [
      batch.IManagedComputeEnvironment,
      batch.IManagedComputeEnvironment,
    ];
    this.jobQueue = new batch.JobQueue(this, 'Queue', {
      priority: 1,
      computeEnvironments: [{ computeEnvironment: spotCe, order: 1 }],
      jobStateTimeLimitActions: cancelRunnable(spotCapacityWait),
    });
    this.onDemandQueue = new batch.JobQueue(this, 'OnDemandQueue', {
      priority: 1,
      computeEnvironments: [{ computeEnvironment: onDemandCe, order: 1 }],
      jobStateTimeLimitActions: cancelRunnable(runnableTimeLimit),
    });

    this.jobDefinition = new batch.EcsJobDefinition(this, 'JobDefinition', {
      container,
      timeout: props.timeout ?? Duration.hours(1),
      propagateTags: true,
      // Retry only what is not the clip's fault: a reclaimed spot instance or a lost
      // host (both surface as status reason "Host EC2*"), an image pull that failed
      // on the host, and the extractor's own transient exit (EXTRACTOR_EXIT_TRANSIENT:
      // S3 throttling or a 5xx that outlasted the SDK's retries). A decode or model error
      // exits 1 and must not be retried (it would fail the same way, on a paid GPU).
      // Batch takes at most 5 rules, evaluated in order.
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
        batch.RetryStrategy.of(
          batch.Action.RETRY,
          batch.Reason.custom({ onExitCode: String(EXTRACTOR_EXIT_TRANSIENT) }),
        ),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
    });
  }
}
