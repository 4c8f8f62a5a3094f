/** The X-ray extractor's card and EVALUATION.md block, rendered from its shipped metrics. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { readTrainingJson } from '../../../training/schemas';
import {
  anchorTable,
  renderXraySection,
  withShippedXraySection,
  withXraySection,
  XRAY_BLOCK_BEGIN,
  XRAY_BLOCK_END,
  XrayMetrics,
  type XrayAnchorReport,
} from '../../../training/ship-xray';

const row = (fraction: number, arm: 'ssl-finetune' | 'scratch' | 'ssl-linear', auc: number, seed = 1) => ({
  fraction,
  seed,
  arm,
  auc,
  ci95: [auc - 0.05, auc + 0.04] as [number, number],
  n: 900,
  positives: 650,
  patients: 500,
  train_images: Math.round(3700 * fraction),
  train_patients: Math.round(2000 * fraction),
  fit_s: 10,
});

describe('anchorTable', () => {
  it('gives one row per fraction, one seed with its CI, several seeds as mean and range', () => {
    const a: XrayAnchorReport = {
      task: 'kermany',
      test: { fold: 0, images: 900, patients: 500, positives: 650 },
      pool: { images: 3700, patients: 2000 },
      rows: [
        row(0.01, 'ssl-finetune', 0.8, 1),
        row(0.01, 'ssl-finetune', 0.9, 2),
        row(0.01, 'scratch', 0.6, 1),
        row(1, 'ssl-finetune', 0.95),
        row(1, 'scratch', 0.94),
        row(1, 'ssl-linear', 0.93),
      ],
    };
    const lines = anchorTable(a).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(
      /^\| 1% +\| 20 \/ 37 +\| 0\.850 \(2 seeds: 0\.800–0\.900\) \| 0\.600 \(0\.550–0\.640\) +\| n\/a/,
    );
    expect(lines[3]).toMatch(/^\| 100% +\| 2000 \/ 3700 +\| 0\.950 \(0\.900–0\.990\) +\| 0\.940/);
  });
});

describe('the EVALUATION.md block', () => {
  it('replaces the block between its markers, or appends it with them', () => {
    const appended = withXraySection('# Evaluation\n\ntext\n', 'NEW');
    expect(appended).toBe(`# Evaluation\n\ntext\n\n${XRAY_BLOCK_BEGIN}\n\nNEW\n\n${XRAY_BLOCK_END}\n`);
    expect(withXraySection(appended, 'NEWER')).toBe(appended.replace('NEW', 'NEWER'));
  });

  it("is what the shipped models/EVALUATION.md holds for the manifest's X-ray extractor", () => {
    const { manifest } = loadManifest(DEFAULT_MODELS_DIR);
    const x = manifest.extractors.xray;
    expect(x).toBeDefined();
    const text = readFileSync(path.join(DEFAULT_MODELS_DIR, 'EVALUATION.md'), 'utf8');
    expect(withShippedXraySection(text, DEFAULT_MODELS_DIR, manifest)).toBe(text);
    const metrics = readTrainingJson(
      path.join(DEFAULT_MODELS_DIR, 'extractor', `${x!.name}-${x!.version}.metrics.json`),
      XrayMetrics,
      'X-ray metrics',
    );
    const section = renderXraySection(metrics);
    expect(section).toContain(`## Chest X-ray (${x!.name} ${x!.version})`);
    expect(section).toContain('xray-1');
  });
});
