import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks, type NagPack } from 'cdk-nag';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { NAG_PATTERN_ACKNOWLEDGEMENTS } from '../../lib/nag';
import { synth, type Synthesized } from './helpers';

/** Namespaces of the acknowledgements the project makes (cdk-nag findings are Annotation::); the rest are aws-cdk-lib's own. */
const PROJECT_ACK_NAMESPACE = /^Annotation::/;

/**
 * Every acknowledgement with its namespaced id (e.g. `Annotation::AwsSolutions-IAM5[...]`), by construct path:
 * the validation report lists only the findings a plugin suppressed, never the project's own acknowledgements.
 */
function namespacedAcknowledgements(built: Synthesized): { id: string; path: string; reason: string }[] {
  const out: { id: string; path: string; reason: string }[] = [];
  for (const c of built.app.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, string>))
        out.push({ id, path: c.node.path, reason: String(reason ?? '') });
    }
  }
  return out;
}

/** Why a reason is not specific enough, or undefined: it must say what is accepted and why, in a sentence. */
function reasonProblem(reason: string): string | undefined {
  const words = reason.trim().split(/\s+/).filter(Boolean);
  if (words.length < 8) return `too short (${words.length} words)`;
  if (
    /^(todo|tbd|fixme|n\/?a|ok|ignore|ignored|suppressed?|acknowledged?|false positive|not needed)\b/i.test(
      reason.trim(),
    )
  )
    return 'a placeholder, not a reason';
  return undefined;
}

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
  ['lambda', 'endpoints', { sonomark: { computeMode: 'lambda' } }],
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

  test("every one of the project's own cdk-nag acknowledgements has a specific reason", () => {
    // Prepare
    const own = namespacedAcknowledgements(built).filter((a) => PROJECT_ACK_NAMESPACE.test(a.id));
    // Assess: the project's acknowledgements are seen (IAM5 on the function roles at least) and each is justified.
    expect(own.length).toBeGreaterThan(20);
    expect(own.some((a) => a.id.includes('AwsSolutions-IAM5') && a.path.includes('/ValidateUpload/Role/'))).toBe(true);
    const problems = own.map((a) => [a.id, a.path, reasonProblem(a.reason)]).filter(([, , p]) => p !== undefined);
    expect(problems).toEqual([]);
  });
});

describe("the project's pattern acknowledgements (lib/nag.ts)", () => {
  test('are each used by the default app or the app with a site registry, so none outlives its finding', () => {
    // Prepare: the API stack (and its acknowledgements) exists only when sites are registered.
    const withSites = synth({
      context: { sonomark: { sites: [{ id: 'site-a', displayName: 'Site A' }] } },
    });
    const own = [...namespacedAcknowledgements(synth()), ...namespacedAcknowledgements(withSites)].filter((a) =>
      PROJECT_ACK_NAMESPACE.test(a.id),
    );
    // Assess
    const unused = NAG_PATTERN_ACKNOWLEDGEMENTS.filter(
      (p) => !own.some((a) => p.id.test(a.id.replace(PROJECT_ACK_NAMESPACE, '')) && p.path.test(a.path + '/')),
    ).map((p) => `${p.id} ${p.path}`);
    expect(unused).toEqual([]);
  });

  test('each carry a specific reason, and the reason check refuses placeholders', () => {
    for (const p of NAG_PATTERN_ACKNOWLEDGEMENTS)
      expect([p.id.source, reasonProblem(p.reason)]).toEqual([p.id.source, undefined]);
    expect(reasonProblem('ok')).toMatch(/too short/);
    expect(reasonProblem('TODO: write why this wildcard is acceptable here later on')).toMatch(/placeholder/);
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
