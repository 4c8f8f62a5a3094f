/**
 * The COVID-BLUES lung-ultrasound collection (../shared/data/covid-blues, CC BY-NC-ND 4.0: read from
 * there, never copied into the project): its label mappings and patient groups.
 *
 * One hospital, one device (Philips Lumify, convex probe), BLUE-protocol points L1–L3/R1–R3 per
 * patient, 350×350 at 25 fps. Per video (severity.csv): Soldati severity 0–3, A-lines and B-lines
 * yes/no, and free-text findings in `comments` (only about one video in ten has any). Per patient
 * (clinical_variables.csv): the PCR result `cov_test` and a one-hot clinical diagnosis `clin_diagn#…`.
 *
 * Label mappings (every rule here is tested in test/unit/training/covid-blues.test.ts on the
 * collection's own phrasings):
 * - a_lines, b_lines: `yes` → 1, `no` → 0, after trimming (some cells are "no " / "yes ").
 * - severity: the `Severity Score` 0.0–3.0 as the integer grade 0–3.
 * - diagnosis (patient-level, copied to each of the patient's videos):
 *   PCR positive (`cov_test` 1) → covid. PCR negative → the clinical diagnosis column:
 *   `healthy_lung` → healthy; `bacterial_pneumonia` or `other_viral_pneumonia` → pneumonia;
 *   `other_lung_disease` (or none, or a COVID clinical diagnosis despite a negative PCR) → unlabelled
 *   (null): not one of the three classes the diagnosis expert predicts, and not healthy.
 * - triage (per video): severity 0 → 0 (healthy-looking lung at that point), 1–3 → 1. A patient-level
 *   label would call a normal-looking point of a COVID patient abnormal.
 * - weak flags from the findings text and the severity scheme (FINDING_RULES below):
 *   consolidation and effusion are 1 when the text names them (not hedged: "possible …" or "…?" leaves
 *   the flag unlabelled), 0 at severity 0 (Soldati 0: continuous regular pleural line, no consolidation)
 *   when the text does not name them, else unlabelled (no text means "not mentioned", not "absent").
 *   Effusion is not part of the severity scheme: it is 1 when named, otherwise unlabelled.
 *   pleural_irregularity is 1 when the text says broken / interrupted / thickened / irregular pleura,
 *   0 when it says intact; without text it follows the scheme: severity 0 → 0 (regular pleural line),
 *   1–3 → 1 (indented or broken pleural line by the scheme's definition of those grades).
 * - healthy_pattern: 1 when severity 0 with A-lines and without B-lines; 0 when severity ≥ 1; else
 *   unlabelled.
 * - group: the patient (`blues-patient-<id>`); source: `covid-blues` (one device, one site).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { Biomarker } from '../../core/biomarkers';
import { parseCsv } from '../csv';
import type { Diagnosis, LusItem } from './items';

export const BLUES_SOURCE = 'covid-blues';
export const BLUES_LICENSE = 'CC BY-NC-ND 4.0';

/** Clinical diagnosis column → diagnosis for PCR-negative patients (absent: unlabelled). */
export const CLINICAL_DIAGNOSIS: Record<string, Diagnosis | null> = {
  'clin_diagn#healthy_lung': 'healthy',
  'clin_diagn#bacterial_pneumonia': 'pneumonia',
  'clin_diagn#other_viral_pneumonia': 'pneumonia',
  'clin_diagn#other_lung_disease': null,
  // A COVID clinical diagnosis with a negative PCR contradicts the label of record: unlabelled.
  'clin_diagn#COVID19_pneumonia': null,
};

export interface Findings {
  consolidation: 0 | 1 | null;
  effusion: 0 | 1 | null;
  pleural_irregularity: 0 | 1 | null;
}

/** A hedge inside one finding phrase: the flag is left unlabelled. */
const HEDGE = /\b(?:possible|possibly|maybe|suspected|questionable)\b|\?/;

/**
 * The keyword rules: for each flag, the phrases that set it to 1 and to 0. Applied to each comma- or
 * semicolon-separated phrase of the lower-cased text, so "broken pleura line, B-lines" reads as two
 * findings. `consolidat` covers consolidation / consolidated areas; "pleura" covers pleura and pleural.
 */
export const FINDING_RULES: Record<keyof Findings, { positive: RegExp; negative: RegExp }> = {
  consolidation: {
    positive: /consolidat/,
    negative: /\bno (?:sign of )?consolidat/,
  },
  effusion: {
    positive: /effusion/,
    negative: /\bno (?:pleural )?effusion/,
  },
  pleural_irregularity: {
    positive:
      /pleura[l]? line (?:broken|interrupted|thickened|irregular)|(?:broken|interrupted|thickened|irregular|fragmented) pleura/,
    negative: /pleura[l]? line (?:intact|regular|smooth)|(?:intact|regular|smooth) pleura/,
  },
};

/** What the findings text says about each flag: 1, 0, or null (not mentioned, or hedged). */
export function findingsFromText(text: string): Findings {
  const out: Findings = { consolidation: null, effusion: null, pleural_irregularity: null };
  const phrases = text
    .toLowerCase()
    .split(/[,;\n]/)
    .map((p) => p.trim())
    .filter(Boolean);
  for (const flag of Object.keys(FINDING_RULES) as (keyof Findings)[]) {
    const rule = FINDING_RULES[flag];
    for (const p of phrases) {
      if (rule.negative.test(p)) {
        // A positive phrase elsewhere wins: a finding seen at one spot of the clip is in the clip.
        if (out[flag] === null) out[flag] = 0;
      } else if (rule.positive.test(p)) {
        if (HEDGE.test(p)) continue;
        out[flag] = 1;
      }
    }
  }
  return out;
}

