import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../../core/paths';
import { cxrItems, cxrTargets, loadCxr, parseCxrLabels, viralFromFinding } from '../../../training/datasets/cxr';

const CXR = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'cxr');
const HEADER = 'file,source,patient,label,finding,view,sex,age,license,reference';

describe('viral vs bacterial from the collection finding words', () => {
  it.each([
    ['Pneumonia/Viral', 1],
    ['Pneumonia/Bacterial', 0],
    ['COVID-19', 1],
    ['COVID-19, ARDS', 1],
    ['Influenza', 1],
    ['Varicella', 1],
    ['Bacterial', 0],
    ['Klebsiella', 0],
    ['Legionella', 0],
    ['Streptococcus', 0],
    ['Mycoplasma Bacterial Pneumonia', 0],
    // A fungus, and an unspecified pneumonia: neither viral nor bacterial.
    ['Pneumocystis', null],
    ['Pneumonia', null],
  ])('%s → %s', (finding, expected) => {
    expect(viralFromFinding(finding)).toBe(expected);
  });
});

describe('cxrTargets', () => {
  it('labels pneumonia only for pneumonia/covid vs normal', () => {
    expect(cxrTargets({ source: 'kermany-pediatric', label: 'normal', finding: 'No Finding' })).toEqual({
      pneumonia: 0,
      viral: null,
      covid: null,
    });
    expect(cxrTargets({ source: 'kermany-pediatric', label: 'pneumonia', finding: 'Pneumonia/Viral' })).toEqual({
      pneumonia: 1,
      viral: 1,
      covid: null,
    });
    expect(cxrTargets({ source: 'ieee8023', label: 'other', finding: 'ARDS' })).toEqual({
      pneumonia: null,
      viral: null,
      covid: null,
    });
    expect(cxrTargets({ source: 'figure1', label: 'unlabelled', finding: '' }).pneumonia).toBeNull();
  });
  it('asks covid vs other pneumonia only in adult sources', () => {
    expect(cxrTargets({ source: 'ieee8023', label: 'covid', finding: 'COVID-19' })).toEqual({
      pneumonia: 1,
      viral: 1,
      covid: 1,
    });
    expect(cxrTargets({ source: 'ieee8023', label: 'pneumonia', finding: 'Klebsiella' }).covid).toBe(0);
    expect(cxrTargets({ source: 'figure1', label: 'pneumonia', finding: 'Pneumonia' }).covid).toBe(0);
    expect(cxrTargets({ source: 'ieee8023', label: 'normal', finding: 'No Finding' }).covid).toBeNull();
    expect(
      cxrTargets({ source: 'kermany-pediatric', label: 'pneumonia', finding: 'Pneumonia/Viral' }).covid,
    ).toBeNull();
  });
});

describe('parseCxrLabels', () => {
  it('names the line and the field of a bad row', () => {
    const text = `${HEADER}\nimages/a.jpg,ieee8023,p1,covid,COVID-19,PA,,,CC BY,x\nimages/b.jpg,ieee8023,p2,flu,x,PA,,,CC BY,x\n`;
    expect(() => parseCxrLabels(text)).toThrow(/line 3: label/);
  });
  it('refuses a file outside the collection and a missing column', () => {
    expect(() => parseCxrLabels(`${HEADER}\n../x.jpg,ieee8023,p1,covid,C,PA,,,CC BY,x\n`)).toThrow(
      /file: must be a path inside/,
    );
    expect(() => parseCxrLabels('file,source\na,b\n')).toThrow(/missing column\(s\) patient/);
  });
});

describe('the collection', () => {
  const items = loadCxr(CXR);
  it('reads every image with its targets', () => {
    // 4,990 rows; two images are listed twice (one case under two patient ids).
    expect(items).toHaveLength(4988);
    const kermany = items.filter((i) => i.source === 'kermany-pediatric');
    expect(kermany.filter((i) => i.targets.pneumonia === 0)).toHaveLength(1255);
    expect(kermany.filter((i) => i.targets.viral === 1)).toHaveLength(1200);
    expect(kermany.filter((i) => i.targets.viral === 0)).toHaveLength(2184);
    expect(items.filter((i) => i.targets.covid === 1)).toHaveLength(190);
    expect(items.filter((i) => i.targets.covid === 0)).toHaveLength(62); // 64 rows, two of them the duplicated Legionella case
  });
  it('keeps every patient in one fold, folds balanced by source and label', () => {
    const foldOf = new Map<string, number>();
    for (const it of items) {
      expect(foldOf.get(it.group) ?? it.fold).toBe(it.fold);
      foldOf.set(it.group, it.fold);
    }
    for (const stratum of ['kermany-pediatric/normal', 'kermany-pediatric/pneumonia', 'ieee8023/covid']) {
      const inStratum = items.filter((i) => `${i.source}/${i.label}` === stratum);
      for (let f = 0; f < 5; f++) {
        const share = inStratum.filter((i) => i.fold === f).length / inStratum.length;
        expect(share).toBeGreaterThan(0.1);
        expect(share).toBeLessThan(0.3);
      }
    }
  });
  it('is deterministic', () => {
    expect(loadCxr(CXR).map((i) => i.fold)).toEqual(items.map((i) => i.fold));
  });
  it('keeps an image listed twice once, its two patient ids one group', () => {
    const rows = parseCxrLabels(
      `${HEADER}\nimages/a.jpg,ieee8023,p1,pneumonia,Legionella,PA,,,CC BY,x\nimages/b.jpg,ieee8023,p2,pneumonia,Legionella,L,,,CC BY,x\nimages/a.jpg,ieee8023,p2,pneumonia,Legionella,PA,,,CC BY,x\n`,
    );
    const out = cxrItems(rows, 2);
    expect(out).toHaveLength(2);
    expect(out[0]!.group).toBe(out[1]!.group);
    const clash = parseCxrLabels(
      `${HEADER}\nimages/a.jpg,ieee8023,p1,pneumonia,Legionella,PA,,,CC BY,x\nimages/a.jpg,ieee8023,p2,covid,COVID-19,PA,,,CC BY,x\n`,
    );
    expect(() => cxrItems(clash, 2)).toThrow(/listed twice with different/);
  });
  it('keeps patient ids of different collections apart', () => {
    const rows = parseCxrLabels(
      `${HEADER}\nimages/a.jpg,ieee8023,p1,covid,COVID-19,PA,,,CC BY,x\nimages/b.jpg,figure1,p1,covid,COVID-19,PA,,,CC BY,x\n`,
    );
    const [a, b] = cxrItems(rows, 2);
    expect(a!.group).not.toBe(b!.group);
  });
});
