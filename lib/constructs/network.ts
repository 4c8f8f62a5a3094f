/**
 * The network of the pipeline. Never a NAT gateway; S3 and DynamoDB are reached
 * through gateway endpoints (free) from every subnet; the Lambda functions run in
 * isolated subnets. How the extractor's compute reaches ECR, ECS and CloudWatch Logs
 * is `egress` (NETWORK_EGRESS in lib/config.ts):
 *
 * - `endpoints` (default): isolated subnets only, no internet route. Interface
 *   endpoints exist only for what the extractor's compute needs to start and log, and
 *   only those its compute mode needs (INTERFACE_ENDPOINTS in lib/config.ts). Each
 *   costs about $7.3/month per AZ while idle ($0.01/h in us-east-1): 6 endpoints in two
 *   AZs (GPU mode) is ~$88/month, 3 (Fargate CPU mode) ~$44, half that with
 *   `endpointAzs: 1`. That is the fixed price of a pipeline where no clip ever crosses
 *   the internet; a NAT gateway would be ~$33/month per AZ plus $0.045/GB of clips.
 * - `public-ip`: the compute also gets public subnets (auto-assigned public IPv4, a
 *   default route to an internet gateway) and a security group with no ingress and
 *   HTTPS-only egress; no interface endpoint and no endpoint security group. $0 at
 *   rest; $0.005/h per public IPv4 address while a host runs. The route to the internet
 *   gateway fails HIPAA Security's VPCNoUnrestrictedRouteToIGW and the subnets its
 *   VPCSubnetAutoAssignPublicIpDisabled: both are acknowledged here, in this mode
 *   only, on those resources, with the reasons.
 */
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, type IConstruct } from 'constructs';
import type { InterfaceEndpointName, NetworkEgress } from '../config';

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
  /** Interface endpoints to create (interfaceEndpointsFor(computeMode, egress) in lib/config.ts). */
  readonly interfaceEndpoints: readonly InterfaceEndpointName[];
  /** How the extractor's compute reaches ECR, ECS and CloudWatch Logs. @default 'endpoints' */
  readonly egress?: NetworkEgress;
  /** @default 2 */
  readonly maxAzs?: number;
  /** How many of the VPC's AZs get the interface endpoints. @default - every AZ */
  readonly endpointAzs?: number;
}

export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly egress: NetworkEgress;
  /** For the Lambda functions: no ingress; egress only inside the VPC (endpoints). */
  readonly functionSecurityGroup: ec2.SecurityGroup;
  /**
   * For the Batch instances / tasks: no ingress; egress only HTTPS, inside the VPC
   * (endpoints) or, with `public-ip`, to AWS's public API endpoints as well.
   */
  readonly computeSecurityGroup: ec2.SecurityGroup;
  /** Where the extractor's compute runs: the isolated subnets, or the public ones with `public-ip`. */
  readonly computeSubnets: ec2.SubnetSelection;
  /** Whether the compute gets a public IPv4 address (`public-ip`); the Fargate job definition must ask for it. */
  readonly computeAssignsPublicIp: boolean;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.egress = props.egress ?? 'endpoints';
    const publicIp = this.egress === 'public-ip';

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      // A literal CIDR so security-group rules are literals too (reviewable, and cdk-nag can evaluate them).
      ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
      maxAzs: props.maxAzs ?? 2,
      natGateways: 0,
      // The isolated subnets come first, so they keep their CIDRs (and logical ids) in both modes.
      subnetConfiguration: [
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 },
        ...(publicIp
          ? [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 22, mapPublicIpOnLaunch: true }]
          : []),
      ],
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

    if (props.interfaceEndpoints.length > 0) {
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
    }

    this.functionSecurityGroup = this.restrictedGroup('FunctionSecurityGroup', 'sonomark Lambda functions');
    if (publicIp) {
      this.computeSubnets = { subnetType: ec2.SubnetType.PUBLIC };
      this.computeAssignsPublicIp = true;
      this.computeSecurityGroup = this.publicComputeGroup();
      this.acknowledgePublicSubnets();
    } else {
      this.computeSubnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
      this.computeAssignsPublicIp = false;
      this.computeSecurityGroup = this.restrictedGroup('ComputeSecurityGroup', 'sonomark extractor compute');
    }
  }

  /**
   * `public-ip` compute: no ingress at all (nothing can open a connection to a host),
   * and one egress rule, HTTPS. ECR, ECS, CloudWatch Logs and STS are HTTPS APIs; image
   * layers come from S3 over HTTPS too; S3 and DynamoDB are routed to the gateway
   * endpoints (prefix lists) before the internet gateway. DNS, NTP and instance metadata
   * go to VPC/link-local addresses that security groups do not filter.
   */
  private publicComputeGroup(): ec2.SecurityGroup {
    const sg = new ec2.SecurityGroup(this, 'ComputeSecurityGroup', {
      vpc: this.vpc,
      description: 'sonomark extractor compute (public IP): no ingress, HTTPS egress only',
      allowAllOutbound: false,
    });
    sg.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to AWS APIs (ECR, ECS, Logs) via the internet gateway; S3/DynamoDB via gateway endpoints',
    );
    return sg;
  }

  /** The cdk-nag findings `public-ip` brings, acknowledged on the public subnets and their default routes. */
  private acknowledgePublicSubnets(): void {
    const why =
      'network.egress public-ip, chosen explicitly by the operator so the network costs ~$0 at rest ' +
      '(no interface endpoints, no NAT): only the ephemeral Batch extractor hosts/tasks (minvCpus 0) run here. ' +
      'Their security group has no inbound rule and allows only TCP 443 out, all TLS; S3 and DynamoDB, where ' +
      'clips, features and results live, are routed to the gateway endpoints of this VPC, so reads and writes of that ' +
      'data do not pass the internet gateway. The Lambda functions stay in the isolated subnets.';
    for (const subnet of this.vpc.publicSubnets) {
      Validations.of(subnet.node.defaultChild as IConstruct).acknowledge({
        id: 'HIPAA.Security-VPCSubnetAutoAssignPublicIpDisabled',
        reason: `Public IPv4 addresses are how the hosts reach ECR, ECS and CloudWatch Logs without endpoints. ${why}`,
      });
      const route = (subnet as ec2.PublicSubnet).node.tryFindChild('DefaultRoute');
      if (route) {
        Validations.of(route).acknowledge({
          id: 'HIPAA.Security-VPCNoUnrestrictedRouteToIGW',
          reason: `The default route to the internet gateway is only in the public subnets of the extractor compute, and no inbound connection reaches the hosts through it (their security group has no inbound rule). ${why}`,
        });
      }
    }
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
