/**
 * The X-ray experts' labels file: each task asked only in its sources, from the loader's targets, and a
 * CSV that `sonomark experts train` reads back with the columns it names.
 */
import { cxrItems, parseCxrLabels } from '../../../training/datasets/cxr';
import {
  XRAY_EXPERT_TASKS,
  taskCell,
  xrayLabelRows,
  xrayLabelsCsv,
  xrayTaskCounts,
} from '../../../training/datasets/cxr-tasks';
import { parseLabels } from '../../../training/experts/data';

const HEADER = 'file,source,patient,label,finding,view,sex,age,license,reference';
const ROWS = [
  'images/k/normal1.jpeg,kermany-pediatric,k-1,normal,No Finding,AP,,,CC BY,x',
  'images/k/bact1.jpeg,kermany-pediatric,k-2,pneumonia,Pneumonia/Bacterial,AP,,,CC BY,x',
  'images/k/vir1.jpeg,kermany-pediatric,k-3,pneumonia,Pneumonia/Viral,AP,,,CC BY,x',
  'images/i/cov1.jpg,ieee8023,ieee-1,covid,COVID-19,PA,M,54,CC BY,x',
  'images/i/strep1.jpg,ieee8023,ieee-2,pneumonia,Streptococcus,PA,F,60,CC BY,x',
  'images/i/normal2.jpg,ieee8023,ieee-3,normal,No Finding,PA,,,CC BY,x',
  'images/i/pcp1.jpg,ieee8023,ieee-4,pneumonia,Pneumocystis,PA,,,CC BY,x',
  'images/i/ards1.jpg,ieee8023,ieee-5,other,ARDS,PA,,,CC BY,x',
  'images/f/cov2.jpg,figure1,f-1,covid,COVID-19,PA,,,research,x',
  'images/f/unl1.jpg,figure1,f-2,unlabelled,,PA,,,research,x',
];
const items = cxrItems(parseCxrLabels([HEADER, ...ROWS].join('\n') + '\n'), 2);
const rows = xrayLabelRows(items, '/data/cxr', (file) => file.replace(/\W/g, '').padEnd(64, '0').slice(0, 64));
const byName = (name: string) => rows.find((r) => r.name === name)!.targets;

describe('the X-ray expert tasks', () => {
  it('ask pneumonia vs normal and bacterial vs viral in Kermany only, COVID vs other pneumonia in the adult sources only', () => {
    expect(byName('normal1')).toEqual({ pneumonia: '0', bacterial_viral: '', covid: '' });
    expect(byName('bact1')).toEqual({ pneumonia: '1', bacterial_viral: '0', covid: '' });
    expect(byName('vir1')).toEqual({ pneumonia: '1', bacterial_viral: '1', covid: '' });
    // Adults: COVID is viral and a pneumonia to the loader, but here only the covid task asks about them.
    expect(byName('cov1')).toEqual({ pneumonia: '', bacterial_viral: '', covid: '1' });
    expect(byName('strep1')).toEqual({ pneumonia: '', bacterial_viral: '', covid: '0' });
    expect(byName('pcp1')).toEqual({ pneumonia: '', bacterial_viral: '', covid: '0' });
    expect(byName('cov2')).toEqual({ pneumonia: '', bacterial_viral: '', covid: '1' });
    for (const name of ['normal2', 'ards1', 'unl1']) {
      expect(byName(name)).toEqual({ pneumonia: '', bacterial_viral: '', covid: '' });
    }
    expect(xrayTaskCounts(rows)).toEqual({
      'xray-pneumonia': { normal: 1, pneumonia: 2 },
      'xray-bacterial-viral': { bacterial: 1, viral: 1 },
      'xray-covid': { covid: 2, 'other-pneumonia': 2 },
    });
  });

  it('leaves a target the loader has no answer for empty', () => {
    const task = XRAY_EXPERT_TASKS.find((t) => t.name === 'xray-bacterial-viral')!;
    expect(taskCell(task, { source: 'kermany-pediatric', targets: { pneumonia: 1, viral: null, covid: null } })).toBe(
      '',
    );
  });

  it('writes a CSV the trainer reads with its key, group, fold and source columns', () => {
    // Act
    const csv = xrayLabelsCsv(rows);
    const covid = parseLabels(
      csv,
      {
        key: 'sha256',
        target: 'covid',
        kind: 'binary',
        classes: '0=other-pneumonia,1=covid',
        positive: 'covid',
        groupColumn: 'group',
        foldColumn: 'fold',
        sourceColumn: 'source',
      },
      'labels.csv',
    );

    // Assess
    expect(csv.split('\n')[0]).toBe('file,name,sha256,group,source,fold,pneumonia,bacterial_viral,covid');
    expect(covid.labels).toEqual(['other-pneumonia', 'covid']);
    expect(covid.rows.map((r) => r.source).sort()).toEqual(['figure1', 'ieee8023', 'ieee8023', 'ieee8023']);
    expect(covid.rows.every((r) => r.group!.startsWith(`${r.source}:`))).toBe(true);
    expect(covid.skipped).toHaveLength(6);
    expect(rows.find((r) => r.name === 'cov1')!.file).toBe('/data/cxr/images/i/cov1.jpg');
  });
});
