/**
 * Training inputs for `sonomark experts train`: features (JSONL from `sonomark
 * features`, or a directory of cached documents), a labels CSV, and the join of
 * the two into a TrainingSet. Every problem is a TrainingDataError that names the
 * file and line, because the person fixing it is looking at that file.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { CsvError, parseCsv } from '../csv';
import { featureVector } from '../../core/features';
import { formatZodIssues } from '../../core/zod-parse';
import { FeaturesDocument, Sha256Hex, type FeatureBlock, type ModelRef, type TaskKind } from '../../core/schemas';
import type { Modality } from '../../core/modality';
import { TrainingDataError } from './errors';
import { matrix, type Matrix } from './model';

/** One line of `sonomark features` output. */
export const FeaturesRecord = z.object({
  /** Absolute path of the clip when it was extracted. */
  file: z.string().min(1),
  /** File name without extension (the POCUS labels' `name`). */
  name: z.string().min(1),
  sha256: Sha256Hex,
  /** True when the document came from the local cache rather than a fresh extractor run. */
  cached: z.boolean().optional(),
  features: FeaturesDocument,
});
export type FeaturesRecord = z.infer<typeof FeaturesRecord>;

export type KeyColumn = 'sha256' | 'file' | 'name';

export interface LoadedFeatures {
  readonly sha256: string;
  readonly file?: string;
  readonly name?: string;
  readonly features: FeaturesDocument;
  /** Where it was read from ("out.jsonl line 4"), for messages. */
  readonly origin: string;
}

function parseJsonLine(text: string, origin: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TrainingDataError(`${origin}: not valid JSON (${(e as Error).message}).`);
  }
}

function fromJson(value: unknown, origin: string, fileName: string): LoadedFeatures {
  if (value !== null && typeof value === 'object' && 'features' in value) {
    const r = FeaturesRecord.safeParse(value);
    if (!r.success) throw new TrainingDataError(`${origin}: not a features record: ${formatZodIssues(r.error, 3)}`);
    return { sha256: r.data.sha256, file: r.data.file, name: r.data.name, features: r.data.features, origin };
  }
  // A bare document, as the cache stores it: its content hash is its file name.
  const doc = FeaturesDocument.safeParse(value);
  if (!doc.success) throw new TrainingDataError(`${origin}: not a features document: ${formatZodIssues(doc.error, 3)}`);
  const sha = /^([0-9a-f]{64})\.json$/.exec(path.basename(fileName))?.[1];
  if (!sha) {
    throw new TrainingDataError(
      `${origin}: a bare features document must be named <sha256 of the clip>.json (as the cache names them), so its clip is known.`,
    );
  }
  return { sha256: sha, features: doc.data, origin };
}

/** Reads features from a JSONL file, a .json document or record, or a directory of those (recursively). */
export function readFeatures(location: string): LoadedFeatures[] {
  let st;
  try {
    st = statSync(location);
  } catch {
    throw new TrainingDataError(`Features ${location}: no such file or directory.`);
  }
  const out: LoadedFeatures[] = [];
  const readFile = (file: string) => {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.json')) {
      out.push(fromJson(parseJsonLine(text, file), file, file));
      return;
    }
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const origin = `${file} line ${i + 1}`;
      out.push(fromJson(parseJsonLine(line, origin), origin, file));
    });
  };
  if (st.isDirectory()) {
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.jsonl?$/.test(e.name) && !e.name.endsWith('.tmp')) readFile(p);
      }
    };
    walk(location);
  } else {
    readFile(location);
  }
  if (out.length === 0) throw new TrainingDataError(`Features ${location}: no features documents found.`);
  return out;
}

/** The single extractor the documents come from; mixed extractors are refused, naming each. */
export function singleExtractor(features: readonly LoadedFeatures[], what: string): ModelRef {
  const by = new Map<string, { ref: ModelRef; count: number; example: string }>();
  for (const f of features) {
    const ref = f.features.extractor;
    const k = `${ref.name}@${ref.version} (sha256 ${ref.sha256.slice(0, 12)}…)`;
    const e = by.get(k);
    if (e) e.count++;
    else by.set(k, { ref, count: 1, example: f.origin });
  }
  if (by.size > 1) {
    const list = [...by.entries()].map(([k, v]) => `${k}: ${v.count} documents, e.g. ${v.example}`).join('; ');
    throw new TrainingDataError(
      `${what} come from ${by.size} different extractors (${list}). An expert is trained on one extractor's features: ` +
        `point at one extractor's documents (the cache keeps them apart under <cache>/features/<extractor>-<version>/).`,
    );
  }
  return [...by.values()][0]!.ref;
}

