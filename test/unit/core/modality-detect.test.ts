/**
 * The modality decision (core/modality-detect.ts) over its whole input table: every DICOM Modality
 * class, sidecar hint, default, key folder and file kind, against the contract's precedence written
 * out here a second way (as the rules read, one after the other).
 */
import { detectModality, keyFolderModality, type ModalityEvidence } from '../../../core/modality-detect';
import { DICOM_MODALITIES, type Modality } from '../../../core/modality';

const DICOM = [undefined, 'US', 'CR', 'DX', 'MR', 'OT', 'SC'] as const;
const HINTS = [undefined, 'ultrasound', 'xray'] as const;
const FOLDERS = {
  none: 'clip.png',
  ultrasound: 'ultrasound/clip.png',
  xray: 'xray/day1/clip.png',
  other: 'day1/clip.png',
};
const KINDS = ['video', 'still'] as const;

type Expected = { modality: Modality; source: string } | { code: string };

/** The contract's rules, read in order (the oracle). */
function expected(
  dicom: string | undefined,
  sidecar: Modality | undefined,
  dflt: Modality | undefined,
  folder: Modality | undefined,
  kind: 'video' | 'still',
): Expected {
  const fromDicom = dicom ? DICOM_MODALITIES[dicom] : undefined;
  let out: { modality: Modality; source: string } | undefined;
  if (fromDicom) {
    if ((sidecar && sidecar !== fromDicom) || (folder && folder !== fromDicom)) return { code: 'MODALITY_CONFLICT' };
    out = { modality: fromDicom, source: 'dicom' };
  }
  out ??= sidecar ? { modality: sidecar, source: 'sidecar' } : undefined;
  out ??= folder ? { modality: folder, source: 'key' } : undefined;
  out ??= dflt ? { modality: dflt, source: 'default' } : undefined;
  out ??= kind === 'video' ? { modality: 'ultrasound', source: 'video' } : undefined;
  if (!out) return { code: 'MODALITY_REQUIRED' };
  if (out.modality === 'xray' && kind === 'video') return { code: 'UNSUPPORTED_MODALITY' };
  return out;
}

const cases: [ModalityEvidence, Expected][] = [];
for (const dicom of DICOM)
  for (const sidecar of HINTS)
    for (const dflt of HINTS)
      for (const [folder, fileName] of Object.entries(FOLDERS))
        for (const kind of KINDS) {
          const evidence: ModalityEvidence = {
            ...(dicom ? { dicomModality: dicom } : {}),
            ...(sidecar ? { sidecarModality: sidecar } : {}),
            ...(dflt ? { defaultModality: dflt } : {}),
            fileName,
            kind,
            formatName: dicom ? 'DICOM' : 'PNG still',
          };
          const folderModality = folder === 'ultrasound' || folder === 'xray' ? folder : undefined;
          cases.push([evidence, expected(dicom, sidecar, dflt, folderModality, kind)]);
        }

describe('detectModality', () => {
  it(`follows the contract's precedence on all ${cases.length} combinations`, () => {
    for (const [evidence, want] of cases) {
      const got = detectModality(evidence);
      const simple = got.ok ? { modality: got.modality, source: got.source } : { code: got.problem.code };
      expect({ evidence, got: simple }).toEqual({ evidence, got: want });
    }
    // The table exercises every outcome.
    const codes = new Set(cases.map(([, w]) => ('code' in w ? w.code : w.source)));
    expect([...codes].sort()).toEqual(
      [
        'MODALITY_CONFLICT',
        'MODALITY_REQUIRED',
        'UNSUPPORTED_MODALITY',
        'dicom',
        'default',
        'key',
        'sidecar',
        'video',
      ].sort(),
    );
  });

  it('a DICOM CR/DX/US decides; a default hint never conflicts with it', () => {
    expect(detectModality({ dicomModality: 'CR', fileName: 'a.dcm', kind: 'still', formatName: 'DICOM' })).toEqual({
      ok: true,
      modality: 'xray',
      source: 'dicom',
    });
    expect(
      detectModality({
        dicomModality: 'DX',
        defaultModality: 'ultrasound',
        fileName: 'a.dcm',
        kind: 'still',
        formatName: 'DICOM',
      }),
    ).toMatchObject({ ok: true, modality: 'xray' });
  });

  it('MODALITY_CONFLICT says what each source said and that the DICOM Modality decides', () => {
    const got = detectModality({
      dicomModality: 'US',
      sidecarModality: 'xray',
      fileName: 'xray/a.dcm',
      kind: 'video',
      formatName: 'DICOM',
    });
    expect(got.ok).toBe(false);
    if (got.ok) return;
    expect(got.problem.code).toBe('MODALITY_CONFLICT');
    expect(got.problem.message).toMatch(/Modality is US \(ultrasound\)/);
    expect(got.problem.message).toMatch(/sidecar's "modality" says xray and the upload folder says xray/);
    expect(got.problem.message).toMatch(/The DICOM Modality decides/);
  });

  it('MODALITY_REQUIRED names the file kind, the DICOM value that did not decide, and every way to give it', () => {
    const got = detectModality({ dicomModality: 'MR', fileName: 'a.dcm', kind: 'still', formatName: 'DICOM' });
    expect(got.ok).toBe(false);
    if (got.ok) return;
    expect(got.problem.code).toBe('MODALITY_REQUIRED');
    expect(got.problem.message).toMatch(/This DICOM is a still image with no modality given/);
    expect(got.problem.message).toMatch(/DICOM Modality MR is not one that decides \(US, CR, DX\)/);
    expect(got.problem.message).toMatch(/"modality": "ultrasound" or "xray" in the sidecar/);
    expect(got.problem.message).toMatch(/uploads\/\{site\}\/\{study\}\/ultrasound\/ or \.\.\.\/xray\//);
    expect(got.problem.message).toMatch(/--modality ultrasound\|xray/);
  });

  it('UNSUPPORTED_MODALITY for an X-ray hint on a video', () => {
    const got = detectModality({ sidecarModality: 'xray', fileName: 'c.mp4', kind: 'video', formatName: 'MP4' });
    expect(got).toMatchObject({ ok: false, problem: { code: 'UNSUPPORTED_MODALITY' } });
    if (!got.ok) expect(got.problem.message).toMatch(/an X-ray is one image/);
  });
});

describe('keyFolderModality', () => {
  it.each([
    ['xray/a.png', 'xray'],
    ['ultrasound/day1/a.mp4', 'ultrasound'],
    ['a.png', undefined],
    // A file named like a folder is not a folder; only the first segment counts; exact names only.
    ['xray', undefined],
    ['day1/xray/a.png', undefined],
    ['XRay/a.png', undefined],
    ['x-ray/a.png', undefined],
  ])('%s → %s', (fileName, want) => {
    expect(keyFolderModality(fileName)).toBe(want);
  });
});
