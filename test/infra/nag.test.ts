import { AwsSolutionsChecks, HIPAASecurityChecks, type NagPack } from 'cdk-nag';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { synth, type Synthesized } from './helpers';

/** Unacknowledged findings (errors and warnings) a pack reports for the app after synthesis. */
function findings(built: Synthesized, pack: NagPack): string[] {
  return pack
    .validateScope(built.app)
    .violations.flatMap((v) => v.violatingResources.map((r) => `${v.severity} ${v.ruleName} ${r.constructPath ?? ''}`));
}

describe.each([
  ['gpu', {}],
  ['cpu', { sonomark: { computeMode: 'cpu' } }],
])('cdk-nag (%s compute)', (_mode, context) => {
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
