/**
 * Writes a training set: the extractor's own decoded frames for every item (as
 * uint8 .npy, exactly the bytes serving scales by 1/255) plus dataset.json with
 * labels, groups and folds, and labels.csv for `sonomark experts train`.
 * Items come from both collections (training/datasets/collections.ts) when a
 * COVID-BLUES directory is given, from POCUS alone otherwise.
 * Training in Python reads only this directory, so it never decodes video
 * itself and cannot see different pixels than the pipeline.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { decodeFrameBytes, type Preprocessing } from '../../gpu-tasks/feature-extractor/src';
import { BIOMARKERS } from '../../core/biomarkers';
import { toNpy } from '../npy';
import { sha256Hex } from '../../core/scan-id';
import { DROPPED_FLAGS } from './pocus';
import { loadCollections } from './collections';
import { DIAGNOSES, type CollectionDirs, type DatasetName, type LusItem } from './items';
import { checkTrainingJson, CxrTrainingSetFile, TrainingSetFile } from '../schemas';
import { XRAY_FINDINGS } from '../../core/modality';
import { CXR_FOLDS, loadCxr } from './cxr';

export interface FramesEntry {
  npy: string;
  frames: number;
  decodedFrames: number;
  frameIndices: number[];
}

/** Decodes one clip with the extractor's decoder and writes its frames as [n, 1, size, size] uint8 .npy. */
export async function writeClipFrames(
  file: string,
  outDir: string,
  npyName: string,
  opts: { size: number; maxFrames: number; preprocessing?: Preprocessing },
): Promise<FramesEntry> {
  const clip = await decodeFrameBytes(file, opts);
  writeFileSync(path.join(outDir, npyName), toNpy(clip.bytes, [clip.count, 1, opts.size, opts.size], 'u1'));
  return { npy: npyName, frames: clip.count, decodedFrames: clip.decodedFrames, frameIndices: clip.frameIndices };
}

export interface TrainingSetItem extends LusItem, FramesEntry {
  sha256: string;
}

export interface TrainingSet {
  /** 'pocus' (POCUS alone, as 1.1.x) or 'pocus+covid-blues'. */
  dataset: string;
  /** The POCUS directory (the parity fixture's clip is there). */
  dataDir: string;
  /** Each collection's directory: an item's `file` is relative to dataDirs[item.dataset]. */
  dataDirs: Partial<Record<DatasetName, string>>;
  /** The decoder's preprocessing the frames were made with (absent: letterbox). */
  preprocessing?: Preprocessing;
  size: number;
  maxFrames: number;
  scale: '1/255';
  folds: number;
  biomarkers: readonly string[];
  diagnoses: readonly string[];
  dropped: Record<string, string>;
  items: TrainingSetItem[];
}

export const LABELS_CSV_COLUMNS = [
  'file',
  'name',
  'sha256',
  'group',
  'source',
  'fold',
  'diagnosis',
  'triage',
  'severity',
  'dataset',
  ...BIOMARKERS,
];

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export async function exportTrainingSet(
  dirs: CollectionDirs,
  outDir: string,
  opts: {
    size: number;
    maxFrames: number;
    folds?: number;
    preprocessing?: Preprocessing;
    log?: (line: string) => void;
  },
): Promise<TrainingSet> {
  const items = loadCollections(dirs, opts.folds);
  const dataDirs: Partial<Record<DatasetName, string>> = { pocus: path.resolve(dirs.pocus) };
  if (dirs.blues) dataDirs['covid-blues'] = path.resolve(dirs.blues);
  const framesDir = path.join(outDir, 'frames');
  mkdirSync(framesDir, { recursive: true });
  const out: TrainingSetItem[] = [];
  for (const item of items) {
    const abs = path.join(dataDirs[item.dataset]!, item.file);
    const frames = await writeClipFrames(abs, framesDir, `${item.name}.npy`, opts);
    out.push({ ...item, ...frames, npy: `frames/${frames.npy}`, sha256: sha256Hex(readFileSync(abs)) });
    opts.log?.(
      `${item.name}: ${frames.frames} of ${frames.decodedFrames} frames, fold ${item.fold}, source ${item.source}`,
    );
  }
  const set: TrainingSet = {
    dataset: dirs.blues ? 'pocus+covid-blues' : 'pocus',
    dataDir: dataDirs.pocus!,
    dataDirs,
    ...(opts.preprocessing ? { preprocessing: opts.preprocessing } : {}),
    size: opts.size,
    maxFrames: opts.maxFrames,
    scale: '1/255',
    folds: opts.folds ?? Math.max(...items.map((i) => i.fold)) + 1,
    biomarkers: BIOMARKERS,
    diagnoses: DIAGNOSES,
    dropped: DROPPED_FLAGS,
    items: out,
  };
  checkTrainingJson(TrainingSetFile, set, `training set for ${outDir}`);
  writeFileSync(path.join(outDir, 'dataset.json'), JSON.stringify(set, null, 1) + '\n');
  const rows = out.map((i) =>
    [
      path.join(dataDirs[i.dataset]!, i.file),
      i.name,
      i.sha256,
      i.group,
      i.source,
      i.fold,
      i.diagnosis,
      i.triage,
      i.severity,
      i.dataset,
      ...BIOMARKERS.map((b) => i.biomarkers[b]),
    ]
      .map(csvCell)
      .join(','),
  );
  writeFileSync(path.join(outDir, 'labels.csv'), [LABELS_CSV_COLUMNS.join(','), ...rows].join('\n') + '\n');
  return set;
}

