/**
 * The model manifest loader: the one definition of "which models sonomark runs",
 * read by the CDK app (one expert function per entry), local mode, the expert
 * Lambda and the extractor container.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ModelError } from './errors';
import { blocksDim, featureShape } from './features';
import type { z } from 'zod';
import { MODELS } from './contract';
import { MODALITIES, MODALITY_LABELS, type Modality } from './modality';
import { modelsDirFromEnv } from './paths';
import { Manifest, type ExpertEntry, type ExtractorEntry } from './schemas';
import { parsePayload } from './zod-parse';

export interface LoadedManifest {
  readonly dir: string;
  readonly manifest: Manifest;
}

/** Reads and validates `manifest.json` in `dir`, checking its internal consistency (not the files). */
export function loadManifest(dir: string = modelsDirFromEnv()): LoadedManifest {
  const file = path.join(dir, MODELS.manifestFile);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelError(`Cannot read model manifest ${file}: ${(err as Error).message}`);
  }
  return { dir, manifest: validateManifest(raw, `model manifest ${file}`) };
}

/**
 * Validates a manifest as loadManifest would read it back: the zod schema, then the internal
 * consistency (each extractor's label order, expert input dims, extractor references). `what` names it in errors.
 */
export function validateManifest(value: unknown, what: string): Manifest {
  refuseSchemaVersion1(value, what);
  const manifest = parsePayload(Manifest, value, what);
  checkConsistency(manifest);
  return manifest;
}

/**
 * A version 1 manifest (one `extractor`, experts without a modality) is refused with what changed rather
 * than migrated on read: every manifest is written by this repository's code and deployed with the code
 * that reads it (models/, the images that copy models/extractor/, the artifacts bucket the CDK app fills),
 * so a version 1 file is stale output of an older checkout. Migrating in memory would also let a
 * read-edit-write (experts publish, ship-extractor) mix a version 1 file with version 2 entries.
 */
function refuseSchemaVersion1(value: unknown, what: string): void {
  if (typeof value !== 'object' || value === null || (value as { schemaVersion?: unknown }).schemaVersion !== 1) {
    return;
  }
  throw new ModelError(
    `The ${what} is schemaVersion 1; sonomark reads schemaVersion 2, which holds one extractor per modality: ` +
      `move "extractor" to "extractors": { "ultrasound": <that entry> }, add "modality": "ultrasound" to each ` +
      `expert's "extractor", and set "schemaVersion": 2 (or re-run the command that wrote it).`,
  );
}

/**
 * The extractor of `modality`. Every reader goes through here, so a manifest without an extractor
 * for a scan's modality refuses it with the modalities it does have.
 */
export function extractorFor(m: Pick<Manifest, 'extractors'>, modality: Modality): ExtractorEntry {
  const entry = m.extractors[modality];
  if (!entry) {
    throw new ModelError(
      `The model manifest has no ${modality} extractor (it has: ${manifestModalities(m).join(', ')}).`,
    );
  }
  return entry;
}

/** The modalities the manifest has an extractor for, in MODALITIES order. */
export function manifestModalities(m: Pick<Manifest, 'extractors'>): Modality[] {
  return MODALITIES.filter((x) => m.extractors[x] !== undefined);
}

/** The manifest's extractors, in MODALITIES order (what a models listing, a report or a copy of models/ names). */
export function manifestExtractors(m: Pick<Manifest, 'extractors'>): ExtractorEntry[] {
  return manifestModalities(m).map((x) => extractorFor(m, x));
}

/** The manifest's extractors as `name@version`, in MODALITIES order (cohort summaries): one today, so as before. */
export function extractorsLabel(m: Pick<Manifest, 'extractors'>): string {
  return manifestExtractors(m)
    .map((x) => `${x.name}@${x.version}`)
    .join(', ');
}

/** A manifest as JSON before zod's defaults: what a file holds and what writeManifest takes. */
export type ManifestJson = z.input<typeof Manifest>;

/** The one serialisation of a manifest: 2-space JSON and a final newline (what every writer produced). */
export function manifestJson(manifest: ManifestJson): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/**
 * Writes `manifest.json` in `dir` (created if missing): validated first, so an invalid manifest throws
 * a readable error and leaves the old file untouched; then written to a temp file in the same directory
 * and renamed over the old one, so a reader never sees half a file and a crash leaves either version.
 *
 * The given JSON is written as is, not zod's parsed copy: the parse would add defaults and drop keys it
 * does not know, so a read-edit-write of a manifest would rewrite entries nobody changed.
 */
