import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseCsv } from '../../../training/csv';
import { loadCollections } from '../../../training/datasets/collections';
import { bluesDiagnosis, findingsFromText, loadCovidBlues, weakFlags } from '../../../training/datasets/covid-blues';
import { assignFoldsBy, sourceClusters } from '../../../training/datasets/items';
import { PACKAGE_ROOT } from '../../../core/paths';
import { tempDir } from '../../helpers/temp';

const SHARED = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data');
const BLUES = path.join(SHARED, 'covid-blues');
const POCUS = path.join(SHARED, 'pocus');

describe('findings keyword rules (phrasings from severity.csv)', () => {
  it.each([
    ['broken pleura line, very small consolidated areas, B-lines', { pleural_irregularity: 1, consolidation: 1 }],
    ['broken pleura line, B-lines, white lung areal', { pleural_irregularity: 1, consolidation: null }],
    ['interrupted pleura line', { pleural_irregularity: 1 }],
    ['thickened pleura line', { pleural_irregularity: 1 }],
    ['pleura line thickened', { pleural_irregularity: 1 }],
    ['intact pleura line, multiple A-lines', { pleural_irregularity: 0 }],
    ['pleura line intact', { pleural_irregularity: 0 }],
    ['subpleural consolidation', { consolidation: 1 }],
    ['consolidation', { consolidation: 1 }],
    ['subpleural effusion', { effusion: 1, consolidation: null }],
    ['massive pleural effusion', { effusion: 1 }],
    // Hedged: unlabelled, not positive.
    ['possible little subpleural consolidation', { consolidation: null }],
    ['white lung?', { consolidation: null, effusion: null, pleural_irregularity: null }],
    // B-lines and organ notes are not findings flags.
    ['no single B-lines', { consolidation: null, effusion: null, pleural_irregularity: null }],
    ['mostly liver in the video', { consolidation: null, effusion: null, pleural_irregularity: null }],
    ['', { consolidation: null, effusion: null, pleural_irregularity: null }],
    ['no consolidation, no effusion', { consolidation: 0, effusion: 0 }],
  ])('%j', (text, expected) => {
    expect(findingsFromText(text)).toMatchObject(expected);
  });

  it('fills unmentioned flags from the severity scheme, never effusion', () => {
    expect(weakFlags('', 0)).toEqual({ consolidation: 0, effusion: null, pleural_irregularity: 0 });
    expect(weakFlags('', 2)).toEqual({ consolidation: null, effusion: null, pleural_irregularity: 1 });
    // The text wins over the scheme.
    expect(weakFlags('pleura line intact', 1).pleural_irregularity).toBe(0);
    expect(weakFlags('subpleural consolidation', 0).consolidation).toBe(1);
    // A hedge at severity 0 is not a confident negative either.
    expect(weakFlags('possible little subpleural consolidation', 0).consolidation).toBeNull();
  });
});

describe('bluesDiagnosis', () => {
  const row = (pcr: string, dx: string) => ({ cov_test: pcr, [`clin_diagn#${dx}`]: '1' });
  it('takes PCR positive as covid and maps PCR-negative clinical diagnoses', () => {
    expect(bluesDiagnosis(row('1', 'COVID19_pneumonia'), 2)).toBe('covid');
    expect(bluesDiagnosis(row('0', 'healthy_lung'), 2)).toBe('healthy');
    expect(bluesDiagnosis(row('0', 'bacterial_pneumonia'), 2)).toBe('pneumonia');
    expect(bluesDiagnosis(row('0', 'other_viral_pneumonia'), 2)).toBe('pneumonia');
    expect(bluesDiagnosis(row('0', 'other_lung_disease'), 2)).toBeNull();
    expect(bluesDiagnosis(row('0', 'COVID19_pneumonia'), 2)).toBeNull();
    expect(() => bluesDiagnosis(row('', 'healthy_lung'), 7)).toThrow(/line 7: cov_test ""; accepted: 1/);
  });
});

