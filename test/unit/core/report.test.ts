/**
 * The pure report renderer: one self-contained page from features, expert results
 * and model cards. The browser suite (test/browser/report.test.ts) opens real ones.
 */
import { BIOMARKERS } from '../../../core/biomarkers';
import { XRAY_FINDINGS } from '../../../core/modality';
import { loadManifest } from '../../../core/manifest';
import {
  biomarkerPeaks,
  renderReport,
  RUO,
  thumbnailSamples,
  type ReportInputJson,
  type ReportScanInput,
} from '../../../core/report';
import type { ExpertOutput, ExpertResult, FeaturesDocument } from '../../../core/schemas';
import { grayPng } from '../../../local/report';
import { featuresDocument } from '../helpers/fakes';

const { manifest } = loadManifest();
/** The shipped expert's version: results of it carry its card's caveats in the report. */
const shippedVersion = (name: string): string => manifest.experts.find((e) => e.name === name)!.version;
const extractor = {
  name: manifest.extractors.ultrasound.name,
  version: manifest.extractors.ultrasound.version,
  sha256: manifest.extractors.ultrasound.sha256,
};
const SHA = 'a'.repeat(64);

function features(scanId: string): FeaturesDocument {
  const doc = featuresDocument(scanId, extractor, manifest.extractors.ultrasound.outputs.embedding.dim);
  // Distinct peaks: a_lines peaks at sample 0, b_lines at 3, the rest at 2.
  doc.frames.a_lines = [0.7, 0.2, 0.1, 0.1];
  doc.frames.b_lines = [0.1, 0.2, 0.3, 0.95];
  doc.sampling.decodedFrames = 40;
  doc.sampling.frameIndices = [0, 13, 26, 39];
  return doc;
}

