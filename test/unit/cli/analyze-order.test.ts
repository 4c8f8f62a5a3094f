import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runInOrder } from '../../../cli/analyze';
import { tempDir } from '../../helpers/temp';

/** Files of the given byte sizes. */
function files(sizes: number[]): string[] {
  const dir = tempDir();
  return sizes.map((n, i) => {
    const f = path.join(dir, `clip-${i}.bin`);
    writeFileSync(f, Buffer.alloc(n, i));
    return f;
  });
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('analyze: clips in flight', () => {
  it('keeps at most N in flight and gives each result at its input position', async () => {
    // Prepare: the first clip is the slowest, so later ones finish first
    const inputs = files([10, 20, 30, 40, 50]);
    let inFlight = 0;
    let most = 0;

    // Act
    const results = await Promise.all(
      runInOrder(
        inputs,
        2,
        () => true,
        async (file, i) => {
          most = Math.max(most, ++inFlight);
          await tick(i === 0 ? 40 : 5);
          inFlight--;
          return file;
        },
      ),
    );

    // Assess
    expect(results).toEqual(inputs);
    expect(most).toBe(2);
  });

  it('never runs two files of the same size together (the same bytes are one scan)', async () => {
    // Prepare
    const inputs = files([7, 7, 9]);
    const running = new Set<number>();
    const overlaps: number[][] = [];

    // Act
    await Promise.all(
      runInOrder(
        inputs,
        3,
        () => true,
        async (_file, i) => {
          if (i < 2 && running.has(1 - i)) overlaps.push([i, 1 - i]);
          running.add(i);
          await tick(10);
          running.delete(i);
          return i;
        },
      ),
    );

    // Assess
    expect(overlaps).toEqual([]);
  });

  it('starts nothing more once stopped, and the unstarted resolve to undefined', async () => {
    // Prepare
    const inputs = files([1, 2, 3, 4]);
    let stopped = false;

    // Act
    const results = await Promise.all(
      runInOrder(
        inputs,
        1,
        () => !stopped,
        async (_file, i) => {
          stopped = i === 1;
          return i;
        },
      ),
    );

    // Assess
    expect(results).toEqual([0, 1, undefined, undefined]);
  });
});
