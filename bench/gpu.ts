/**
 * GPU benchmark for any CUDA machine: the shipped extractor with onnxruntime's
 * CUDA execution provider, frames/s at batch 1–512, against the GPU's measured
 * ceiling (an onnxruntime MatMul on the same GPU), with the GPU's name.
 *
 *   ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js   # the CUDA provider (see the Dockerfile)
 *   npm run bench:gpu [-- --runs N] [-- --out bench/gpu-results.json]
 *
 * Input frames are synthetic (random pixels): throughput does not depend on the pixel values.
 * No CUDA device (no nvidia-smi, no /dev/nvidia0): says so and exits 0, nothing measured.
 * A device without onnxruntime's CUDA provider installed: exit 2 with the install command.
 * The next `npm run bench` renders the results file into BENCHMARKS.md (bench/gpu-report.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadManifest, readVerifiedModel, extractorFor } from '../core/manifest';
import { cudaProviderInstalled } from '../gpu-tasks/feature-extractor/src';
import { mulberry32, uniformWeights } from '../training/onnx/graph';
import { GPU_RESULTS_FILE } from './gpu-report';
import { countFlops } from './onnx-flops';
import { flopsPerFrame, framesPerSecond, gemmGflops } from './ort';
import { rooflineShare } from './roofline';
import { fmt, fmtSummary, type Summary } from './stats';

/** The first GPU's name, memory and driver from nvidia-smi; undefined when there is no CUDA device. */
function gpuName(): string | undefined {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'], {
    encoding: 'utf8',
  });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim().split('\n')[0]!;
  return existsSync('/dev/nvidia0') ? 'unknown NVIDIA GPU (nvidia-smi not found)' : undefined;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '5' },
      out: { type: 'string', default: GPU_RESULTS_FILE },
    },
  });
  const runs = Math.max(5, Number(values.runs));
  const gpu = gpuName();
  if (!gpu) {
    process.stderr.write('bench/gpu: no CUDA device found (no nvidia-smi output, no /dev/nvidia0): nothing measured\n');
    return 0;
  }
  if (!cudaProviderInstalled()) {
    process.stderr.write(
      'bench/gpu: the onnxruntime CUDA provider is not installed (ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js)\n',
    );
    return 2;
  }
  const { manifest, dir } = loadManifest();
  const entry = extractorFor(manifest, 'ultrasound');
  const model = readVerifiedModel(dir, entry);
  const frameDims = [1, entry.input.size, entry.input.size];
  let flops: { total: number };
  try {
    flops = countFlops(model, [4, ...frameDims]);
  } catch {
    flops = await flopsPerFrame(model, entry.input.name, frameDims);
  }

  // The GPU's ceiling with the same runtime: large MatMuls (FP32; TF32 is not enabled by onnxruntime by default).
  const ceiling: Record<string, Summary> = {};
  let peak = 0;
  for (const n of [2048, 4096]) {
    const s = await gemmGflops({ provider: 'cuda' }, n, runs, 10);
    ceiling[`n${n}`] = s;
    peak = Math.max(peak, s.median);
  }

  const batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
  const frames = uniformWeights(mulberry32(3), 2048 * frameDims[1]! * frameDims[2]!, 0.5).map((x) => x + 0.5);
  const sweep = [];
  for (const batch of batches) {
    const fps = await framesPerSecond(model, entry.input.name, frames, frameDims, batch, { provider: 'cuda' }, runs);
    sweep.push({ batch, fps, shareOfCeiling: rooflineShare(fps.median, flops.total, peak) });
    process.stderr.write(`batch ${batch}: ${fmtSummary(fps)} frames/s\n`);
  }
  const result = {
    gpu,
    extractor: `${entry.name}@${entry.version}`,
    flopsPerFrame: flops.total,
    ceilingGflops: ceiling,
    peakGflops: peak,
    sweep,
    date: new Date().toISOString(),
  };
  writeFileSync(values.out!, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(
    [
      `GPU: ${gpu}; ceiling ${fmt(peak)} GFLOP/s (onnxruntime MatMul); extractor ${fmt(flops.total / 1e6, 1)} MFLOP/frame`,
      ...sweep.map(
        (s) =>
          `batch ${String(s.batch).padStart(3)}: ${fmtSummary(s.fps)} frames/s, ${fmt(s.shareOfCeiling * 100, 1)}% of the ceiling`,
      ),
      `written: ${values.out}`,
    ].join('\n') + '\n',
  );
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`bench/gpu: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