/** The POCUS collection in `dataDir`, with COVID-BLUES when `opts.blues` names it (POCUS alone: the 1.1.x set). */
export function exportPocusTrainingSet(
  dataDir: string,
  outDir: string,
  opts: {
    size: number;
    maxFrames: number;
    folds?: number;
    preprocessing?: Preprocessing;
    blues?: string;
    log?: (line: string) => void;
  },
): Promise<TrainingSet> {
  return exportTrainingSet({ pocus: dataDir, ...(opts.blues ? { blues: opts.blues } : {}) }, outDir, opts);
}

/** Where the chest X-ray training set goes under the training folder. */
export const CXR_TRAINING_SUBDIR = 'xray';

/**
 * The chest X-ray collection (training/datasets/cxr.ts) through the serving decoder with preprocessing
 * xray-1: one uint8 [1,1,size,size] .npy per image, and dataset.json with every item's targets, patient
 * group and fold. Images are decoded `concurrency` at a time (each is one short ffmpeg run).
 */
export async function exportCxrTrainingSet(
  dataDir: string,
  outDir: string,
  opts: { size: number; folds?: number; concurrency?: number; log?: (line: string) => void },
): Promise<CxrTrainingSetFile> {
  const items = loadCxr(dataDir, opts.folds ?? CXR_FOLDS);
  const framesDir = path.join(outDir, 'frames');
  mkdirSync(framesDir, { recursive: true });
  const out: CxrTrainingSetFile['items'] = new Array(items.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const item = items[i]!;
      const abs = path.join(dataDir, item.file);
      const frames = await writeClipFrames(abs, framesDir, `${item.name}.npy`, {
        size: opts.size,
        maxFrames: 1,
        preprocessing: 'xray-1',
      });
      out[i] = {
        name: item.name,
        file: item.file,
        npy: `frames/${frames.npy}`,
        source: item.source,
        group: item.group,
        label: item.label,
        finding: item.finding,
        view: item.view,
        license: item.license,
        fold: item.fold,
        targets: item.targets,
        sha256: sha256Hex(readFileSync(abs)),
      };
      if (++done % 500 === 0) opts.log?.(`${done} of ${items.length} images decoded`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, worker));
  const set: CxrTrainingSetFile = {
    dataset: 'cxr',
    dataDir: path.resolve(dataDir),
    preprocessing: 'xray-1',
    size: opts.size,
    maxFrames: 1,
    scale: '1/255',
    folds: opts.folds ?? CXR_FOLDS,
    findings: [...XRAY_FINDINGS],
    items: out,
  };
  checkTrainingJson(CxrTrainingSetFile, set, `chest X-ray training set for ${outDir}`);
  writeFileSync(path.join(outDir, 'dataset.json'), JSON.stringify(set, null, 1) + '\n');
  return set;
}
