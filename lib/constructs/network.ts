/**
 * The private network of the pipeline: isolated subnets only, no NAT gateway, no
 * internet route. S3 and DynamoDB are reached through gateway endpoints (free);
 * interface endpoints exist only for what the extractor's compute needs to start
 * and log, and only those its compute mode needs (INTERFACE_ENDPOINTS in
 * lib/config.ts). Each costs about $7.3/month per AZ while idle ($0.01/h in
 * us-east-1): 6 endpoints in two AZs (GPU mode) is ~$88/month, 3 (Fargate CPU
 * mode) ~$44, half that with `endpointAzs: 1`. That is the fixed price of a
 * pipeline where no clip ever crosses the internet; a NAT gateway would be
 * ~$33/month per AZ plus $0.045/GB of clips, and an internet route from the
 * compute subnets fails HIPAA Security's VPCNoUnrestrictedRouteToIGW.
 */
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { InterfaceEndpointName } from '../config';

export const VPC_CIDR = '10.40.0.0/16';

/** The AWS service behind each INTERFACE_ENDPOINTS name, and its construct id. */
const ENDPOINT_SERVICES: Record<InterfaceEndpointName, { id: string; service: ec2.InterfaceVpcEndpointAwsService }> = {
  'ecr.api': { id: 'EcrApi', service: ec2.InterfaceVpcEndpointAwsService.ECR },
  'ecr.dkr': { id: 'EcrDocker', service: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER },
  logs: { id: 'Logs', service: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS },
  ecs: { id: 'Ecs', service: ec2.InterfaceVpcEndpointAwsService.ECS },
  'ecs-agent': { id: 'EcsAgent', service: ec2.InterfaceVpcEndpointAwsService.ECS_AGENT },
  'ecs-telemetry': { id: 'EcsTelemetry', service: ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY },
};

export interface NetworkProps {
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  /** Interface endpoints to create (interfaceEndpointsFor(computeMode) in lib/config.ts). */
  readonly interfaceEndpoints: readonly InterfaceEndpointName[];
  /** @default 2 */
  readonly maxAzs?: number;
  /** How many of the VPC's AZs get the interface endpoints. @default - every AZ */
  readonly endpointAzs?: number;
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

    // Endpoints in fewer AZs than the subnets are still reached from every AZ: private
    // DNS resolves to the endpoint ENIs wherever they are (cross-AZ traffic, $0.01/GB).
    const endpointSubnets = this.vpc.isolatedSubnets.slice(0, props.endpointAzs ?? this.vpc.isolatedSubnets.length);
    for (const name of props.interfaceEndpoints) {
      const { id: endpointId, service } = ENDPOINT_SERVICES[name];
      this.vpc.addInterfaceEndpoint(endpointId, {
        service,
        privateDnsEnabled: true,
        // Our group already allows HTTPS from the VPC CIDR (as a literal); `open` would add a token rule.
        open: false,
        securityGroups: [endpointSecurityGroup],
        subnets: { subnets: endpointSubnets },
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