describe('loadCovidBlues on ../shared/data/covid-blues', () => {
  const items = loadCovidBlues(BLUES);
  const severity = parseCsv(readFileSync(path.join(BLUES, 'severity.csv'), 'utf8')).rows;

  it('pairs every severity.csv row with its video, patient and trimmed labels', () => {
    expect(items).toHaveLength(severity.length);
    for (const [i, { values }] of severity.entries()) {
      const it = items[i]!;
      expect(it.name).toBe(values['video_file']);
      expect(it.severity).toBe(Number(values['Severity Score']));
      // "no " and "yes " (trailing space) read as no and yes.
      expect(it.biomarkers.b_lines).toBe(values['B-lines']!.trim() === 'yes' ? 1 : 0);
      expect(it.biomarkers.a_lines).toBe(values['A-lines']!.trim() === 'yes' ? 1 : 0);
      expect(it.group).toBe(`blues-patient-${Number(/^patient_(\d+)/.exec(it.name)![1])}`);
      expect(it.triage).toBe(it.severity === 0 ? 0 : 1);
    }
    // The raw file does carry the trailing spaces the mapping must survive.
    expect(readFileSync(path.join(BLUES, 'severity.csv'), 'utf8')).toMatch(/,(?:yes|no) ,/);
    expect(new Set(items.map((i) => i.diagnosis))).toEqual(new Set(['covid', 'pneumonia', 'healthy', null]));
  });

  it('refuses an unknown yes/no value, naming the line and the accepted values', () => {
    const dir = tempDir('blues-');
    cpSync(path.join(BLUES, 'clinical_variables.csv'), path.join(dir, 'clinical_variables.csv'));
    mkdirSync(path.join(dir, 'videos'));
    const first = items[0]!;
    writeFileSync(path.join(dir, first.file), '');
    writeFileSync(
      path.join(dir, 'severity.csv'),
      `video_file,Severity Score,A-lines,B-lines,comments\n${first.name},1.0,yes,maybe,\n`,
    );
    expect(() => loadCovidBlues(dir)).toThrow(/line 2: "maybe" in column "B-lines"; accepted: yes or no/);
  });
});

describe('combined folds', () => {
  const items = loadCollections({ pocus: POCUS, blues: BLUES });

  it('holds out every POCUS source in exactly one fold, and every COVID-BLUES patient in one fold', () => {
    const foldsOf = (key: (i: (typeof items)[number]) => string, subset: typeof items) => {
      const m = new Map<string, Set<number>>();
      for (const it of subset) (m.get(key(it)) ?? m.set(key(it), new Set()).get(key(it))!).add(it.fold);
      return m;
    };
    const pocus = items.filter((i) => i.dataset === 'pocus');
    const blues = items.filter((i) => i.dataset === 'covid-blues');
    for (const folds of foldsOf((i) => i.source, pocus).values()) expect(folds.size).toBe(1);
    for (const folds of foldsOf((i) => i.group, items).values()) expect(folds.size).toBe(1);
    expect(foldsOf((i) => i.group, blues).size).toBeGreaterThan(40);
    for (let f = 0; f < 5; f++) {
      expect(pocus.some((i) => i.fold === f)).toBe(true);
      expect(blues.some((i) => i.fold === f)).toBe(true);
    }
  });

  it('merges sources that share a group, and assigns whole groups', () => {
    const m = sourceClusters([
      { group: 'g1', source: 'a' },
      { group: 'g1', source: 'b' },
      { group: 'g2', source: 'c' },
    ]);
    expect(m.get('a')).toBe(m.get('b'));
    expect(m.get('c')).not.toBe(m.get('a'));
    const a = assignFoldsBy(
      Array.from({ length: 40 }, (_, i) => ({ group: `g${i % 10}`, stratum: i % 2 ? 'x' : 'y' })),
      4,
    );
    expect(new Set(a.values()).size).toBe(4);
  });
});
