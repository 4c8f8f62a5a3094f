import { Match, type Template } from 'aws-cdk-lib/assertions';
import { synth } from './helpers';

/** Logical ids of the template's subnets, split by whether they auto-assign public IPv4 addresses. */
function subnetIds(template: Template): { public: string[]; isolated: string[] } {
  const subnets = Object.entries(template.findResources('AWS::EC2::Subnet')) as [string, any][];
  return {
    public: subnets.filter(([, s]) => s.Properties.MapPublicIpOnLaunch === true).map(([id]) => id),
    isolated: subnets.filter(([, s]) => s.Properties.MapPublicIpOnLaunch !== true).map(([id]) => id),
  };
}

const refs = (list: unknown[]): string[] => list.map((r: any) => r.Ref ?? r['Fn::GetAtt']?.[0]);

/** The compute environments' subnets and security groups (logical ids), deduplicated. */
function computeNetwork(template: Template): { subnets: string[]; securityGroups: string[] } {
  const envs = Object.values(template.findResources('AWS::Batch::ComputeEnvironment')) as any[];
  const uniq = (xs: string[]) => [...new Set(xs)].sort();
  return {
    subnets: uniq(envs.flatMap((e) => refs(e.Properties.ComputeResources.Subnets))),
    securityGroups: uniq(envs.flatMap((e) => refs(e.Properties.ComputeResources.SecurityGroupIds))),
  };
}

/** Every ingress and egress rule of a security group: inline, and as separate resources naming it. */
function rulesOf(template: Template, sgId: string): { ingress: any[]; egress: any[] } {
  const sg = template.toJSON().Resources[sgId];
  const names = (type: string) =>
    (Object.values(template.findResources(type)) as any[]).filter((r) =>
      JSON.stringify(r.Properties.GroupId).includes(`"${sgId}"`),
    );
  return {
    ingress: [...(sg.Properties.SecurityGroupIngress ?? []), ...names('AWS::EC2::SecurityGroupIngress')],
    egress: [...(sg.Properties.SecurityGroupEgress ?? []), ...names('AWS::EC2::SecurityGroupEgress')],
  };
}

/** Route tables with a default route to the internet gateway. */
function igwRouteTables(template: Template): string[] {
  return (Object.values(template.findResources('AWS::EC2::Route')) as any[])
    .filter((r) => r.Properties.GatewayId !== undefined && r.Properties.DestinationCidrBlock === '0.0.0.0/0')
    .map((r) => r.Properties.RouteTableId.Ref);
}

function gatewayEndpoint(template: Template, service: 's3' | 'dynamodb'): any {
  const found = (Object.values(template.findResources('AWS::EC2::VPCEndpoint')) as any[]).filter(
    (e) =>
      e.Properties.VpcEndpointType === 'Gateway' &&
      new RegExp(`\\.${service}"`).test(JSON.stringify(e.Properties.ServiceName)),
  );
  expect(found).toHaveLength(1);
  return found[0];
}

describe.each(['gpu', 'cpu'] as const)('network.egress public-ip (%s compute)', (computeMode) => {
  let template: Template;

  beforeAll(() => {
    // Prepare / Act
    template = synth({
      context: { sonomark: { computeMode, network: { egress: 'public-ip' } } },
      nag: false,
    }).pipelineTemplate;
  });

  test('no interface endpoint, no endpoint security group, no NAT gateway', () => {
    // Assess
    const endpoints = Object.values(template.findResources('AWS::EC2::VPCEndpoint')) as any[];
    expect(endpoints.filter((e) => e.Properties.VpcEndpointType === 'Interface')).toEqual([]);
    expect(endpoints.map((e) => e.Properties.VpcEndpointType)).toEqual(['Gateway', 'Gateway']);
    expect(JSON.stringify(template.toJSON())).not.toMatch(/EndpointSecurityGroup/);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::InternetGateway', 1);
  });

  test('S3 and DynamoDB gateway endpoints are routed from the public subnets too', () => {
    // Prepare
    const publicRouteTables = igwRouteTables(template);
    // Assess: two public subnets, each with its own route table holding the IGW route
    expect(publicRouteTables).toHaveLength(2);
    for (const service of ['s3', 'dynamodb'] as const) {
      const tables = refs(gatewayEndpoint(template, service).Properties.RouteTableIds);
      expect(tables).toHaveLength(4);
      expect(tables).toEqual(expect.arrayContaining(publicRouteTables));
    }
  });

  test('the Batch compute runs in the public subnets (auto-assigned public IPv4), one per AZ', () => {
    // Prepare
    const subnets = subnetIds(template);
    // Assess
    expect(subnets.public).toHaveLength(2);
    expect(subnets.isolated).toHaveLength(2);
    expect(computeNetwork(template).subnets).toEqual([...subnets.public].sort());
  });

  test('the compute security group has no ingress and allows only TCP 443 out', () => {
    // Prepare
    const { securityGroups } = computeNetwork(template);
    // Assess
    expect(securityGroups).toHaveLength(1);
    const rules = rulesOf(template, securityGroups[0]!);
    expect(rules.ingress).toEqual([]);
    expect(rules.egress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
  });

  test('the Lambda functions stay in the isolated subnets', () => {
    // Prepare
    const subnets = subnetIds(template);
    const functions = (Object.values(template.findResources('AWS::Lambda::Function')) as any[]).filter(
      (f) => f.Properties.VpcConfig !== undefined,
    );
    // Assess
    expect(functions.length).toBeGreaterThan(0);
    for (const f of functions) {
      expect(refs(f.Properties.VpcConfig.SubnetIds).sort()).toEqual([...subnets.isolated].sort());
    }
  });

  if (computeMode === 'cpu') {
    test('the Fargate job definition assigns a public IP', () => {
      // Assess
      template.hasResourceProperties('AWS::Batch::JobDefinition', {
        ContainerProperties: Match.objectLike({ NetworkConfiguration: { AssignPublicIp: 'ENABLED' } }),
      });
    });
  }
});

describe.each(['gpu', 'cpu'] as const)('network.egress endpoints, the default (%s compute)', (computeMode) => {
  test('isolated subnets only, no internet gateway; compute in them, with no ingress and HTTPS egress', () => {
    // Prepare / Act
    const template = synth({ context: { sonomark: { computeMode } }, nag: false }).pipelineTemplate;
    const subnets = subnetIds(template);
    const { subnets: computeSubnets, securityGroups } = computeNetwork(template);
    const rules = rulesOf(template, securityGroups[0]!);
    // Assess
    expect(subnets.public).toEqual([]);
    expect(computeSubnets).toEqual([...subnets.isolated].sort());
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    expect(igwRouteTables(template)).toEqual([]);
    expect(rules.ingress).toEqual([]);
    expect(rules.egress.map((r) => [r.IpProtocol, r.FromPort, r.ToPort])).toEqual([
      ['tcp', 443, 443],
      ['tcp', 443, 443],
    ]);
  });
});
