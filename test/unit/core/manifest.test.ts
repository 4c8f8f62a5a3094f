import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BIOMARKERS } from '../../../core/biomarkers';
import { blocksDim, featureShape } from '../../../core/features';
import { ModelError, PayloadError } from '../../../core/errors';
import {
  extractorFor,
  extractorOnlyManifest,
  findExpert,
  loadManifest,
  manifestModalities,
  readVerifiedModel,
  writeManifest,
} from '../../../core/manifest';
import { XRAY_FINDINGS } from '../../../core/modality';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';

const SHIPPED = DEFAULT_MODELS_DIR;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sonomark-manifest-'));
  cpSync(SHIPPED, dir, { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Edits the temp copy's manifest.json in place. */
function editManifest(edit: (m: any) => void): void {
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8'));
  edit(m);
  writeFileSync(file, JSON.stringify(m));
}

function loadError(): Error {
  try {
    loadManifest(dir);
  } catch (err) {
    return err as Error;
  }
  throw new Error('loadManifest did not throw');
}

describe('loadManifest', () => {
  it('loads the shipped models directory', () => {
    // Prepare / Act
    const { dir: loadedDir, manifest } = loadManifest(SHIPPED);

    // Assess
    expect(loadedDir).toBe(SHIPPED);
    expect(manifest.extractors.ultrasound.outputs.biomarkers.labels).toEqual([...BIOMARKERS]);
    expect(manifest.experts.map((e) => e.name)).toEqual([
      'diagnosis',
      'severity',
      'triage',
      'b-lines',
      'xray-pneumonia',
      'xray-bacterial-viral',
      'xray-covid',
    ]);
    expect(findExpert(manifest, 'severity').task).toBe('ordinal');
  });

  it('rejects reordered biomarker labels', () => {
    // Prepare
    editManifest((m) => {
      const labels = m.extractors.ultrasound.outputs.biomarkers.labels as string[];
      [labels[0], labels[1]] = [labels[1] as string, labels[0] as string];
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toContain(
      'The ultrasound extractor sonomark-lus-biomarkers emits biomarkers [b_lines, a_lines,',
    );
    expect(err.message).toContain('in that order');
  });

  it('rejects an expert whose declared dim does not match its blocks', () => {
    // Prepare
    editManifest((m) => {
      m.experts.find((e: { name: string }) => e.name === 'severity').input.dim = 87;
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    const shipped = loadManifest(SHIPPED).manifest;
    const severity = findExpert(shipped, 'severity');
    const dim = blocksDim(severity.input.blocks, featureShape(shipped.extractors.ultrasound));
    expect(err.message).toBe(
      `Expert "severity" declares input dim 87, but blocks [${severity.input.blocks.join(', ')}] of the ultrasound extractor's features give ${dim}.`,
    );
  });

  it('rejects a duplicate expert', () => {
    // Prepare
    editManifest((m) => {
      m.experts.push(structuredClone(m.experts.find((e: { name: string }) => e.name === 'diagnosis')));
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toBe('Expert "diagnosis" appears twice in the manifest.');
  });

  it('rejects an expert trained on another extractor version', () => {
    // Prepare
    editManifest((m) => {
      m.experts.find((e: { name: string }) => e.name === 'triage').extractor.version = '0.0.2';
    });
    const { name, version } = loadManifest(SHIPPED).manifest.extractors.ultrasound;

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toContain(`Expert "triage" was trained on ${name}@0.0.2 features`);
    expect(err.message).toContain(`manifest's ultrasound extractor is ${name}@${version}`);
  });

  it('rejects a binary expert whose positive label is not among its labels', () => {
    // Prepare
    editManifest((m) => {
      m.experts[2].output.positive = 'sick';
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toContain('Binary expert "triage" needs two labels and a "positive" label among them.');
  });

  it('reports an unreadable manifest as a ModelError naming the file', () => {
    // Prepare
    writeFileSync(path.join(dir, 'manifest.json'), '{ not json');

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toContain(`Cannot read model manifest ${path.join(dir, 'manifest.json')}`);
  });
});

/** An X-ray extractor entry (the shipped ultrasound one relabelled): the manifest checks do not read its file. */
function xrayEntry(m: any, edit: (x: any) => void = () => {}): any {
  const x = structuredClone(m.extractors.ultrasound);
  x.name = 'sonomark-cxr-test';
  x.version = '0.1.0';
  x.outputs.biomarkers.labels = [...XRAY_FINDINGS];
  x.outputs.embedding.dim = 16;
  edit(x);
  return x;
}

/** An X-ray expert on [biomarker-stats, embedding-mean] of xrayEntry: 3 labels × 4 statistics + 16. */
function xrayExpert(m: any, edit: (e: any) => void = () => {}): any {
  const e = structuredClone(m.experts.find((x: { name: string }) => x.name === 'triage'));
  e.name = 'pneumonia';
  e.extractor = { modality: 'xray', name: 'sonomark-cxr-test', version: '0.1.0' };
  e.input.blocks = ['biomarker-stats', 'embedding-mean'];
  e.input.dim = 3 * 4 + 16;
  edit(e);
  return e;
}

describe('manifest modalities (schemaVersion 2)', () => {
  // These tests put their own X-ray extractor in the copy: the shipped X-ray experts read another one.
  beforeEach(() =>
    editManifest((m) => {
      m.experts = m.experts.filter((e: { extractor: { modality: string } }) => e.extractor.modality !== 'xray');
    }),
  );

  it('gives each modality its own extractor, and names the modalities it has when one is missing', () => {
    // Prepare: the shipped manifest without its X-ray extractor (models/ ships one since sonomark-cxr-ssl).
    const full = loadManifest(SHIPPED).manifest;
    const shipped = { ...full, extractors: { ultrasound: full.extractors.ultrasound } };
    editManifest((m) => {
      m.extractors.xray = xrayEntry(m);
    });

    // Act
    const both = loadManifest(dir).manifest;

    // Assess
    expect(manifestModalities(shipped)).toEqual(['ultrasound']);
    expect(extractorFor(shipped, 'ultrasound')).toBe(shipped.extractors.ultrasound);
    expect(() => extractorFor(shipped, 'xray')).toThrow(ModelError);
    expect(() => extractorFor(shipped, 'xray')).toThrow(
      'The model manifest has no xray extractor (it has: ultrasound).',
    );
    expect(manifestModalities(both)).toEqual(['ultrasound', 'xray']);
    expect(extractorFor(both, 'xray').name).toBe('sonomark-cxr-test');
    expect(extractorFor(both, 'ultrasound')).toEqual(shipped.extractors.ultrasound);
  });

  it.each([
    ['reordered', [XRAY_FINDINGS[1], XRAY_FINDINGS[0], XRAY_FINDINGS[2]]],
    ['the ultrasound labels', [...BIOMARKERS]],
  ])('rejects an X-ray extractor emitting %s', (_what, labels) => {
    // Prepare
    editManifest((m) => {
      m.extractors.xray = xrayEntry(m, (x) => (x.outputs.biomarkers.labels = labels));
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toBe(
      `The xray extractor sonomark-cxr-test emits biomarkers [${labels.join(', ')}], but sonomark expects [pneumonia, viral, covid] in that order.`,
    );
  });

  it("takes an expert input dim from its own modality's extractor", () => {
    // Prepare: 3 X-ray labels and a 16-dim embedding, not the ultrasound extractor's 6 and 48.
    editManifest((m) => {
      m.extractors.xray = xrayEntry(m);
      m.experts.push(xrayExpert(m));
    });

    // Act
    const loaded = loadManifest(dir).manifest;

    // Assess
    expect(findExpert(loaded, 'pneumonia').input.dim).toBe(28);
    expect(blocksDim(['biomarker-stats', 'embedding-mean'], featureShape(loaded.extractors.ultrasound))).not.toBe(28);
  });

  it('rejects an X-ray expert whose dim was counted on the ultrasound extractor', () => {
    // Prepare
    editManifest((m) => {
      m.extractors.xray = xrayEntry(m);
      m.experts.push(xrayExpert(m, (e) => (e.input.dim = 6 * 4 + 48)));
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toBe(
      'Expert "pneumonia" declares input dim 72, but blocks [biomarker-stats, embedding-mean] of the xray extractor\'s features give 28.',
    );
  });

  it('rejects an expert of a modality the manifest has no extractor for', () => {
    // Prepare
    editManifest((m) => {
      delete m.extractors.xray;
      m.experts.push(xrayExpert(m));
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toBe(
      'Expert "pneumonia" reads xray features, but the manifest has no xray extractor (it has: ultrasound).',
    );
  });

  it("rejects an expert naming the other modality's extractor", () => {
    // Prepare: an ultrasound expert that claims to read the X-ray extractor's features.
    editManifest((m) => {
      m.extractors.xray = xrayEntry(m);
      m.experts.push(xrayExpert(m, (e) => (e.extractor.modality = 'ultrasound')));
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toContain('Expert "pneumonia" declares input dim 28');
    expect(err.message).toContain("of the ultrasound extractor's features give");
  });

  it.each([
    ['an unknown modality key', (m: any) => (m.extractors.ct = m.extractors.ultrasound), 'extractors'],
    ['no ultrasound extractor', (m: any) => delete m.extractors.ultrasound, 'extractors.ultrasound'],
    [
      'an expert extractor without a modality',
      (m: any) => delete m.experts[0].extractor.modality,
      'experts.0.extractor.modality',
    ],
    [
      'an expert of an unknown modality',
      (m: any) => (m.experts[0].extractor.modality = 'ct'),
      'experts.0.extractor.modality',
    ],
  ])('rejects %s with the path of the field', (_what, edit, where) => {
    // Prepare
    editManifest(edit);

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(PayloadError);
    expect(err.message).toContain(where);
  });

  it('refuses a schemaVersion 1 manifest, saying what changed', () => {
    // Prepare: the layout before issue 21, one `extractor` and experts without a modality.
    editManifest((m) => {
      m.schemaVersion = 1;
      m.extractor = m.extractors.ultrasound;
      delete m.extractors;
      for (const e of m.experts) delete e.extractor.modality;
    });

    // Act
    const err = loadError();

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toContain(`The model manifest ${path.join(dir, 'manifest.json')} is schemaVersion 1`);
    expect(err.message).toContain('move "extractor" to "extractors": { "ultrasound": <that entry> }');
    expect(err.message).toContain('add "modality": "ultrasound" to each expert\'s "extractor"');
  });

  it("keeps every extractor, and no expert, in the extractor image's own manifest", () => {
    // Prepare
    const m = JSON.parse(readFileSync(path.join(SHIPPED, 'manifest.json'), 'utf8'));
    m.extractors.xray = xrayEntry(m);
    // The test's X-ray extractor replaces the shipped one, so its experts replace the shipped X-ray experts.
    m.experts = m.experts.filter((e: { extractor: { modality: string } }) => e.extractor.modality !== 'xray');
    m.experts.push(xrayExpert(m));
    mkdirSync(path.join(dir, 'extractor'), { recursive: true });

    // Act
    writeManifest(dir, m);
    const own = loadManifest(path.join(dir, 'extractor')).manifest;

    // Assess
    expect(manifestModalities(own)).toEqual(['ultrasound', 'xray']);
    expect(own.experts).toEqual([]);
    expect(extractorOnlyManifest(m).extractors).toEqual(m.extractors);
  });
});

describe('readVerifiedModel', () => {
  it('returns the bytes of a model whose sha256 matches', () => {
    // Prepare
    const { manifest } = loadManifest(dir);
    const entry = findExpert(manifest, 'triage');

    // Act
    const bytes = readVerifiedModel(dir, entry);

    // Assess
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(entry.sha256);
    expect(bytes.equals(readFileSync(path.join(dir, entry.file)))).toBe(true);
  });

  it('rejects a wrong sha256 with a ModelError naming both hashes', () => {
    // Prepare
    const { manifest } = loadManifest(dir);
    const real = findExpert(manifest, 'triage');
    const wrong = '0'.repeat(64);

    // Act
    let err: Error | undefined;
    try {
      readVerifiedModel(dir, { ...real, sha256: wrong });
    } catch (e) {
      err = e as Error;
    }

    // Assess
    expect(err).toBeInstanceOf(ModelError);
    expect(err?.message).toContain(`has sha256 ${real.sha256}`);
    expect(err?.message).toContain(`but the manifest says ${wrong}`);
    expect(err?.message).toContain('Model "triage"');
  });

  it('rejects a missing file with a ModelError', () => {
    // Prepare
    const entry = { name: 'ghost', file: 'experts/ghost.onnx', sha256: '0'.repeat(64) };

    // Act / Assess
    expect(() => readVerifiedModel(dir, entry)).toThrow(ModelError);
    expect(() => readVerifiedModel(dir, entry)).toThrow('Model "ghost" file');
  });
});

describe('writeManifest', () => {
  const file = () => path.join(dir, 'manifest.json');
  const shipped = () => JSON.parse(readFileSync(path.join(SHIPPED, 'manifest.json'), 'utf8'));
  /** Everything in the directory that is not what was there before: a temp file left behind shows here. */
  const leftovers = (before: string[]) => readdirSync(dir).filter((f) => !before.includes(f));

  it('writes a manifest that loads back equal, in the format of the shipped file', () => {
    // Prepare
    const out = mkdtempSync(path.join(tmpdir(), 'sonomark-write-'));
    try {
      // Act
      const written = writeManifest(out, shipped());

      // Assess
      expect(readdirSync(out)).toEqual(['manifest.json']);
      expect(readFileSync(path.join(out, 'manifest.json'))).toEqual(readFileSync(path.join(SHIPPED, 'manifest.json')));
      expect(loadManifest(out).manifest).toEqual(loadManifest(SHIPPED).manifest);
      expect(written.manifest).toEqual(loadManifest(SHIPPED).manifest);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('replaces an existing manifest and leaves no temp file', () => {
    // Prepare
    const before = readdirSync(dir);
    const m = shipped();
    m.experts = m.experts.filter((e: { name: string }) => e.name !== 'severity');

    // Act
    writeManifest(dir, m);

    // Assess
    expect(loadManifest(dir).manifest.experts.map((e) => e.name)).toEqual(
      shipped()
        .experts.map((e: { name: string }) => e.name)
        .filter((n: string) => n !== 'severity'),
    );
    expect(leftovers(before)).toEqual([]);
  });

  it('throws a readable error for a manifest that fails the schema, and leaves the old file byte-identical', () => {
    // Prepare
    const before = readFileSync(file());
    const names = readdirSync(dir);
    const m = shipped();
    m.experts[1].version = 'two';

    // Act
    let err: Error | undefined;
    try {
      writeManifest(dir, m);
    } catch (e) {
      err = e as Error;
    }

    // Assess
    expect(err).toBeInstanceOf(PayloadError);
    expect(err?.message).toContain(`Invalid model manifest for ${file()}`);
    expect(err?.message).toContain('experts.1.version');
    expect(err?.message).toContain('Nothing was written.');
    expect(readFileSync(file()).equals(before)).toBe(true);
    expect(leftovers(names)).toEqual([]);
  });

  it('refuses an inconsistent manifest (what loadManifest would reject) and writes nothing', () => {
    // Prepare
    const before = readFileSync(file());
    const m = shipped();
    m.experts[0].input.dim += 1;

    // Act / Assess
    expect(() => writeManifest(dir, m)).toThrow(ModelError);
    expect(() => writeManifest(dir, m)).toThrow(/declares input dim .* Nothing was written\./);
    expect(readFileSync(file()).equals(before)).toBe(true);
  });

  it('removes its temp file when the rename fails', () => {
    // Prepare: a directory where the manifest should go makes the rename fail.
    const out = mkdtempSync(path.join(tmpdir(), 'sonomark-write-'));
    mkdirSync(path.join(out, 'manifest.json', 'blocker'), { recursive: true });
    try {
      // Act / Assess
      expect(() => writeManifest(out, shipped())).toThrow(/Cannot write model manifest/);
      expect(readdirSync(out)).toEqual(['manifest.json']);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
