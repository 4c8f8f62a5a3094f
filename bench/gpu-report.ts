/**
 * The GPU section of BENCHMARKS.md: bench/gpu.ts writes bench/gpu-results.json on a CUDA
 * machine; `npm run bench` renders it when present (with the GPU's name and date), and says
 * plainly that no GPU was measured otherwise.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../core/paths';
import { fmt, fmtSummary } from './stats';

const Summary = z.object({ median: z.number(), min: z.number(), max: z.number(), runs: z.number() });

export const GpuResults = z.object({
  gpu: z.string(),
  extractor: z.string(),
  flopsPerFrame: z.number().positive(),
  ceilingGflops: z.record(z.string(), Summary),
  peakGflops: z.number().positive(),
  sweep: z.array(z.object({ batch: z.number(), fps: Summary, shareOfCeiling: z.number() })),
  date: z.string(),
});
export type GpuResults = z.infer<typeof GpuResults>;

export const GPU_RESULTS_FILE = path.join(PACKAGE_ROOT, 'bench', 'gpu-results.json');

export function readGpuResults(file = GPU_RESULTS_FILE): GpuResults | undefined {
  if (!existsSync(file)) return undefined;
  return GpuResults.parse(JSON.parse(readFileSync(file, 'utf8')));
}

export function renderGpu(r: GpuResults | undefined): string[] {
  const out = ['## GPU (bench/gpu.ts)', ''];
  if (!r) {
    out.push(
      "Not measured: this machine has no CUDA device. On a CUDA machine, `npm run bench:gpu` measures the extractor with onnxruntime's CUDA provider at batch 1–512 against the GPU's own MatMul ceiling and writes `bench/gpu-results.json`, which the next `npm run bench` renders here. The cost model meanwhile takes GPU seconds as this CPU's (an upper bound).",
    );
    return out;
  }
  out.push(
    `${r.gpu}, ${r.date}: ${r.extractor}, ${fmt(r.flopsPerFrame / 1e6, 2)} MFLOP/frame; ceiling ${fmt(r.peakGflops)} GFLOP/s (onnxruntime MatMul: ${Object.entries(
      r.ceilingGflops,
    )
      .map(([k, v]) => `${k} ${fmtSummary(v)}`)
      .join('; ')}).`,
  );
  out.push('');
  out.push('| batch | frames/s | share of the ceiling |');
  out.push('| --- | --- | --- |');
  for (const s of r.sweep) out.push(`| ${s.batch} | ${fmtSummary(s.fps)} | ${fmt(s.shareOfCeiling * 100, 1)}% |`);
  return out;
}
