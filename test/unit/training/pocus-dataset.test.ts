import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseCsv } from '../../../training/csv';
import { assignFolds, DIAGNOSES, groupOf, loadPocus } from '../../../training/datasets/pocus';
import { PACKAGE_ROOT } from '../../../core/paths';

const POCUS = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus');

describe('parseCsv', () => {
  it('reads quoted fields with commas, doubled quotes and newlines, and keeps line numbers', () => {
    const t = parseCsv('a,b,c\r\n1,"x, ""y""\nz",3\n\n4,5,6\n');
    expect(t.header).toEqual(['a', 'b', 'c']);
    expect(t.rows).toEqual([
      { line: 2, values: { a: '1', b: 'x, "y"\nz', c: '3' } },
      { line: 5, values: { a: '4', b: '5', c: '6' } },
    ]);
  });

  it('treats missing trailing cells as empty and rejects an unterminated quote', () => {
    expect(parseCsv('a,b\n1\n').rows[0]!.values).toEqual({ a: '1', b: '' });
    expect(() => parseCsv('a,b\n1,"oops\n')).toThrow(/Unterminated quoted field starting on line 2/);
    expect(() => parseCsv('')).toThrow(/empty/);
  });
});

describe('groupOf', () => {
  it.each([
    ['Cov_denault_proposedUS_vid1', 'Cov_denault_proposedUS_vid14'],
    ['Reg_pat2Image_133824', 'Reg_pat2Image_134441'],
    ['Reg_Image_18122_crop', 'Reg_Image_181602_trimmed_crop'],
    ['Pneu_northumbria_0409_set6_vid1', 'Pneu_northumbria_0409_set6_img6'],
    // Same set, different labels: likely one patient, so one group.
    ['Reg_northumbria_0409_set3_vid1', 'Pneu_northumbria_0409_set3_vid2'],
    ['Pneu_liftl_pneu_case3_clip3', 'Reg_liftl_case3_clip2'],
    ['Cov_unsmooth_pleuralline_prelim_study_SSRN_paper2', 'Cov_unsmoothpleuralline_prelim_study_SSRN_paper6'],
    ['Cov_Oliviera_2020_Fig14', 'Cov_Oliviera_2020_Fig15A'],
    ['Cov_convex_volpecelli_sonographic_v1', 'Cov_convex_volpecelli_sonographic_v5'],
    ['Vir_prospective_file1', 'Vir_or_Pneu_prospective_file4'],
  ])('puts %s and %s in one group', (a, b) => {
    expect(groupOf(a)).toBe(groupOf(b));
  });

  it('keeps different patients of one collection apart', () => {
    expect(groupOf('Reg_pat2Image_133824')).not.toBe(groupOf('Reg_pat3Image_134711'));
    expect(groupOf('Pneu_northumbria_0409_set1_vid1')).not.toBe(groupOf('Pneu_northumbria_0409_set6_vid1'));
  });
});

describe('assignFolds', () => {
  it('never splits a group, is deterministic, and balances the diagnoses', () => {
    const items = Array.from({ length: 60 }, (_, i) => ({
      group: `g${Math.floor(i / 3)}`,
      diagnosis: DIAGNOSES[i % 3]!,
    }));
    const a = assignFolds(items, 5);
    expect(assignFolds([...items].reverse(), 5)).toEqual(a);
    const sizes = [0, 0, 0, 0, 0];
    for (const it of items) sizes[a.get(it.group)!]!++;
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(3);
  });
});

describe('loadPocus on ../shared/data/pocus', () => {
  const items = loadPocus(POCUS);

  it('pairs every metadata row with a file and maps the labels', () => {
    expect(items).toHaveLength(130);
    expect(new Set(items.map((i) => i.diagnosis))).toEqual(new Set(DIAGNOSES));
    const viral = items.filter((i) => i.label === 'Viral pneumonia');
    expect(viral.length).toBeGreaterThan(0);
    expect(viral.every((i) => i.diagnosis === 'pneumonia' && i.triage === 1)).toBe(true);
    expect(items.filter((i) => i.severity !== null).every((i) => [0, 1, 2, 3].includes(i.severity!))).toBe(true);
  });

  it('gives 5 folds in which no group straddles two folds, each with every diagnosis', () => {
    const foldOfGroup = new Map<string, number>();
    for (const it of items) {
      expect(foldOfGroup.get(it.group) ?? it.fold).toBe(it.fold);
      foldOfGroup.set(it.group, it.fold);
    }
    for (let f = 0; f < 5; f++) {
      const inFold = items.filter((i) => i.fold === f);
      expect(inFold.length).toBeGreaterThan(15);
      for (const d of DIAGNOSES) expect(inFold.some((i) => i.diagnosis === d)).toBe(true);
    }
  });

  it('names the row and the accepted values when metadata.csv has a bad cell', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pocus-'));
    try {
      const csv = readFileSync(path.join(POCUS, 'metadata.csv'), 'utf8').split('\n');
      writeFileSync(path.join(dir, 'Reg-Atlas.gif'), '');
      writeFileSync(path.join(dir, 'metadata.csv'), [csv[0], csv[2]!.replace(',regular,', ',normal,')].join('\n'));
      expect(() => loadPocus(dir)).toThrow(/line 2: unknown label "normal"; accepted: COVID-19/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