function result(scanId: string, name: string, version: string, output: ExpertOutput): ExpertResult {
  return {
    scanId,
    expert: { name, version, sha256: SHA },
    extractor,
    output,
    inferMs: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

const diagnosis = (label: string): ExpertOutput => ({
  kind: 'classification',
  label,
  probabilities: {
    covid: label === 'covid' ? 0.7 : 0.15,
    pneumonia: label === 'pneumonia' ? 0.7 : 0.15,
    healthy: label === 'healthy' ? 0.7 : 0.15,
  },
});
const severity: ExpertOutput = {
  kind: 'ordinal',
  score: 2,
  expected: 1.8,
  probabilities: { '0': 0.1, '1': 0.2, '2': 0.5, '3': 0.2 },
};
const triage: ExpertOutput = { kind: 'binary', label: 'abnormal', positive: 'abnormal', probability: 0.83 };

function completed(scanId: string, label: string, extra: ExpertResult[] = []): ReportScanInput {
  const f = features(scanId);
  const png = grayPng(new Uint8Array(128 * 128).fill(90), 128, 128).toString('base64');
  return {
    scanId,
    label,
    status: 'COMPLETED',
    features: f,
    results: [
      result(scanId, 'diagnosis', shippedVersion('diagnosis'), diagnosis('covid')),
      result(scanId, 'severity', shippedVersion('severity'), severity),
      result(scanId, 'triage', shippedVersion('triage'), triage),
      ...extra,
    ],
    thumbnails: thumbnailSamples(f).map((sample) => ({ sample, width: 128, height: 128, png })),
  };
}

const input = (scans: ReportScanInput[]): ReportInputJson => ({
  title: 'test report',
  generatedAt: '2026-01-01T00:00:00.000Z',
  source: 'unit test',
  scans,
  models: { extractors: [manifest.extractors.ultrasound], experts: manifest.experts },
});

describe('biomarkerPeaks / thumbnailSamples', () => {
  it("finds each biomarker's most probable sampled frame and the distinct frames to decode", () => {
    // Prepare
    const doc = features('0'.repeat(32));

    // Act
    const peaks = biomarkerPeaks(doc);

    // Assess
    expect(peaks.map((p) => p.biomarker)).toEqual([...BIOMARKERS]);
    expect(peaks.find((p) => p.biomarker === 'a_lines')).toMatchObject({ sample: 0, frame: 0, probability: 0.7 });
    expect(peaks.find((p) => p.biomarker === 'b_lines')).toMatchObject({ sample: 3, frame: 39, probability: 0.95 });
    expect(thumbnailSamples(doc)).toEqual([0, 2, 3]);
  });
});

describe('renderReport', () => {
  it('renders one clip: timeline, peak thumbnails, expert charts with versions and card caveats, and no network', () => {
    // Prepare
    const scan = completed('1'.repeat(32), 'clip <one>.mp4');

    // Act
    const html = renderReport(input([scan]));

    // Assess: self-contained (no external URL anywhere; the CSP forbids fetches).
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain("default-src 'none'");
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).toContain('clip &lt;one&gt;.mp4');
    // Charts are ECharts SVG with named axes.
    expect(html.match(/data-chart="timeline"/g)).toHaveLength(1);
    expect(html).toMatch(/<svg[^>]*viewBox/);
    expect(html).toContain('decoded frame');
    expect(html).toContain('probability');
    for (const b of BIOMARKERS) expect(html).toContain(b.replace(/_/g, ' '));
    for (const n of ['diagnosis', 'severity', 'triage']) expect(html).toContain(`data-chart="expert-${n}"`);
    // Three distinct peak frames, each a PNG.
    expect(html.match(/<img src="data:image\/png;base64,/g)).toHaveLength(3);
    expect(html).toContain('peak of b lines 0.95');
    // Versions and caveats of the extractor and every expert; the research-use note beside the clinical labels.
    expect(html).toContain(`${extractor.name} ${extractor.version}`);
    // (the experts this scan has results of: the report shows the caveats of what it reports)
    for (const e of manifest.experts.filter((x) => ['diagnosis', 'severity', 'triage'].includes(x.name))) {
      expect(html).toContain(e.card.limitations[0] ?? e.card.intendedUse);
    }
    expect(html).toContain(manifest.extractors.ultrasound.card.limitations[0]);
    expect(html.split(RUO).length - 1).toBeGreaterThanOrEqual(4);
    expect(html).toContain('severity: grade 2 (expected 1.80)');
    expect(html).toContain('triage: abnormal (P(abnormal) 83%)');
    // One clip: no cohort section.
    expect(html).not.toContain('id="cohort"');
  });

  it('renders an X-ray: its one image beside its findings and the expert outputs, no timeline or peak frames', () => {
    // Prepare: a one-image X-ray document (the contract's shape: XRAY_FINDINGS, one frame).
    const scanId = '5'.repeat(32);
    const base = featuresDocument(scanId, extractor, manifest.extractors.ultrasound.outputs.embedding.dim);
    const stats = (p: number) => ({ mean: p, max: p, p90: p, fractionAbove: p > 0.5 ? 1 : 0 });
    const probabilities = { pneumonia: 0.81, viral: 0.3, covid: 0.12 };
    const doc: FeaturesDocument = {
      ...base,
      modality: 'xray',
      sampling: { ...base.sampling, maxFrames: 1, decodedFrames: 1, frameIndices: [0] },
      biomarkers: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, stats(probabilities[f])])),
      frames: Object.fromEntries(XRAY_FINDINGS.map((f) => [f, [probabilities[f]]])),
    };
    const png = grayPng(new Uint8Array(128 * 128).fill(90), 128, 128).toString('base64');
    const pneumonia: ExpertOutput = { kind: 'binary', label: 'pneumonia', positive: 'pneumonia', probability: 0.77 };
    const scan: ReportScanInput = {
      scanId,
      label: 'chest.png',
      status: 'COMPLETED',
      features: doc,
      results: [result(scanId, 'xray-pneumonia', '1.0.0', pneumonia)],
      thumbnails: [{ sample: 0, width: 128, height: 128, png }],
    };

    // Act
    const html = renderReport(input([scan]));

    // Assess
    expect(html).toContain('Image and findings');
    expect(html.match(/<img src="data:image\/png;base64,/g)).toHaveLength(1);
    expect(html).toContain('data-chart="findings"');
    expect(html).toContain('pneumonia 81%, viral 30%, covid 12%');
    expect(html).toContain('data-chart="expert-xray-pneumonia"');
    expect(html).toContain('xray-pneumonia: pneumonia (P(pneumonia) 77%)');
    expect(html).not.toContain('data-chart="timeline"');
    expect(html).not.toContain('Peak frames');
  });

  it('runs the timeline in seconds when the frame rate is known', () => {
    // Prepare
    const scan = { ...completed('2'.repeat(32), 'a.mp4'), frameRate: 20 };

    // Act
    const html = renderReport(input([scan]));

    // Assess: frame 39 at 20 fps is 1.95 s.
    expect(html).toContain('time (s)');
    expect(html).toContain('1.95 s');
  });

  it('renders a cohort: sortable table, distributions, failures with reasons, no agreement without two versions', () => {
    // Prepare
    const scans: ReportScanInput[] = [
      completed('3'.repeat(32), 'b.mp4'),
      completed('4'.repeat(32), 'a.mp4'),
      {
        scanId: '5'.repeat(32),
        label: 'bad.gif',
        status: 'FAILED',
        error: { code: 'UNSUPPORTED_FORMAT', message: 'Not a clip.' },
      },
      {
        scanId: null,
        label: 'gone.mp4',
        status: 'NOT_ANALYZED',
        error: { code: 'UNREADABLE_INPUT', message: 'No such file.' },
      },
    ];

    // Act
    const html = renderReport(input(scans));

    // Assess
    expect(html).toContain('id="cohort"');
    expect(html).toMatch(/<table id="scan-table" class="sortable">/);
    expect(html.match(/<tr><td data-sort="\d+">/g)).toHaveLength(4);
    expect(html).toContain('<strong>2</strong> completed');
    for (const n of ['diagnosis', 'severity', 'triage']) expect(html).toContain(`data-chart="distribution-${n}"`);
    expect(html).toMatch(/<table id="failures">[\s\S]*UNSUPPORTED_FORMAT[\s\S]*Not a clip\.[\s\S]*No such file\./);
    expect(html).not.toContain('id="agreement"');
    expect(html.match(/data-chart="timeline"/g)).toHaveLength(2);
  });

  it('shows agreement between two versions of an expert when scans carry both', () => {
    // Prepare: the newer diagnosis agrees on one scan of two; severity has one version only.
    const scans = [
      completed('6'.repeat(32), 'a.mp4', [result('6'.repeat(32), 'diagnosis', '9.9.9', diagnosis('covid'))]),
      completed('7'.repeat(32), 'b.mp4', [result('7'.repeat(32), 'diagnosis', '9.9.9', diagnosis('healthy'))]),
    ];

    // Act
    const html = renderReport(input(scans));

    // Assess
    const from = shippedVersion('diagnosis').replace(/\./g, '\\.');
    expect(html).toMatch(
      new RegExp(`id="agreement"[\\s\\S]*<td>diagnosis</td><td>${from} → 9\\.9\\.9</td><td>2</td><td>1 \\(50%\\)</td>`),
    );
    // The card of a version the manifest does not hold is said to be missing, not invented.
    expect(html).toContain('No card for this version in the manifest');
  });

  it('rejects input that breaks the schema, naming the field', () => {
    // Prepare
    const bad = input([
      { ...completed('8'.repeat(32), 'a.mp4'), thumbnails: [{ sample: 0, width: 1, height: 1, png: 'not base64!' }] },
    ]);

    // Act / Assess
    expect(() => renderReport(bad)).toThrow(/scans\.0\.thumbnails\.0\.png: must be base64/);
  });
});
