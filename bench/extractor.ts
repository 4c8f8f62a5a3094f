/**
 * `npm run bench`: throughput of the shipped extractor with onnxruntime-node on
 * this machine's CPU, and the per-clip cost of decode → infer → aggregate.
 * Targets live here, not in tests: timings vary with the machine and its load,
 * so a benchmark reports medians and a test never fails on speed.
 *
 *   npm run bench [-- --json] [-- --runs N] [-- --data DIR]
 */
import { cpus } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  createExtractorSession,
  decodeFrameBytes,
  extractFeatures,
  toFloat01,
} from '../gpu-tasks/feature-extractor/src';
import { loadManifest } from '../core/manifest';
import { PACKAGE_ROOT } from '../core/paths';

/** Issue target: batch inference on the 2-core CI-class CPU. */
const TARGET_FRAMES_PER_SECOND = 1000;
const CLIPS = [
  'videos/convex/Reg-Atlas.gif',
  'videos/convex/Cov_combatting_Image1.mp4',
  'videos/convex/Pneu_northumbria_0409_set6_vid1.avi',
  'videos/convex/Cov_denault_proposedUS_vid1.mov',
  'videos/convex/Reg_pat2Image_133824.mpeg',
  'videos/linear/Cov-Atlas-pleural.mp4',
  'images/convex/Reg_Avi_Image001.jpg',
  'videos/convex/Pneu_Avi_Video_001.mp4',
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function run(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      runs: { type: 'string', default: '15' },
      data: { type: 'string', default: path.join(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus') },
    },
  });
  const runs = Number(values.runs);
  const { manifest, dir } = loadManifest();
  const entry = manifest.extractor;
  const session = await createExtractorSession(dir, entry, { executionProvider: 'cpu' });
  const { size, maxFrames } = entry.input;
  const pixels = size * size;

  // Real frames from real clips, so the numbers include nothing synthetic.
  const decoded = [];
  for (const clip of CLIPS) decoded.push(await decodeFrameBytes(path.join(values.data!, clip), { size, maxFrames }));
  const all = new Uint8Array(decoded.reduce((s, c) => s + c.bytes.length, 0));
  let off = 0;
  for (const c of decoded) {
    all.set(c.bytes, off);
    off += c.bytes.length;
  }
  const frames = toFloat01(all);
  const count = all.length / pixels;

  const batch: Record<string, { batchSize: number; framesPerSecond: number; msPerRun: number }> = {};
  for (const batchSize of [entry.input.batchSize, 64]) {
    const s = await createExtractorSession(
      dir,
      { ...entry, input: { ...entry.input, batchSize } },
      {
        executionProvider: 'cpu',
      },
    );
    await s.run(frames, count); // warm-up: first run allocates arenas
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await s.run(frames, count);
      times.push(performance.now() - t);
    }
    await s.release();
    const ms = median(times);
    batch[`batch${batchSize}`] = { batchSize, framesPerSecond: (count / ms) * 1000, msPerRun: ms };
  }

  // One clip end to end as the GPU task runs it: decode → infer → aggregate (CPU here).
  const perClip: Record<string, { decodeMs: number; inferMs: number; totalMs: number; frames: number }> = {};
  for (const clip of CLIPS) {
    const samples: { decodeMs: number; inferMs: number; totalMs: number; frames: number }[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const doc = await extractFeatures({ clip: path.join(values.data!, clip), scanId: '0'.repeat(32), session });
      samples.push({
        decodeMs: doc.runtime.decodeMs,
        inferMs: doc.runtime.inferMs,
        totalMs: performance.now() - t,
        frames: doc.sampling.frameIndices.length,
      });
    }
    perClip[clip] = {
      decodeMs: median(samples.map((s) => s.decodeMs)),
      inferMs: median(samples.map((s) => s.inferMs)),
      totalMs: median(samples.map((s) => s.totalMs)),
      frames: samples[0]!.frames,
    };
  }
  await session.release();

  const best = Math.max(...Object.values(batch).map((b) => b.framesPerSecond));
  const result = {
    extractor: `${entry.name}@${entry.version}`,
    status: entry.card.status,
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
    node: process.version,
    frames: count,
    runs,
    batch,
    perClip,
    target: { framesPerSecond: TARGET_FRAMES_PER_SECOND, met: best >= TARGET_FRAMES_PER_SECOND },
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const lines = [
    `extractor ${result.extractor} (${result.status}) on ${result.cpu}, Node ${result.node}`,
    `batch inference, ${count} real frames, median of ${runs} runs:`,
    ...Object.values(batch).map(
      (b) =>
        `  batch ${String(b.batchSize).padStart(3)}: ${b.framesPerSecond.toFixed(0).padStart(6)} frames/s (${b.msPerRun.toFixed(1)} ms per run)`,
    ),
    `  target ≥ ${TARGET_FRAMES_PER_SECOND} frames/s: ${result.target.met ? 'met' : 'NOT met'}`,
    `per clip, decode → infer → aggregate, median of 5:`,
    ...Object.entries(perClip).map(
      ([c, p]) =>
        `  ${path.basename(c).padEnd(40)} ${String(p.frames).padStart(3)} frames  decode ${p.decodeMs.toFixed(0).padStart(4)} ms  infer ${p.inferMs.toFixed(0).padStart(4)} ms  total ${p.totalMs.toFixed(0).padStart(4)} ms`,
    ),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

run().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exit(1);
});
