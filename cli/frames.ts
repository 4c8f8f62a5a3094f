/** `sonomark frames --out DIR FILE...`: the exact frames the extractor sees, for training. */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from './context';
import { describeSkipped, expandInputs } from './inputs';
import { integerAtLeast } from './options';

interface FramesOptions {
  out: string;
  size?: number;
  maxFrames?: number;
}

export function registerFrames(program: Command, ctx: CliContext): void {
  program
    .command('frames')
    .summary('write the frames the extractor sees as .npy')
    .description(
      'Write the exact frames the extractor sees (decoded, sampled, resized, 8-bit gray) as uint8 .npy ' +
        '[n, 1, size, size] per clip, plus index.json with the sampled frame indices. Training reads the same pixels.',
    )
    .argument('<FILE|DIR...>', 'clips, or directories searched for clips')
    .requiredOption('--out <DIR>', 'output directory (required; created if missing)')
    .option('--size <N>', "frame side in pixels (default: the manifest extractor's)", integerAtLeast(8))
    .option('--max-frames <N>', "frames sampled per clip (default: the manifest extractor's)", integerAtLeast(1))
    .addHelpText(
      'after',
      `
Example:
  $ sonomark frames --out .sonomark/frames ../shared/data/pocus/videos/convex

Exit status: 0 when every clip was written, 1 when any failed, 2 on a usage error.`,
    )
    .action(async (inputs: string[], opts: FramesOptions) => ctx.exit(await frames(inputs, opts, ctx)));
}

async function frames(inputs: string[], opts: FramesOptions, { out, err }: CliContext): Promise<number> {
  const files = expandInputs(inputs, (skipped) => err.write(`${describeSkipped(skipped)}\n`));
  const [{ loadManifest, extractorFor }, { writeClipFrames }] = await Promise.all([
    import('../core/manifest'),
    import('../training/datasets/export'),
  ]);
  const manifest = loadManifest().manifest;
  const { input } = extractorFor(manifest, 'ultrasound');
  const size = opts.size ?? input.size;
  const maxFrames = opts.maxFrames ?? input.maxFrames;
  mkdirSync(opts.out, { recursive: true });
  const index: Record<string, unknown>[] = [];
  let failed = 0;
  for (const file of files) {
    const name = path.basename(file).replace(/\.[^.]+$/, '');
    try {
      // The raw 8-bit frames the extractor scales by 1/255: training reads the same pixels.
      const entry = await writeClipFrames(file, opts.out, `${name}.npy`, { size, maxFrames });
      index.push({ file, ...entry });
      out.write(`${name}.npy  ${entry.frames} frames of ${entry.decodedFrames}\n`);
    } catch (e) {
      failed++;
      index.push({ file, error: (e as Error).message });
      out.write(`${file}: ${(e as Error).message}\n`);
    }
  }
  writeFileSync(
    path.join(opts.out, 'index.json'),
    JSON.stringify({ size, maxFrames, scale: '1/255', clips: index }, null, 2),
  );
  return failed > 0 ? 1 : 0;
}
