/**
 * What `sonomark analyze` prints: the JSON line of DESIGN.md "Contracts" and the
 * human-readable table. Pure functions of an AnalyzeResult.
 */
import { manifestExtractors } from '../core/manifest';
import { MODALITY_LABELS } from '../core/modality';
import { MODALITY_NAMES } from '../core/modality-detect';
import type { ExpertOutput, Manifest } from '../core/schemas';
import type { AnalyzeResult } from '../local/workflow';

/** Said next to the clinical labels of the human-readable output (core/report's RUO, repeated so --help loads nothing). */
export const RUO = 'research software, not a medical device';

/** DESIGN.md: experts.diagnosis {label, probabilities}, severity {score}, triage {abnormal}. */
export function expertJson(output: ExpertOutput): Record<string, unknown> {
  switch (output.kind) {
    case 'classification':
      return { label: output.label, probabilities: output.probabilities };
    case 'ordinal':
      return { score: output.score, expected: round(output.expected), probabilities: output.probabilities };
    case 'binary':
      return { [output.positive]: output.probability, label: output.label };
  }
}

export function resultJson(r: AnalyzeResult): Record<string, unknown> {
  return {
    file: r.file,
    scanId: r.scanId,
    status: r.status,
    modality: r.modality,
    ...(r.error ? { error: r.error } : {}),
    reused: r.reused,
    features: r.features,
    experts: Object.fromEntries(Object.entries(r.experts).map(([k, v]) => [k, expertJson(v)])),
    models: r.models,
    timings: r.timings,
  };
}

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;
const pct = (v: number) => `${(v * 100).toFixed(0)}%`.padStart(4);

export function expertSummary(output: ExpertOutput): string {
  switch (output.kind) {
    case 'classification': {
      const ranked = Object.entries(output.probabilities).sort((a, b) => b[1] - a[1]);
      return `${output.label}  (${ranked.map(([l, p]) => `${l} ${pct(p).trim()}`).join(', ')})`;
    }
    case 'ordinal':
      return `score ${output.score}  (expected ${output.expected.toFixed(2)})`;
    case 'binary':
      return `${output.label}  (${output.positive} ${pct(output.probability).trim()})`;
  }
}

/** A readable block per clip. */
export function resultTable(r: AnalyzeResult): string {
  const lines: string[] = [];
  const head = `${r.file}`;
  lines.push(head, '-'.repeat(Math.min(head.length, 100)));
  lines.push(`  scan      ${r.scanId ?? '-'}${r.reused ? '  (already analysed: stored result)' : ''}`);
  if (r.modality) lines.push(`  modality  ${MODALITY_NAMES[r.modality]}`);
  if (r.status === 'failed') {
    lines.push(`  status    FAILED  ${r.error?.code ?? ''}`);
    lines.push(`  reason    ${r.error?.message ?? 'unknown'}`);
  } else {
    lines.push('  status    completed');
    const experts = Object.entries(r.experts);
    if (experts.length === 0) lines.push('  outputs   none: no expert scored this scan');
    else lines.push(`  outputs   ${RUO}`);
    const pad = Math.max(9, ...experts.map(([name]) => name.length));
    for (const [name, out] of experts) lines.push(`  ${name.padEnd(pad)} ${expertSummary(out)}`);
    if (r.features) {
      const f = r.features;
      lines.push(
        `  frames    ${f.sampling.frameIndices.length} of ${f.sampling.decodedFrames} decoded (${f.sampling.width}×${f.sampling.height} gray)`,
      );
      // The extractor's own outputs: the modality's labels, in its order (ultrasound biomarkers, X-ray findings).
      lines.push(`  ${f.modality === 'xray' ? 'finding  ' : 'biomarker'}            mean   max   p90  frames>0.5`);
      for (const b of MODALITY_LABELS[f.modality]) {
        const s = f.biomarkers[b];
        if (!s) continue; // a validated document has every label of its modality
        lines.push(
          `  ${b.padEnd(20)} ${s.mean.toFixed(2)}  ${s.max.toFixed(2)}  ${s.p90.toFixed(2)}  ${pct(s.fractionAbove)}`,
        );
      }
    }
  }
  const states = Object.entries(r.timings.states)
    .map(([k, v]) => `${k} ${v} ms`)
    .join(', ');
  lines.push(`  time      ${r.timings.totalMs} ms${states ? `  (${states})` : ''}`);
  return lines.join('\n');
}

