/**
 * The shipped models' outputs on real clips, pinned: clip → decoder → extractor → every expert, as
 * serving computes them, against test/fixtures/pinned-model-outputs.json. A reordered label list, a
 * changed preprocessing or another model file fails here. After retraining on purpose, regenerate the
 * pins with `npx tsx test/helpers/pinned-outputs.ts` and commit them with the models.
 */
import { expertsFor, loadManifest } from '../../core/manifest';
import { requirePocus } from '../helpers/pocus';
import { comparePins, computePins, PINNED_CLIPS, readPins, type PinFile } from '../helpers/pinned-outputs';

let pinned: PinFile;
let actual: PinFile;

beforeAll(async () => {
  requirePocus();
  pinned = readPins();
  actual = await computePins(loadManifest(), PINNED_CLIPS);
}, 120_000);

describe('pinned outputs of the shipped models', () => {
  it('pins every clip and every manifest expert', () => {
    expect(pinned.clips.map((c) => c.clip)).toEqual([...PINNED_CLIPS]);
    const { manifest } = loadManifest();
    for (const c of pinned.clips)
      expect(Object.keys(c.experts).sort()).toEqual(
        expertsFor(manifest, 'ultrasound')
          .map((e) => e.name)
          .sort(),
      );
  });

  it('reproduces them within the tolerance (else: the models, labels or preprocessing changed)', () => {
    const diffs = comparePins(pinned, actual);
    // The message says how to regenerate them after an intended change.
    expect({ diffs, regenerate: diffs.length > 0 ? pinned.generatedBy : undefined }).toEqual({
      diffs: [],
      regenerate: undefined,
    });
  });

  it('fails on a reordered label list or a changed output (the check can fail)', () => {
    // Prepare: the diagnosis expert's labels swapped, as a manifest edit would swap them.
    const swapped: PinFile = {
      ...actual,
      experts: actual.experts.map((e) => (e.name === 'diagnosis' ? { ...e, labels: [...e.labels].reverse() } : e)),
      clips: actual.clips.map((c) => {
        const d = c.experts['diagnosis']!;
        const labels = Object.keys(d);
        const values = labels.map((l) => d[l]!).reverse();
        return {
          ...c,
          experts: { ...c.experts, diagnosis: Object.fromEntries(labels.map((l, i) => [l, values[i]!])) },
        };
      }),
    };
    // A preprocessing change: every biomarker mean moved by 1e-3.
    const shifted: PinFile = {
      ...actual,
      clips: actual.clips.map((c) => ({
        ...c,
        biomarkerMeans: Object.fromEntries(Object.entries(c.biomarkerMeans).map(([k, v]) => [k, v + 1e-3])),
      })),
    };

    // Act / Assess
    expect(comparePins(pinned, swapped).some((d) => /diagnosis: pinned labels/.test(d))).toBe(true);
    expect(comparePins(pinned, swapped).some((d) => /diagnosis p\(/.test(d))).toBe(true);
    expect(comparePins(pinned, shifted).some((d) => /mean .* ≠ pinned/.test(d))).toBe(true);
  });
});
