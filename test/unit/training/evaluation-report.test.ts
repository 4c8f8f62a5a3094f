/**
 * models/EVALUATION.md from the shipped reports: the sections that read only the experts' reports and the
 * extractor's training report come out exactly as shipped, so moving the renderer changed no number.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { generatedBlockBody } from '../../../core/generated-block';
import { EVALUATED_EXPERTS, writeEvaluationReport } from '../../../training/evaluation-report';
import { XRAY_EVALUATION_BEGIN, XRAY_EVALUATION_END } from '../../../training/ship-xray';
import { TrainingDataError } from '../../../training/experts/errors';

/** The shipped models' files are named by their versions: read them from the manifest, not typed. */
const SHIPPED = loadManifest(DEFAULT_MODELS_DIR).manifest;
const expertVersion = (name: string): string => SHIPPED.experts.find((e) => e.name === name)!.version;

const DIAGNOSES = ['covid', 'pneumonia', 'healthy'];

/** The `## title` section of a markdown document, up to the next section. */
function section(md: string, title: string): string {
  const start = md.indexOf(`\n## ${title}`);
  if (start < 0) throw new Error(`no section ${title}`);
  const end = md.indexOf('\n## ', start + 1);
  return md.slice(start, end < 0 ? undefined : end);
}

let work: string;
let models: string;
let training: string;

beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'sonomark-evaluation-'));
  models = path.join(work, 'models');
  training = path.join(work, 'training');
  cpSync(DEFAULT_MODELS_DIR, models, { recursive: true });
  for (const d of ['extractor', 'pocus', 'experts']) mkdirSync(path.join(training, d), { recursive: true });
  // The shipped metrics JSON holds the whole training report.
  cpSync(
    path.join(
      models,
      'extractor',
      `${SHIPPED.extractors.ultrasound.name}-${SHIPPED.extractors.ultrasound.version}.metrics.json`,
    ),
    path.join(training, 'extractor', 'report.json'),
  );
  // Stand-ins for the ablation reports: the shipped reports themselves.
  for (const name of EVALUATED_EXPERTS) {
    cpSync(
      path.join(models, 'experts', `${name}-${expertVersion(name)}.report.json`),
      path.join(training, 'experts', `${name}-biomarkers-only.report.json`),
    );
  }
  // A small end-to-end baseline: 12 items in 4 groups, each predicted right with probability 0.6.
  const items = Array.from({ length: 12 }, (_, i) => ({
    name: `item${i}`,
    file: `item${i}.mp4`,
    npy: `frames/item${i}.npy`,
    kind: 'video',
    license: 'CC BY 4.0',
    source: String(i % 3),
    group: `g${i % 4}`,
    diagnosis: DIAGNOSES[i % 3]!,
    fold: i % 4,
    sha256: String(i % 10).repeat(64),
  }));
  writeFileSync(
    path.join(training, 'pocus', 'dataset.json'),
    JSON.stringify({
      dataset: 'pocus',
      dataDir: '/data',
      size: 128,
      maxFrames: 64,
      folds: 4,
      diagnoses: DIAGNOSES,
      items,
    }),
  );
  writeFileSync(
    path.join(training, 'extractor', 'oof.json'),
    JSON.stringify({
      labels: [],
      diagnoses: DIAGNOSES,
      items: [],
      e2e: items.map((it, i) => ({
        name: it.name,
        fold: it.fold,
        diagnosis: DIAGNOSES.map((_, c) => (c === i % 3 ? 0.6 : 0.2)),
      })),
    }),
  );
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

describe('writeEvaluationReport', () => {
  it('renders the experts and the training cost exactly as shipped, from the reports the manifest names', () => {
    // Act
    const file = writeEvaluationReport(training, models);

    // Assess
    expect(file).toBe(path.join(models, 'EVALUATION.md'));
    const md = readFileSync(file, 'utf8');
    const shippedMd = readFileSync(path.join(DEFAULT_MODELS_DIR, 'EVALUATION.md'), 'utf8');
    expect(md.split('\n')[0]).toBe(shippedMd.split('\n')[0]);
    // The renderer has only added lines since the shipped EVALUATION.md (calibration, per-source tables,
    // failure modes, the B-line expert): every shipped line of these sections still comes out as it was.
    for (const title of ['Diagnosis', 'Severity', 'Triage', 'Training cost', 'Caveats']) {
      for (const line of section(shippedMd, title).split('\n')) {
        // This test gives an end-to-end baseline of its own (below); the shipped recipe may have left it out.
        if (/end-to-end/i.test(line)) continue;
        expect(section(md, title)).toContain(line);
      }
    }
    // Calibration and per-source numbers for every expert, from its report.
    for (const title of ['Diagnosis', 'Severity', 'Triage', 'B-lines']) {
      const text = section(md, title);
      expect(text).toMatch(/Calibration: /);
      expect(text).toMatch(/Per (held-out )?source/);
      expect(text).toMatch(/Known failure modes/);
    }
    expect(section(md, 'Protocol')).toContain('10 equal-width bins');
    // The baseline went through the experts' metric code: every item right.
    expect(section(md, 'End-to-end baseline')).toContain('| end-to-end CNN (CV) | 1.00');
  });

  it("carries the X-ray experts' section (sonomark train xray-experts writes it) over as it stands", () => {
    // Prepare: the shipped EVALUATION.md holds that section between its markers.
    const shipped = readFileSync(path.join(models, 'EVALUATION.md'), 'utf8');
    const body = generatedBlockBody(shipped, XRAY_EVALUATION_BEGIN, XRAY_EVALUATION_END);
    expect(body).toMatch(/xray-pneumonia/);

    // Act: rendered twice, as a retrain and then `sonomark train evaluate` would.
    writeEvaluationReport(training, models);
    const md = readFileSync(writeEvaluationReport(training, models), 'utf8');

    // Assess: the section once, with its heading, and its body unchanged.
    expect(md.split(XRAY_EVALUATION_BEGIN)).toHaveLength(2);
    expect(md).toContain(`## Chest X-ray experts\n\n${XRAY_EVALUATION_BEGIN}`);
    expect(generatedBlockBody(md, XRAY_EVALUATION_BEGIN, XRAY_EVALUATION_END)).toBe(body);
  });

  it('refuses a report that describes another model than the manifest ships', () => {
    // Prepare
    const file = path.join(models, 'experts', `severity-${expertVersion('severity')}.report.json`);
    const report = JSON.parse(readFileSync(file, 'utf8'));
    report.expert.sha256 = '0'.repeat(64);
    writeFileSync(file, JSON.stringify(report));

    // Act / Assess
    expect(() => writeEvaluationReport(training, models)).toThrow(TrainingDataError);
    expect(() => writeEvaluationReport(training, models)).toThrow(
      `severity-${expertVersion('severity')}.report.json describes severity@${expertVersion('severity')} (sha256 000000000000…), but the manifest ships`,
    );
  });

  it('names a missing input and what writes it', () => {
    // Prepare
    rmSync(path.join(training, 'extractor', 'oof.json'));

    // Act / Assess
    expect(() => writeEvaluationReport(training, models)).toThrow(
      `Cannot read out-of-fold predictions ${path.join(training, 'extractor', 'oof.json')}: no such file. ` +
        'training/python/train_extractor.py writes it (sonomark train extractor).',
    );
  });
});