/** The models a run uses, with a warning when any is an untrained fixture. */
export function modelsBanner(m: Manifest): string {
  const extractors = manifestExtractors(m);
  const rows = [...extractors, ...m.experts].map(
    (e) => `  ${e.name.padEnd(28)} ${e.version.padEnd(8)} sha256 ${e.sha256.slice(0, 16)}…  ${e.card.status}`,
  );
  const fixtures = [...extractors, ...m.experts].filter((e) => e.card.status === 'fixture');
  const warn =
    fixtures.length > 0
      ? [
          `WARNING: ${fixtures.map((e) => e.name).join(', ')} ${fixtures.length === 1 ? 'is an untrained fixture' : 'are untrained fixtures'}:`,
          '         deterministic weights for exercising the pipeline; the outputs carry no clinical meaning.',
        ]
      : [];
  return ['Models:', ...rows, ...warn].join('\n');
}

/** One cell of the summary: the headline of an output, short. */
export function expertCell(output: ExpertOutput): string {
  switch (output.kind) {
    case 'classification':
      return `${output.label} ${pct(output.probabilities[output.label] ?? 0).trim()}`;
    case 'ordinal':
      return `${output.score} (${output.expected.toFixed(2)})`;
    case 'binary':
      // The shown label's own probability, as for a classification: "normal 0%" read as P(normal) when
      // it was P(pneumonia).
      return `${output.label} ${pct(output.label === output.positive ? output.probability : 1 - output.probability).trim()}`;
  }
}

function headline(output: ExpertOutput): string {
  return output.kind === 'ordinal' ? String(output.score) : output.label;
}

/**
 * A batch in one screen: a line per clip (status, each expert's headline, file; the
 * reason when it failed), then the counts per status and per output. Replaces the
 * block per clip, which ran to 1,513 lines for 89 clips.
 */
export function summaryTable(results: readonly AnalyzeResult[]): string {
  const experts = [...new Set(results.flatMap((r) => Object.keys(r.experts)))];
  const width = (name: string) =>
    Math.max(name.length, ...results.map((r) => (r.experts[name] ? expertCell(r.experts[name]).length : 1)));
  const widths = experts.map(width);
  const n = String(results.length).length;
  // The modality column: a run may mix X-rays and clips, each scored by its own experts.
  const row = (i: string, status: string, modality: string, cells: string[], tail: string) =>
    `  ${i.padStart(n)}  ${status.padEnd(9)}  ${modality.padEnd(10)}  ${cells.map((c, k) => c.padEnd(widths[k] as number)).join('  ')}  ${tail}`.trimEnd();
  const lines = [`Summary (${experts.join(', ') || 'no expert outputs'}: ${RUO})`];
  lines.push(row('#', 'status', 'modality', experts, 'file'));
  results.forEach((r, i) => {
    const cells = experts.map((e) => (r.experts[e] ? expertCell(r.experts[e]) : '-'));
    const tail = r.status === 'failed' ? `${r.file}  ${r.error?.code ?? 'FAILED'}: ${r.error?.message ?? ''}` : r.file;
    lines.push(row(String(i + 1), r.status, r.modality ? MODALITY_NAMES[r.modality] : '-', cells, tail));
  });
  const failed = results.filter((r) => r.status === 'failed').length;
  lines.push('', `${results.length - failed} completed, ${failed} failed, ${results.length} in all`);
  for (const e of experts) {
    const counts = new Map<string, number>();
    for (const r of results) {
      const out = r.experts[e];
      if (out) counts.set(headline(out), (counts.get(headline(out)) ?? 0) + 1);
    }
    const list = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const grade = results.some((r) => r.experts[e]?.kind === 'ordinal') ? 'grade ' : '';
    lines.push(`${e}: ${list.map(([k, v]) => `${grade}${k} ×${v}`).join(', ')}  (${RUO})`);
  }
  return lines.join('\n');
}
