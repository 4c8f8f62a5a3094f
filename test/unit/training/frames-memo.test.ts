/**
 * The training run's decoded-frames memo: each clip decoded once per run, its frames exactly those
 * decodeFrames gives, and features through the memo identical to features without it.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  createExtractorSession,
  decodeFrameBytes,
  decodeFrames,
  type DecodeOptions,
} from '../../../gpu-tasks/feature-extractor/src';
import { sha256Hex } from '../../../core/scan-id';
import { clipFeatures } from '../../../training/experts/features-cache';
import { DecodedFramesMemo } from '../../../training/experts/frames-memo';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import { makeLavfiClip } from '../../helpers/clips';
import { tempDir } from '../../helpers/temp';

let dir: string;
let clip: string;
let sha: string;

beforeAll(() => {
  dir = tempDir('sonomark-frames-memo-');
  clip = makeLavfiClip(path.join(dir, 'clip.mp4'), 'testsrc=size=160x120:rate=10', ['-frames:v', '6']);
  sha = sha256Hex(readFileSync(clip));
});

/** The memo over the real decoder, counting real decodes. */
function counted(maxBytes?: number) {
  const calls = { decodes: 0 };
  const memo = new DecodedFramesMemo(maxBytes, (c, o) => {
    calls.decodes++;
    return decodeFrameBytes(c, o);
  });
  return { memo, calls };
}

const OPTS: DecodeOptions = { size: 32, maxFrames: 4 };

describe('DecodedFramesMemo', () => {
  it('decodes a clip once for the same options and returns exactly what decodeFrames returns', async () => {
    // Prepare
    const { memo, calls } = counted();
    const direct = await decodeFrames(clip, OPTS);
    // Act
    const first = await memo.frames(sha, clip, OPTS);
    const second = await memo.frames(sha, clip, OPTS);
    // Assess
    expect(calls.decodes).toBe(1);
    expect(memo).toMatchObject({ hits: 1, misses: 1 });
    expect(first).toEqual(direct);
    expect(second).toEqual(direct);
    expect(second.frames).not.toBe(first.frames); // each caller gets its own floats
  });

  it('decodes again when an option that changes the pixels differs', async () => {
    // Prepare
    const { memo, calls } = counted();
    // Act
    await memo.frames(sha, clip, OPTS);
    const bigger = await memo.frames(sha, clip, { ...OPTS, size: 48 });
    const fewer = await memo.frames(sha, clip, { ...OPTS, maxFrames: 2 });
    // Assess
    expect(calls.decodes).toBe(3);
    expect(bigger.size).toBe(48);
    expect(fewer.count).toBe(2);
  });

  it('keeps nothing past its byte budget, and still answers', async () => {
    // Prepare
    const { memo, calls } = counted(0);
    // Act
    await memo.frames(sha, clip, OPTS);
    const again = await memo.frames(sha, clip, OPTS);
    // Assess
    expect(calls.decodes).toBe(2);
    expect(again).toEqual(await decodeFrames(clip, OPTS));
  });

  it('features through the memo equal features without it', async () => {
    // Prepare
    const models = path.join(dir, 'models');
    const entry = writeFixtureModels(models).manifest.extractors.ultrasound;
    const session = await createExtractorSession(models, entry, { executionProvider: 'cpu' });
    const { memo } = counted();
    const now = () => new Date('2026-01-01T00:00:00Z');
    try {
      // Act
      const plain = await clipFeatures(clip, {
        cacheDir: path.join(dir, 'a'),
        entry,
        session: async () => session,
        now,
      });
      const viaMemo = await clipFeatures(clip, {
        cacheDir: path.join(dir, 'b'),
        entry,
        session: async () => session,
        now,
        frames: memo,
      });
      // Assess
      const strip = (d: typeof plain.features) => ({ ...d, runtime: undefined });
      expect(memo.misses).toBe(1);
      expect(strip(viaMemo.features)).toEqual(strip(plain.features));
    } finally {
      await session.release();
    }
  });
});

describe('DecodedFramesMemo.session', () => {
  it('runs one model on one clip once, whatever the model is named; another clip or model runs again', async () => {
    // Prepare
    const models = path.join(dir, 'models-runs');
    const entry = writeFixtureModels(models).manifest.extractors.ultrasound;
    const real = await createExtractorSession(models, entry, { executionProvider: 'cpu' });
    const { memo } = counted();
    const frames = await memo.frames(sha, clip, { size: entry.input.size, maxFrames: 4 });
    try {
      // Act
      const a = await memo.session(real, sha).run(frames.frames, frames.count);
      const renamed = { ...real, entry: { ...real.entry, name: 'copy-of-fold-0' }, run: real.run.bind(real) };
      const b = await memo.session(renamed, sha).run(frames.frames, frames.count);
      const otherClip = await memo.session(real, 'f'.repeat(64)).run(frames.frames, frames.count);
      // Assess
      expect(memo.runHits).toBe(1);
      expect(b).toBe(a);
      expect(otherClip).not.toBe(a);
      expect(otherClip).toEqual(a);
    } finally {
      await real.release();
    }
  });
});