/**
 * The one modality of a training set's features documents: an expert reads one modality's features
 * (the manifest names it in the expert's `extractor.modality`), so a mixed set is refused.
 */
export function singleModality(features: readonly LoadedFeatures[], what: string): Modality {
  const by = new Map<Modality, { count: number; example: string }>();
  for (const f of features) {
    const e = by.get(f.features.modality);
    if (e) e.count++;
    else by.set(f.features.modality, { count: 1, example: f.origin });
  }
  if (by.size !== 1) {
    const list = [...by.entries()].map(([k, v]) => `${k}: ${v.count} documents, e.g. ${v.example}`).join('; ');
    throw new TrainingDataError(
      `${what} are of ${by.size} modalities (${list || 'none'}). An expert is trained on one modality's features: point at one modality's documents.`,
    );
  }
  return [...by.keys()][0]!;
}

export interface FeatureIndex {
  readonly key: KeyColumn;
  readonly byKey: ReadonlyMap<string, LoadedFeatures>;
}

/** `file` keys compare as absolute paths, so "./clip.mp4" and "/data/clip.mp4" from the same CWD agree. */
export function normaliseKey(key: KeyColumn, value: string): string {
  return key === 'file' ? path.resolve(value) : key === 'sha256' ? value.toLowerCase() : value;
}

export function indexFeatures(features: readonly LoadedFeatures[], key: KeyColumn): FeatureIndex {
  const byKey = new Map<string, LoadedFeatures>();
  for (const f of features) {
    const raw = key === 'sha256' ? f.sha256 : key === 'file' ? f.file : f.name;
    if (raw === undefined) {
      throw new TrainingDataError(
        `${f.origin}: has no "${key}" (bare cached documents only know their sha256); use --key sha256, or the JSONL that sonomark features writes.`,
      );
    }
    const k = normaliseKey(key, raw);
    const prev = byKey.get(k);
    // The same bytes twice (same sha256) is harmless; two different clips under one name or path is not.
    if (prev && prev.sha256 !== f.sha256) {
      throw new TrainingDataError(
        `${key} "${raw}" names two different clips: ${prev.origin} (sha256 ${prev.sha256.slice(0, 12)}…) and ${f.origin} (sha256 ${f.sha256.slice(0, 12)}…). Use --key sha256.`,
      );
    }
    if (!prev) byKey.set(k, f);
  }
  return { key, byKey };
}

// ---------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------

export interface LabelSpec {
  readonly key: KeyColumn;
  readonly target: string;
  readonly kind: TaskKind;
  /**
   * Output labels in order: "covid,pneumonia,healthy" (target values are the
   * labels), or "0=healthy,1=abnormal" (target value → label). Ordinal: the
   * grades "0,1,2,3". Default: the distinct target values, sorted (ordinal: 0..max).
   */
  readonly classes?: string;
  /** Binary: the label whose probability is reported. @default the last label */
  readonly positive?: string;
  readonly groupColumn?: string;
  readonly foldColumn?: string;
  readonly sourceColumn?: string;
}

export interface LabelRow {
  /** Line in the CSV (header = 1). */
  readonly line: number;
  readonly key: string;
  /** Class or grade index into `labels`. */
  readonly y: number;
  readonly group?: string;
  readonly fold?: number;
  readonly source?: string;
  /** The row's file and name cells, when the CSV has them, for messages. */
  readonly file?: string;
  readonly name?: string;
}

export interface ParsedLabels {
  readonly csv: string;
  readonly labels: string[];
  readonly positive?: string;
  readonly rows: LabelRow[];
  /** Lines whose target cell is empty. */
  readonly skipped: number[];
  /** Rows per label, in `labels` order. */
  readonly counts: number[];
}

interface ClassMap {
  readonly labels: string[];
  readonly index: Map<string, number>;
}

