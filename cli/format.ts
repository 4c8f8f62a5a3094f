/**
 * What `sonomark analyze` prints: the JSON line of DESIGN.md "Contracts" and the
 * human-readable table. Pure functions of an AnalyzeResult.
 */
import { BIOMARKERS } from '../core/biomarkers';
import type { ExpertOutput, Manifest } from '../core/schemas';
import type { AnalyzeResult } from '../local/workflow';

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
  if (r.status === 'failed') {
    lines.push(`  status    FAILED  ${r.error?.code ?? ''}`);
    lines.push(`  reason    ${r.error?.message ?? 'unknown'}`);
  } else {
    lines.push('  status    completed');
    for (const [name, out] of Object.entries(r.experts)) lines.push(`  ${name.padEnd(9)} ${expertSummary(out)}`);
    if (r.features) {
      const f = r.features;
      lines.push(
        `  frames    ${f.sampling.frameIndices.length} of ${f.sampling.decodedFrames} decoded (${f.sampling.width}×${f.sampling.height} gray)`,
      );
      lines.push('  biomarker            mean   max   p90  frames>0.5');
      for (const b of BIOMARKERS) {
        const s = f.biomarkers[b];
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
  const rows = [m.extractor, ...m.experts].map(
    (e) => `  ${e.name.padEnd(28)} ${e.version.padEnd(8)} sha256 ${e.sha256.slice(0, 16)}…  ${e.card.status}`,
  );
  const fixtures = [m.extractor, ...m.experts].filter((e) => e.card.status === 'fixture');
  const warn =
    fixtures.length > 0
      ? [
          `WARNING: ${fixtures.map((e) => e.name).join(', ')} ${fixtures.length === 1 ? 'is an untrained fixture' : 'are untrained fixtures'}:`,
          '         deterministic weights for exercising the pipeline; the outputs carry no clinical meaning.',
        ]
      : [];
  return ['Models:', ...rows, ...warn].join('\n');
}
