import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks, type NagPack } from 'cdk-nag';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { synth, type Synthesized } from './helpers';

/** Every acknowledgement in the app after synthesis (the pattern-matched ones included), as `rule path`. */
function acknowledgements(built: Synthesized): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of built.app.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, string>)) {
        // Recorded with the validation namespace (e.g. `Annotation::`); the rule id is what matters.
        out.set(`${id.replace(/^[A-Za-z]+::/, '')} ${c.node.path}`, reason);
      }
    }
  }
  return out;
}

/** Unacknowledged findings (errors and warnings) a pack reports for the app after synthesis. */
function findings(built: Synthesized, pack: NagPack): string[] {
  return pack
    .validateScope(built.app)
    .violations.flatMap((v) => v.violatingResources.map((r) => `${v.severity} ${v.ruleName} ${r.constructPath ?? ''}`));
}

describe.each([
  ['gpu', 'endpoints', {}],
  ['cpu', 'endpoints', { sonomark: { computeMode: 'cpu' } }],
  ['gpu', 'public-ip', { sonomark: { network: { egress: 'public-ip' } } }],
  ['cpu', 'public-ip', { sonomark: { computeMode: 'cpu', network: { egress: 'public-ip' } } }],
])('cdk-nag (%s compute, %s egress)', (_mode, _egress, context) => {
  let built: Synthesized;

  beforeAll(() => {
    // Prepare / Act: synth runs the packs as validation plugins and throws on any error.
    built = synth({ context });
  });

  test('AwsSolutions: no unacknowledged errors or warnings', () => {
    // Assess
    expect(findings(built, new AwsSolutionsChecks())).toEqual([]);
  });

  test('HIPAA Security: no unacknowledged errors or warnings', () => {
    // Assess
    expect(findings(built, new HIPAASecurityChecks())).toEqual([]);
  });

  test('the validation report lists no violations, and every acknowledgement has a reason', () => {
    // Prepare
    const reportFile = path.join(built.outdir, 'validation-report.json');
    const report = existsSync(reportFile)
      ? (JSON.parse(readFileSync(reportFile, 'utf8')) as any)
      : { pluginReports: [] };
    // Assess
    expect(report.pluginReports.length).toBeGreaterThan(0);
    for (const pr of report.pluginReports) {
      expect(pr.violations).toEqual([]);
      for (const sv of pr.suppressedViolations ?? []) expect(String(sv.reason ?? '').length).toBeGreaterThan(10);
    }
  });
});

describe('cdk-nag acknowledgements of network.egress', () => {
  test("public-ip adds exactly the public subnets' two findings, on those resources; the default has none of them", () => {
    // Prepare / Act
    const endpoints = acknowledgements(synth());
    const publicIp = acknowledgements(synth({ context: { sonomark: { network: { egress: 'public-ip' } } } }));
    // Assess
    const added = [...publicIp.keys()].filter((k) => !endpoints.has(k)).sort();
    expect(added).toEqual([
      'HIPAA.Security-VPCNoUnrestrictedRouteToIGW SonomarkPipeline/Network/Vpc/publicSubnet1/DefaultRoute',
      'HIPAA.Security-VPCNoUnrestrictedRouteToIGW SonomarkPipeline/Network/Vpc/publicSubnet2/DefaultRoute',
      'HIPAA.Security-VPCSubnetAutoAssignPublicIpDisabled SonomarkPipeline/Network/Vpc/publicSubnet1/Subnet',
      'HIPAA.Security-VPCSubnetAutoAssignPublicIpDisabled SonomarkPipeline/Network/Vpc/publicSubnet2/Subnet',
    ]);
    expect([...publicIp.keys()].filter((k) => endpoints.has(k))).toEqual([...endpoints.keys()]);
    for (const key of added) {
      for (const part of ['no inbound rule', 'TCP 443', 'gateway endpoints', 'ephemeral', 'TLS', 'operator']) {
        expect(publicIp.get(key)).toContain(part);
      }
    }
    expect([...endpoints.keys()].join('\n')).not.toMatch(/VPCNoUnrestrictedRouteToIGW|VPCSubnetAutoAssignPublicIp/);
  });
});
