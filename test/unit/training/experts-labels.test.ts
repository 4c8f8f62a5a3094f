/**
 * Bad training inputs get an error that names the file, the line and what to do:
 * missing columns (listing the ones there are), unknown scans, bad targets, too
 * few classes, mixed extractors.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseLabels, readFeatures, indexFeatures } from '../../../training/experts/data';
import { TrainingDataError } from '../../../training/experts/errors';
import { syntheticLabelsCsv, syntheticRows, type SyntheticRow } from '../../../training/experts/synthetic';
import { runExpertTraining, type TrainOptions } from '../../../training/experts/train-command';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { ExpertReport, readTrainingJson } from '../../../training/schemas';

// Several tests train (cross-validation included): seconds each, more on a busy machine.
jest.setTimeout(60_000);

let dir: string;
let rows: SyntheticRow[];
let features: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sonomark-labels-'));
  const { manifest } = writeFixtureModels(path.join(dir, 'models'));
  const x = manifest.extractors.ultrasound;
  rows = syntheticRows({ seed: 5, rows: 60, extractor: { name: x.name, version: x.version, sha256: x.sha256 } });
  features = path.join(dir, 'features.jsonl');
  writeFileSync(features, jsonl(rows));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function jsonl(rs: readonly SyntheticRow[]): string {
  return (
    rs
      .map((r) =>
        JSON.stringify({ file: `/synthetic/${r.name}.mp4`, name: r.name, sha256: r.sha256, features: r.features }),
      )
      .join('\n') + '\n'
  );
}

/** Writes labels.csv after `edit` (line index 0 is the header, so lines[16] is file line 17). */
function labelsCsv(edit: (lines: string[]) => void = () => {}): string {
  const lines = syntheticLabelsCsv(rows).trimEnd().split('\n');
  edit(lines);
  const file = path.join(dir, `labels-${Math.random().toString(36).slice(2)}.csv`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const cell = (lines: string[], line: number, column: number, value: string) => {
  const cells = lines[line - 1]!.split(',');
  cells[column] = value;
  lines[line - 1] = cells.join(',');
};
// Columns: file,name,sha256,group,source,fold,diagnosis,triage,severity
const COL = { sha256: 2, group: 3, fold: 5, diagnosis: 6, severity: 8 };

function options(labels: string, overrides: Partial<TrainOptions> = {}): TrainOptions {
  return {
    features,
    labels,
    target: 'diagnosis',
    kind: 'classification',
    name: 'diagnosis',
    classes: 'covid,pneumonia,healthy',
    groupColumn: 'group',
    foldColumn: 'fold',
    modelsDir: path.join(dir, 'models'),
    bootstrap: 0,
    dryRun: true,
    ...overrides,
  };
}

const train = (o: TrainOptions) => runExpertTraining(o);

describe('experts train: bad labels name the row', () => {
  it('a missing key column lists the columns the file has', async () => {
    // Prepare
    const csv = labelsCsv((l) => (l[0] = l[0]!.replace('sha256', 'hash')));
    // Act / Assess
    await expect(train(options(csv))).rejects.toThrow(
      /labels-\w+\.csv has no column "sha256" \(--key\); it has: file, name, hash, group, source, fold, diagnosis, triage, severity\./,
    );
  });

  it('a missing target column lists the columns too', async () => {
    await expect(train(options(labelsCsv(), { target: 'diagnosys' }))).rejects.toThrow(
      /has no column "diagnosys" \(--target\); it has: file, name, sha256/,
    );
  });

  it('a row whose scan has no features names the line, the sha256 and the file', async () => {
    // Prepare
    const csv = labelsCsv((l) => cell(l, 17, COL.sha256, 'ab12'.padEnd(64, '0')));
    // Act / Assess
    await expect(train(options(csv))).rejects.toThrow(
      /line 17: no features for sha256 ab1200000000… \(file \/synthetic\/synthetic-015\.mp4, name synthetic-015\)/,
    );
  });

  it('--skip-missing-features leaves such rows out and says which', async () => {
    // Prepare
    const csv = labelsCsv((l) => cell(l, 17, COL.sha256, 'ab12'.padEnd(64, '0')));
    const log: string[] = [];
    // Act
    const out = await runExpertTraining(options(csv, { skipMissingFeatures: true, candidates: ['linear'] }), (line) =>
      log.push(line),
    );
    // Assess
    expect(log.join('\n')).toMatch(/1 rows without features skipped \(lines 17/);
    expect((out.report.data as { rows: number; skippedWithoutFeatures: number[] }).skippedWithoutFeatures).toEqual([
      17,
    ]);
    expect(out.written).toBe(false);
  });

  it('a non-numeric ordinal target names the line and the accepted grades', async () => {
    const csv = labelsCsv((l) => cell(l, 9, COL.severity, 'x'));
    await expect(train(options(csv, { target: 'severity', kind: 'ordinal', classes: undefined }))).rejects.toThrow(
      /line 9: severity "x" is not an integer 0\.\.3\./,
    );
  });

  it('an out-of-range grade is refused against --classes', async () => {
    const csv = labelsCsv((l) => cell(l, 12, COL.severity, '5'));
    await expect(train(options(csv, { target: 'severity', kind: 'ordinal', classes: '0,1,2,3' }))).rejects.toThrow(
      /line 12: severity "5" is not an integer 0\.\.3\./,
    );
  });

  it('a class outside --classes names the line and the accepted values', async () => {
    const csv = labelsCsv((l) => cell(l, 4, COL.diagnosis, 'flu'));
    await expect(train(options(csv))).rejects.toThrow(
      /line 4: diagnosis "flu" is not one of covid, pneumonia, healthy \(--classes\)\./,
    );
  });

  it('fewer than 2 classes is refused', async () => {
    const csv = labelsCsv((l) => l.slice(1).forEach((_, i) => cell(l, i + 2, COL.diagnosis, 'covid')));
    await expect(train(options(csv, { classes: undefined }))).rejects.toThrow(
      /diagnosis has fewer than 2 classes \(covid\)/,
    );
  });

  it('a class with too few rows for cross-validation names its rows', async () => {
    const csv = labelsCsv((l) => cell(l, 5, COL.diagnosis, 'other'));
    await expect(train(options(csv, { classes: 'covid,pneumonia,healthy,other' }))).rejects.toThrow(
      /Class "other" has 1 row \(labels-\w+\.csv line 5\) in only 1 fold; cross-validation needs every class in at least 2 folds/,
    );
  });

  it('rows without a target are skipped and reported', async () => {
    // Prepare: healthy rows carry no severity, as in the POCUS export.
    const csv = labelsCsv((l) =>
      l.forEach((line, i) => {
        if (i > 0 && line.split(',')[COL.diagnosis] === 'healthy') cell(l, i + 1, COL.severity, '');
      }),
    );
    const healthy = rows.filter((r) => r.diagnosis === 'healthy').length;
    const log: string[] = [];
    // Act
    const out = await runExpertTraining(
      options(csv, { target: 'severity', kind: 'ordinal', classes: '0,1,2,3', name: 'severity' }),
      (line) => log.push(line),
    ).catch((e: Error) => e);
    // Assess: grade 0 only ever came from healthy rows, so it is now empty, and that is the error.
    expect(log[0]).toBe(`${healthy} rows without severity skipped`);
    expect(out).toBeInstanceOf(TrainingDataError);
    expect((out as Error).message).toMatch(/Class "0" has 0 rows; .*Drop the class from --classes/);
  });

  it('empty group cells and non-integer folds name the line', async () => {
    await expect(train(options(labelsCsv((l) => cell(l, 7, COL.group, ''))))).rejects.toThrow(
      /line 7: the group cell \(--group-column\) is empty\./,
    );
    await expect(train(options(labelsCsv((l) => cell(l, 8, COL.fold, 'two'))))).rejects.toThrow(
      /line 8: fold "two" is not a non-negative integer\./,
    );
  });
});

describe('experts train: features', () => {
  it('refuses features from two extractor versions, naming both', async () => {
    // Prepare
    const mixed = path.join(dir, 'mixed.jsonl');
    const other = rows.slice(0, 3).map((r) => ({
      ...r,
      features: { ...r.features, extractor: { ...r.features.extractor, version: '0.0.2' } },
    }));
    writeFileSync(mixed, jsonl([...rows.slice(3), ...other]));
    // Act / Assess
    await expect(train(options(labelsCsv(), { features: mixed }))).rejects.toThrow(
      /come from 2 different extractors \(sonomark-fixture-extractor@0\.0\.1 .*: 57 documents, .*sonomark-fixture-extractor@0\.0\.2 .*: 3 documents, e\.g\. .*mixed\.jsonl line 58\)/,
    );
  });

  it('--cv-features with {fold} reads one feature set per fold, each from one extractor', async () => {
    // Prepare: fold f's set holds every clip, as the extractor trained without fold f would see it.
    for (let f = 0; f < 5; f++) {
      const version = `0.0.${f + 10}`;
      const set = rows.map((r) => ({
        ...r,
        features: { ...r.features, extractor: { ...r.features.extractor, version } },
      }));
      writeFileSync(path.join(dir, `fold${f}.jsonl`), jsonl(set));
    }
    // Act
    const out = await runExpertTraining(
      options(labelsCsv(), { cvFeatures: path.join(dir, 'fold{fold}.jsonl'), candidates: ['linear'] }),
    );
    // Assess
    expect(out.result.cv.features).toBe('per-fold');
    const data = out.report.data as { cvFeatures: { extractors: Record<string, { version: string }> } };
    expect(Object.keys(data.cvFeatures.extractors)).toEqual(['0', '1', '2', '3', '4']);
    expect(data.cvFeatures.extractors['3']!.version).toBe('0.0.13');
    expect((out.entry.card.metrics as { cv: { features: string } }).cv.features).toMatch(
      /^per-fold extractor features/,
    );
  });

  it('--cv-features names the fold set that lacks a row, and needs --fold-column for {fold}', async () => {
    // Prepare
    writeFileSync(path.join(dir, 'short2.jsonl'), jsonl(rows.slice(1)));
    for (const f of [0, 1, 3, 4]) writeFileSync(path.join(dir, `short${f}.jsonl`), jsonl(rows));
    // Act / Assess
    await expect(train(options(labelsCsv(), { cvFeatures: path.join(dir, 'short{fold}.jsonl') }))).rejects.toThrow(
      /line 2: no features for sha256 [0-9a-f]{12}… \(file \/synthetic\/synthetic-000\.mp4, name synthetic-000\) in --cv-features for fold 2/,
    );
    await expect(
      train(options(labelsCsv(), { cvFeatures: path.join(dir, 'short{fold}.jsonl'), foldColumn: undefined })),
    ).rejects.toThrow(/needs --fold-column/);
  });

  it('--loso-features with {source} reads one feature set per held-out source, and the card says so', async () => {
    // Prepare: source s's set holds every clip, as the extractor trained without source s would see it.
    const sources = [...new Set(rows.map((r) => r.source))].sort();
    sources.forEach((s, i) => {
      const version = `0.0.${i + 20}`;
      const set = rows.map((r) => ({
        ...r,
        features: { ...r.features, extractor: { ...r.features.extractor, version } },
      }));
      writeFileSync(path.join(dir, `loso-${s}.jsonl`), jsonl(set));
    });
    // Act
    const out = await runExpertTraining(
      options(labelsCsv(), {
        sourceColumn: 'source',
        losoFeatures: path.join(dir, 'loso-{source}.jsonl'),
        candidates: ['linear'],
      }),
    );
    // Assess
    expect(out.result.loso!.features).toBe('per-source');
    expect((out.report.leaveOneSourceOut as { features: string }).features).toBe('per-source');
    const data = out.report.data as { losoFeatures: { extractors: Record<string, { version: string }> } };
    expect(Object.keys(data.losoFeatures.extractors)).toEqual(sources);
    expect(data.losoFeatures.extractors[sources[1]!]!.version).toBe('0.0.21');
    const card = out.entry.card;
    expect((card.metrics as { leaveOneSourceOut: { features: string } }).leaveOneSourceOut.features).toMatch(
      /^per-source extractor features .*from an extractor trained without that source/,
    );
    expect(card.limitations.join('\n')).toMatch(/from an extractor trained without that source \(--loso-features\)/);
    expect(card.limitations.join('\n')).not.toMatch(/no extractor was trained without a whole source/);
  });

  it('--loso-features names the missing file or rows, and needs --source-column and {source}', async () => {
    // Prepare: site-2's set lacks the first two clips; site-3's file is absent.
    const [first, second] = rows;
    writeFileSync(path.join(dir, 'part-site-0.jsonl'), jsonl(rows));
    writeFileSync(path.join(dir, 'part-site-1.jsonl'), jsonl(rows));
    writeFileSync(path.join(dir, 'part-site-2.jsonl'), jsonl(rows.filter((r) => r !== first && r !== second)));
    const losoFeatures = path.join(dir, 'part-{source}.jsonl');
    const loso = { sourceColumn: 'source', losoFeatures, candidates: ['linear' as const] };
    // Act / Assess
    await expect(train(options(labelsCsv(), loso))).rejects.toThrow(
      /line 2: no features for sha256 [0-9a-f]{12}… \(file \/synthetic\/synthetic-000\.mp4, name synthetic-000\) in --loso-features for source site-2 \(.*part-site-2\.jsonl\); 2 of the 60 training rows lack them \(lines 2, 3\)/,
    );
    writeFileSync(path.join(dir, 'part-site-2.jsonl'), jsonl(rows));
    await expect(train(options(labelsCsv(), loso))).rejects.toThrow(
      /--loso-features for source site-3: Features .*part-site-3\.jsonl: no such file or directory/,
    );
    await expect(train(options(labelsCsv(), { losoFeatures }))).rejects.toThrow(
      /--loso-features needs --source-column/,
    );
    await expect(
      train(options(labelsCsv(), { ...loso, losoFeatures: path.join(dir, 'part-site-0.jsonl') })),
    ).rejects.toThrow(/has no \{source\}/);
  });

  it('--loso-features with --skip-missing-features needs only the rows that --features has', async () => {
    // Prepare: the first clip has no features anywhere; every set holds the rest.
    const rest = rows.slice(1);
    const partial = path.join(dir, 'features-rest.jsonl');
    writeFileSync(partial, jsonl(rest));
    for (const s of new Set(rows.map((r) => r.source))) {
      writeFileSync(path.join(dir, `rest-${s}.jsonl`), jsonl(s === 'site-1' ? rest.slice(1) : rest));
    }
    const o = {
      features: partial,
      skipMissingFeatures: true,
      sourceColumn: 'source',
      losoFeatures: path.join(dir, 'rest-{source}.jsonl'),
      candidates: ['linear' as const],
    };
    // Act / Assess: site-1's set also lacks the second clip, which --features has.
    await expect(train(options(labelsCsv(), o))).rejects.toThrow(
      /line 3: .* in --loso-features for source site-1 .*1 of the 59 training rows lack them \(lines 3\).*--skip-missing-features only leaves out rows that --features lacks/,
    );
    writeFileSync(path.join(dir, 'rest-site-1.jsonl'), jsonl(rest));
    const out = await runExpertTraining(options(labelsCsv(), o));
    expect(out.result.loso!.features).toBe('per-source');
    expect(out.result.loso!.evaluation.rows).toBe(59);
  });

  it('names the line of a JSONL record that is not a features record', async () => {
    const bad = path.join(dir, 'bad.jsonl');
    writeFileSync(bad, jsonl(rows.slice(0, 2)) + '{"file":"x","name":"x","sha256":"nope","features":{}}\n');
    await expect(train(options(labelsCsv(), { features: bad }))).rejects.toThrow(
      /bad\.jsonl line 3: not a features record: sha256: must be 64 lowercase hex characters/,
    );
  });

  it('reads a cache directory of bare documents by sha256, and says why --key name cannot work there', () => {
    // Prepare
    const cache = path.join(dir, 'cache', 'features', 'x-0.0.1');
    mkdirSync(cache, { recursive: true });
    for (const r of rows.slice(0, 4)) writeFileSync(path.join(cache, `${r.sha256}.json`), JSON.stringify(r.features));
    // Act
    const docs = readFeatures(path.join(dir, 'cache'));
    // Assess
    expect(docs.map((d) => d.sha256).sort()).toEqual(
      rows
        .slice(0, 4)
        .map((r) => r.sha256)
        .sort(),
    );
    expect(indexFeatures(docs, 'sha256').byKey.size).toBe(4);
    expect(() => indexFeatures(docs, 'name')).toThrow(/has no "name" \(bare cached documents only know their sha256\)/);
  });
});

describe('parseLabels', () => {
  const csv = 'sha256,triage\n' + ['a', 'b', 'c'].map((k, i) => `${k},${i % 2}`).join('\n') + '\n';

  it('maps values to named classes and puts the positive class last', () => {
    // Act
    const p = parseLabels(
      csv,
      { key: 'sha256', target: 'triage', kind: 'binary', classes: '0=healthy,1=abnormal', positive: 'healthy' },
      'l.csv',
    );
    // Assess: [negative, positive]; value 0 (healthy) is now index 1.
    expect(p.labels).toEqual(['abnormal', 'healthy']);
    expect(p.positive).toBe('healthy');
    expect(p.rows.map((r) => r.y)).toEqual([1, 0, 1]);
  });

  it('binary without --classes uses the sorted values, positive last', () => {
    const p = parseLabels(csv, { key: 'sha256', target: 'triage', kind: 'binary' }, 'l.csv');
    expect(p.labels).toEqual(['0', '1']);
    expect(p.positive).toBe('1');
  });

  it('an ordinal --classes must be the grades 0..K-1', () => {
    expect(() =>
      parseLabels(csv, { key: 'sha256', target: 'triage', kind: 'ordinal', classes: 'low,high' }, 'l.csv'),
    ).toThrow(/grades 0,1,…,K-1 in order/);
  });
});

describe('experts train: version and report', () => {
  it('a new expert needs --version: the refusal comes before any training', async () => {
    // Act
    const started = performance.now();
    const run = train(options(labelsCsv(), { name: 'lung-score', dryRun: false }));

    // Assess
    await expect(run).rejects.toThrow(TrainingDataError);
    await expect(run).rejects.toThrow(
      /has no expert "lung-score" to take the next version from: pass --version X\.Y\.Z/,
    );
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('--report writes a report the evaluation reads back, creating its folder', async () => {
    // Prepare
    const file = path.join(dir, 'reports', 'new', 'diagnosis.report.json');

    // Act
    const out = await train(options(labelsCsv(), { report: file, candidates: ['linear'] }));

    // Assess
    const report = readTrainingJson(file, ExpertReport, 'expert report');
    expect(report.expert).toEqual(out.entry);
    expect(report.onnx.written).toBe(false);
  });
});