function parseClasses(spec: string): ClassMap {
  const parts = spec
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const mapped = parts.every((p) => p.includes('='));
  if (!mapped && parts.some((p) => p.includes('='))) {
    throw new TrainingDataError(
      `--classes "${spec}": use either "a,b,c" or "value=label,…" for every class, not a mix.`,
    );
  }
  const labels: string[] = [];
  const index = new Map<string, number>();
  for (const p of parts) {
    const [value, label] = mapped ? [p.slice(0, p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1).trim()] : [p, p];
    if (value === '' || label === '')
      throw new TrainingDataError(`--classes "${spec}": empty value or label in "${p}".`);
    if (index.has(value)) throw new TrainingDataError(`--classes "${spec}": value "${value}" appears twice.`);
    let i = labels.indexOf(label);
    if (i < 0) i = labels.push(label) - 1;
    index.set(value, i);
  }
  return { labels, index };
}

function requireColumn(header: readonly string[], column: string, option: string, csv: string): void {
  if (!header.includes(column)) {
    throw new TrainingDataError(
      `${csv} has no column "${column}" (${option}); it has: ${header.filter((h) => h !== '').join(', ')}.`,
    );
  }
}

export function parseLabels(text: string, spec: LabelSpec, csv: string): ParsedLabels {
  let table;
  try {
    table = parseCsv(text);
  } catch (e) {
    if (e instanceof CsvError) throw new TrainingDataError(`${csv}: ${e.message}`);
    throw e;
  }
  requireColumn(table.header, spec.key, '--key', csv);
  requireColumn(table.header, spec.target, '--target', csv);
  if (spec.groupColumn) requireColumn(table.header, spec.groupColumn, '--group-column', csv);
  if (spec.foldColumn) requireColumn(table.header, spec.foldColumn, '--fold-column', csv);
  if (spec.sourceColumn) requireColumn(table.header, spec.sourceColumn, '--source-column', csv);

  const withTarget = table.rows.filter((r) => (r.values[spec.target] ?? '') !== '');
  const skipped = table.rows.filter((r) => (r.values[spec.target] ?? '') === '').map((r) => r.line);
  if (withTarget.length === 0) {
    throw new TrainingDataError(`${csv}: no row has a value in column "${spec.target}".`);
  }

  let classes: ClassMap;
  if (spec.kind === 'ordinal') {
    // Grades are the labels "0".."K-1": core/expert-output.ts reads an ordinal expert's labels as its grades.
    const isGrade = (v: string) => /^\d+$/.test(v);
    let top: number;
    if (spec.classes) {
      const given = parseClasses(spec.classes);
      const ok =
        given.labels.every((l, i) => l === String(i)) && [...given.index.keys()].every((k, i) => k === String(i));
      if (!ok || given.labels.length < 2) {
        throw new TrainingDataError(
          `--classes "${spec.classes}": an ordinal target's classes are its grades 0,1,…,K-1 in order (e.g. 0,1,2,3).`,
        );
      }
      top = given.labels.length - 1;
    } else {
      top = Math.max(
        -1,
        ...withTarget
          .map((r) => r.values[spec.target]!)
          .filter(isGrade)
          .map(Number),
      );
    }
    for (const r of withTarget) {
      const v = r.values[spec.target]!;
      if (!isGrade(v) || Number(v) > top) {
        throw new TrainingDataError(
          `${csv} line ${r.line}: ${spec.target} ${JSON.stringify(v)} is not an integer 0..${Math.max(top, 0)}.`,
        );
      }
    }
    const labels = Array.from({ length: top + 1 }, (_, i) => String(i));
    classes = { labels, index: new Map(labels.map((l, i) => [l, i])) };
  } else if (spec.classes) {
    classes = parseClasses(spec.classes);
  } else {
    const labels = [...new Set(withTarget.map((r) => r.values[spec.target]!))].sort();
    classes = { labels, index: new Map(labels.map((l, i) => [l, i])) };
  }
  if (spec.kind === 'binary' && classes.labels.length !== 2) {
    throw new TrainingDataError(
      `A binary target needs exactly 2 classes; ${spec.target} has ${classes.labels.length} (${classes.labels.join(', ')}). ` +
        'Name them with --classes, e.g. --classes 0=healthy,1=abnormal.',
    );
  }
  if (classes.labels.length < 2) {
    throw new TrainingDataError(
      `${spec.target} has fewer than 2 classes (${classes.labels.join(', ') || 'none'}); an expert needs at least 2.`,
    );
  }
  let positive: string | undefined;
  if (spec.kind === 'binary') {
    positive = spec.positive ?? classes.labels[1]!;
    if (!classes.labels.includes(positive)) {
      throw new TrainingDataError(`--positive "${positive}" is not one of the classes (${classes.labels.join(', ')}).`);
    }
    // Output order is [negative, positive]: the exported sigmoid's probability is column 1.
    if (classes.labels[1] !== positive) {
      const neg = classes.labels[1]!;
      const swap = new Map([...classes.index].map(([v, i]) => [v, 1 - i]));
      classes = { labels: [neg, positive], index: swap };
    }
  }

  const rows: LabelRow[] = [];
  const counts = new Array<number>(classes.labels.length).fill(0);
  for (const r of withTarget) {
    const v = r.values;
    const where = `${csv} line ${r.line}`;
    const value = v[spec.target]!;
    const y = classes.index.get(value);
    if (y === undefined) {
      throw new TrainingDataError(
        `${where}: ${spec.target} ${JSON.stringify(value)} is not one of ${[...classes.index.keys()].join(', ')}` +
          (spec.classes ? ' (--classes)' : '') +
          '.',
      );
    }
    const key = v[spec.key] ?? '';
    if (key === '') throw new TrainingDataError(`${where}: the ${spec.key} cell (--key) is empty.`);
    let fold: number | undefined;
    if (spec.foldColumn) {
      const f = v[spec.foldColumn] ?? '';
      if (!/^\d+$/.test(f)) {
        throw new TrainingDataError(`${where}: ${spec.foldColumn} ${JSON.stringify(f)} is not a non-negative integer.`);
      }
      fold = Number(f);
    }
    const cell = (column: string | undefined, option: string) => {
      if (!column) return undefined;
      const c = v[column] ?? '';
      if (c === '') throw new TrainingDataError(`${where}: the ${column} cell (${option}) is empty.`);
      return c;
    };
    counts[y] = counts[y]! + 1;
    rows.push({
      line: r.line,
      key: normaliseKey(spec.key, key),
      y,
      group: cell(spec.groupColumn, '--group-column'),
      fold,
      source: cell(spec.sourceColumn, '--source-column'),
      file: v.file || undefined,
      name: v.name || undefined,
    });
  }
  return { csv, labels: classes.labels, positive, rows, skipped, counts };
}