/** Findings text + severity grade → the weak flags (the rules in the file comment). */
export function weakFlags(text: string, severity: number): Findings {
  const t = findingsFromText(text);
  const hedged = (flag: keyof Findings) =>
    text
      .toLowerCase()
      .split(/[,;\n]/)
      .some((p) => FINDING_RULES[flag].positive.test(p) && HEDGE.test(p));
  return {
    consolidation: t.consolidation ?? (severity === 0 && !hedged('consolidation') ? 0 : null),
    effusion: t.effusion,
    pleural_irregularity: t.pleural_irregularity ?? (severity === 0 ? 0 : 1),
  };
}

function yesNo(value: string | undefined, column: string, line: number): 0 | 1 {
  const v = (value ?? '').trim().toLowerCase();
  if (v === 'yes') return 1;
  if (v === 'no') return 0;
  throw new Error(`severity.csv line ${line}: ${JSON.stringify(value)} in column "${column}"; accepted: yes or no.`);
}

/** Patient-level diagnosis: PCR positive → covid; PCR negative → the clinical diagnosis mapping. */
export function bluesDiagnosis(row: Record<string, string>, line: number): Diagnosis | null {
  const pcr = (row['cov_test'] ?? '').trim();
  if (pcr === '1' || pcr === '1.0') return 'covid';
  if (pcr !== '0' && pcr !== '0.0') {
    throw new Error(
      `clinical_variables.csv line ${line}: cov_test ${JSON.stringify(pcr)}; accepted: 1 (positive) or 0.`,
    );
  }
  const set = Object.keys(CLINICAL_DIAGNOSIS).filter((c) => ['1', '1.0'].includes((row[c] ?? '').trim()));
  if (set.length !== 1) return null;
  return CLINICAL_DIAGNOSIS[set[0]!] ?? null;
}

/** True when the directory looks like the COVID-BLUES collection. */
export function isBluesDir(dir: string): boolean {
  try {
    return (
      statSync(path.join(dir, 'severity.csv')).isFile() && statSync(path.join(dir, 'clinical_variables.csv')).isFile()
    );
  } catch {
    return false;
  }
}

/** Reads severity.csv and clinical_variables.csv and pairs each video with its labels and patient. Folds are -1. */
export function loadCovidBlues(dataDir: string): LusItem[] {
  const severity = parseCsv(readFileSync(path.join(dataDir, 'severity.csv'), 'utf8'));
  const clinical = parseCsv(readFileSync(path.join(dataDir, 'clinical_variables.csv'), 'utf8'));
  const diagnosis = new Map<string, Diagnosis | null>();
  for (const { values, line } of clinical.rows) {
    diagnosis.set(String(Number(values['patient_id'])), bluesDiagnosis(values, line));
  }
  const videos = new Set(readdirSync(path.join(dataDir, 'videos')));
  return severity.rows.map(({ values: r, line }) => {
    const name = (r['video_file'] ?? '').trim();
    const m = /^patient_(\d+)_([LR][1-3])(?:_2)?$/.exec(name);
    if (!m)
      throw new Error(`severity.csv line ${line}: video name ${JSON.stringify(name)} is not patient_<id>_<point>.`);
    const patient = String(Number(m[1]));
    if (!diagnosis.has(patient)) {
      throw new Error(`severity.csv line ${line}: patient ${patient} is not in clinical_variables.csv.`);
    }
    const file = `${name}.mp4`;
    if (!videos.has(file)) throw new Error(`severity.csv line ${line}: no videos/${file} under ${dataDir}.`);
    const sev = Number((r['Severity Score'] ?? '').trim());
    if (!Number.isInteger(sev) || sev < 0 || sev > 3) {
      throw new Error(`severity.csv line ${line}: severity ${JSON.stringify(r['Severity Score'])} is not 0..3.`);
    }
    const aLines = yesNo(r['A-lines'], 'A-lines', line);
    const bLines = yesNo(r['B-lines'], 'B-lines', line);
    const flags = weakFlags(r['comments'] ?? '', sev);
    const biomarkers: Record<Biomarker, 0 | 1 | null> = {
      a_lines: aLines,
      b_lines: bLines,
      pleural_irregularity: flags.pleural_irregularity,
      consolidation: flags.consolidation,
      effusion: flags.effusion,
      healthy_pattern: sev >= 1 ? 0 : aLines === 1 && bLines === 0 ? 1 : null,
    };
    const dx = diagnosis.get(patient) ?? null;
    return {
      dataset: 'covid-blues',
      name,
      file: `videos/${file}`,
      kind: 'video',
      probe: 'convex',
      group: `blues-patient-${patient}`,
      source: BLUES_SOURCE,
      fold: -1,
      label: dx ?? 'unlabelled',
      diagnosis: dx,
      triage: sev === 0 ? 0 : 1,
      severity: sev,
      biomarkers,
      license: BLUES_LICENSE,
    } satisfies LusItem;
  });
}
