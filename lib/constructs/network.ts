/**
 * The private network of the pipeline: isolated subnets only, no NAT gateway, no
 * internet route. S3 and DynamoDB are reached through gateway endpoints (free);
 * interface endpoints exist only for what the extractor container needs to start
 * and log. Each interface endpoint costs about $7.3/month per AZ while idle
 * ($0.01/h in us-east-1); six endpoints in two AZs is ~$88/month, the fixed price
 * of a pipeline where no clip ever crosses the internet (a NAT gateway would be
 * ~$66/month for two AZs plus $0.045/GB of clips).
 */
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export const VPC_CIDR = '10.40.0.0/16';

export interface NetworkProps {
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  /** @default 2 */
  readonly maxAzs?: number;
}

export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  /** For the Lambda functions: no ingress; egress only inside the VPC (endpoints). */
  readonly functionSecurityGroup: ec2.SecurityGroup;
  /** For the Batch instances / tasks: no ingress; egress only inside the VPC (endpoints). */
  readonly computeSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      // A literal CIDR so security-group rules are literals too (reviewable, and cdk-nag can evaluate them).
      ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
      maxAzs: props.maxAzs ?? 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 }],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
    });

    Validations.of(this.vpc).acknowledge({
      id: 'HIPAA.Security-VPCDefaultSecurityGroupClosed',
      reason:
        "Nothing is attached to the default security group (every ENI uses the groups below). Closing it needs CDK's custom-resource Lambda (restrictDefaultSecurityGroup).",
    });

    // VPC flow logs: an audit trail of every connection attempt (HIPAA, AwsSolutions-VPC7).
    const flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.logRetention,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });

    const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: this.vpc,
      description: 'sonomark interface endpoints: HTTPS from inside the VPC',
      allowAllOutbound: false,
    });
    endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), 'HTTPS from the VPC');

    // ECR (api + dkr) to pull the extractor image, CloudWatch Logs for the container's
    // awslogs driver. Image layers come from S3 through the gateway endpoint.
    const interfaceEndpoints: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
      EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
      EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
      // The ECS agent on the Batch EC2 hosts registers with ECS; without NAT it needs these.
      Ecs: ec2.InterfaceVpcEndpointAwsService.ECS,
      EcsAgent: ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
      EcsTelemetry: ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
    };
    for (const [name, service] of Object.entries(interfaceEndpoints)) {
      this.vpc.addInterfaceEndpoint(name, {
        service,
        privateDnsEnabled: true,
        // Our group already allows HTTPS from the VPC CIDR (as a literal); `open` would add a token rule.
        open: false,
        securityGroups: [endpointSecurityGroup],
        subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      });
    }

    this.functionSecurityGroup = this.restrictedGroup('FunctionSecurityGroup', 'sonomark Lambda functions');
    this.computeSecurityGroup = this.restrictedGroup('ComputeSecurityGroup', 'sonomark extractor compute');
  }

  /** A group with no ingress whose only egress is HTTPS to the VPC (interface endpoints) and the gateway endpoint prefix lists. */
  private restrictedGroup(id: string, description: string): ec2.SecurityGroup {
    const sg = new ec2.SecurityGroup(this, id, { vpc: this.vpc, description, allowAllOutbound: false });
    sg.addEgressRule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), 'HTTPS to interface endpoints');
    // Gateway endpoints are reached through AWS-managed prefix lists, not VPC addresses.
    sg.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to S3/DynamoDB gateway endpoints (no internet route exists)',
    );
    return sg;
  }
}