export function writeManifest(dir: string, manifest: ManifestJson): LoadedManifest {
  const file = path.join(dir, MODELS.manifestFile);
  let parsed: Manifest;
  try {
    parsed = validateManifest(manifest, `model manifest for ${file}`);
  } catch (err) {
    (err as Error).message += ' Nothing was written.';
    throw err;
  }
  mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${MODELS.manifestFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, manifestJson(manifest));
    renameSync(tmp, file);
    writeExtractorManifest(dir, manifest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new ModelError(`Cannot write model manifest ${file}: ${(err as Error).message}`);
  }
  return { dir, manifest: parsed };
}

/**
 * The extractor's own manifest, `extractor/manifest.json` beside its ONNX file: the shared manifest
 * with no experts. The extractor image copies only models/extractor/ (its Dockerfile), so adding or
 * publishing an expert changes no byte of the image's build context and never rebuilds it.
 */
export const EXTRACTOR_MANIFEST_FILE = `extractor/${MODELS.manifestFile}`;

export function extractorOnlyManifest(manifest: ManifestJson): ManifestJson {
  return { ...manifest, experts: [] };
}

/** Writes the extractor's own manifest when `dir` has an extractor/ folder and its content changed. */
function writeExtractorManifest(dir: string, manifest: ManifestJson): void {
  const file = path.join(dir, EXTRACTOR_MANIFEST_FILE);
  if (!existsSync(path.dirname(file))) return;
  const text = manifestJson(extractorOnlyManifest(manifest));
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function checkConsistency(m: Manifest): void {
  for (const modality of manifestModalities(m)) {
    const x = extractorFor(m, modality);
    const labels = x.outputs.biomarkers.labels;
    const expected = MODALITY_LABELS[modality];
    if (labels.join(',') !== expected.join(',')) {
      throw new ModelError(
        `The ${modality} extractor ${x.name} emits biomarkers [${labels.join(', ')}], but sonomark expects [${expected.join(', ')}] in that order.`,
      );
    }
  }
  const names = new Set<string>();
  for (const e of m.experts) {
    if (names.has(e.name)) throw new ModelError(`Expert "${e.name}" appears twice in the manifest.`);
    names.add(e.name);
    const modality = e.extractor.modality;
    const x = m.extractors[modality];
    if (!x) {
      throw new ModelError(
        `Expert "${e.name}" reads ${modality} features, but the manifest has no ${modality} extractor (it has: ${manifestModalities(m).join(', ')}).`,
      );
    }
    const dim = blocksDim(e.input.blocks, featureShape(x));
    if (dim !== e.input.dim) {
      throw new ModelError(
        `Expert "${e.name}" declares input dim ${e.input.dim}, but blocks [${e.input.blocks.join(', ')}] of the ${modality} extractor's features give ${dim}.`,
      );
    }
    if (e.extractor.name !== x.name || e.extractor.version !== x.version) {
      throw new ModelError(
        `Expert "${e.name}" was trained on ${e.extractor.name}@${e.extractor.version} features, but the manifest's ${modality} extractor is ${x.name}@${x.version}.`,
      );
    }
    if (
      e.task === 'binary' &&
      (e.output.labels.length !== 2 || !e.output.positive || !e.output.labels.includes(e.output.positive))
    ) {
      throw new ModelError(`Binary expert "${e.name}" needs two labels and a "positive" label among them.`);
    }
  }
}

export function modelPath(dir: string, entry: { file: string }): string {
  return path.join(dir, entry.file);
}

/** Reads a model file and verifies its sha256 against the manifest, so a swapped file never runs. */
export function readVerifiedModel(dir: string, entry: { name: string; file: string; sha256: string }): Buffer {
  const file = modelPath(dir, entry);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new ModelError(`Model "${entry.name}" file ${file} cannot be read: ${(err as Error).message}`);
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== entry.sha256) {
    throw new ModelError(
      `Model "${entry.name}" file ${file} has sha256 ${actual}, but the manifest says ${entry.sha256}.`,
    );
  }
  return bytes;
}

/** The experts that read `modality`'s extractor's features, in manifest order: the only ones that may score such a scan. */
export function expertsFor(m: Manifest, modality: Modality): ExpertEntry[] {
  return m.experts.filter((e) => e.extractor.modality === modality);
}

export function findExpert(m: Manifest, name: string): ExpertEntry {
  const e = m.experts.find((x) => x.name === name);
  if (!e)
    throw new ModelError(
      `No expert named "${name}" in the manifest (have: ${m.experts.map((x) => x.name).join(', ')}).`,
    );
  return e;
}

export function extractorRef(e: ExtractorEntry): { name: string; version: string; sha256: string } {
  return { name: e.name, version: e.version, sha256: e.sha256 };
}