// ---------------------------------------------------------------------------
// Join
// ---------------------------------------------------------------------------

export interface JoinOptions {
  readonly blocks: readonly FeatureBlock[];
  /** Drop label rows without features (and report them) instead of failing. @default false */
  readonly skipMissing?: boolean;
}

export interface Joined {
  /** Label rows that have features, in CSV order. */
  readonly rows: LabelRow[];
  readonly x: Matrix;
  /** Lines dropped for lack of features (only with skipMissing). */
  readonly missing: number[];
}

/** How messages name a label row: its key, plus its file and name where the key is neither. */
export function describeRow(r: LabelRow, key: KeyColumn): string {
  const k = key === 'sha256' ? `sha256 ${r.key.slice(0, 12)}…` : `${key} ${r.key}`;
  const extra = [r.file && key !== 'file' ? `file ${r.file}` : '', r.name && key !== 'name' ? `name ${r.name}` : '']
    .filter(Boolean)
    .join(', ');
  return extra ? `${k} (${extra})` : k;
}

/** Pairs every label row with its features vector (the expert's input, built as the expert Lambda builds it). */
export function joinFeatures(
  labels: ParsedLabels,
  index: FeatureIndex,
  opts: JoinOptions,
  what = 'the features',
): Joined {
  const rows: LabelRow[] = [];
  const vectors: Float32Array[] = [];
  const missing: number[] = [];
  let dim = -1;
  for (const r of labels.rows) {
    const f = index.byKey.get(r.key);
    if (!f) {
      if (opts.skipMissing) {
        missing.push(r.line);
        continue;
      }
      throw new TrainingDataError(
        `${labels.csv} line ${r.line}: no features for ${describeRow(r, index.key)} in ${what}. ` +
          'Run `sonomark features` on that clip, or pass --skip-missing-features to leave such rows out.',
      );
    }
    const v = featureVector(f.features, opts.blocks);
    if (dim >= 0 && v.length !== dim) {
      throw new TrainingDataError(
        `${f.origin}: blocks [${opts.blocks.join(', ')}] give ${v.length} values here but ${dim} elsewhere (embedding dim ${f.features.embedding.dim}).`,
      );
    }
    dim = v.length;
    rows.push(r);
    vectors.push(v);
  }
  if (rows.length === 0) throw new TrainingDataError(`No label row of ${labels.csv} has features in ${what}.`);
  const x = matrix(rows.length, dim);
  vectors.forEach((v, i) => x.data.set(v, i * dim));
  return { rows, x, missing };
}
