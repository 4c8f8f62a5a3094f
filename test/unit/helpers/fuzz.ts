/**
 * Shared settings and generators for the property-based fuzz tests (*.fuzz.test.ts).
 *
 * Every fuzz property runs a bounded number of cases (FUZZ_RUNS, default below) with
 * a total time budget, so the unit suite stays fast; a failing case prints its seed
 * and path (`FUZZ_SEED=… FUZZ_PATH=…` reproduce it). Inputs are bounded in size (a few
 * KiB), and each case's duration is measured: a parser that takes more than
 * CASE_BUDGET_MS on such an input counts as a hang (a sync loop cannot be interrupted
 * in-process). The budget is a hang detector, two orders of magnitude above the normal
 * cost (milliseconds), not a speed target: those belong to `npm run bench`.
 */
import fc from 'fast-check';

export const CASE_BUDGET_MS = 2_000;

export function fuzzParams(runs = 200): fc.Parameters<unknown> {
  return {
    numRuns: Number(process.env.FUZZ_RUNS ?? runs),
    // Stop early (passing with the cases run so far) rather than slow the unit suite on a busy machine.
    interruptAfterTimeLimit: Number(process.env.FUZZ_TIME_LIMIT_MS ?? 5_000),
    markInterruptAsFailure: false,
    ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}),
    ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}),
  };
}

/** Runs fn and fails if it took longer than the per-case budget. */
export function withinBudget<T>(fn: () => T, what: string): T {
  const t0 = performance.now();
  const out = fn();
  const ms = performance.now() - t0;
  if (ms > CASE_BUDGET_MS)
    throw new Error(`${what} took ${ms.toFixed(0)} ms on a bounded input (budget ${CASE_BUDGET_MS} ms)`);
  return out;
}

export async function withinBudgetAsync<T>(
  fn: () => Promise<T>,
  what: string,
  budgetMs = CASE_BUDGET_MS * 2,
): Promise<T> {
  const t0 = performance.now();
  const out = await fn();
  const ms = performance.now() - t0;
  if (ms > budgetMs) throw new Error(`${what} took ${ms.toFixed(0)} ms on a bounded input (budget ${budgetMs} ms)`);
  return out;
}

/** A name no message may echo: it stands for a patient's name in a key, a file name or a sidecar. */
export const MARKER = 'Zqx7Patient';

/** Magic numbers of every container the sniffer knows, and of files uploaded by mistake. */
const MAGICS: readonly Uint8Array[] = [
  Buffer.from('\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2mp41', 'latin1'),
  Buffer.from('\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ', 'latin1'),
  Buffer.from('\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic', 'latin1'),
  Buffer.from('\x00\x00\x00\x08moov', 'latin1'),
  Buffer.from('RIFF\x00\x10\x00\x00AVI LIST', 'latin1'),
  Buffer.from('RIFF\x00\x10\x00\x00WAVEfmt ', 'latin1'),
  Buffer.from([0x00, 0x00, 0x01, 0xba]),
  Buffer.from([0x00, 0x00, 0x01, 0xb3, 0x0a, 0x00, 0x78]),
  Buffer.from('GIF89a', 'latin1'),
  Buffer.from('GIF87a', 'latin1'),
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]),
  Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  Buffer.from('BM', 'latin1'),
  Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x84, 0x77, 0x65, 0x62, 0x6d]),
  Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0xa3, 0x42, 0x82, 0x88]),
  Buffer.concat([Buffer.alloc(128), Buffer.from('DICM\x02\x00\x00\x00UL\x04\x00', 'latin1')]),
  Buffer.from('%PDF-1.7', 'latin1'),
  Buffer.from([0x50, 0x4b, 0x03, 0x04]),
  Buffer.from('<!doctype html>', 'latin1'),
  Buffer.from('{"a":1}', 'latin1'),
  Buffer.from('ID3', 'latin1'),
  Buffer.from([0x1f, 0x8b]),
  Buffer.from([0x47]),
];

/** Bytes that start like a known file (or not at all), then anything; at most maxLength bytes. */
export function mediaBytes(maxLength = 2048): fc.Arbitrary<Uint8Array> {
  const tail = fc.uint8Array({ maxLength });
  return fc.oneof(
    tail,
    fc.tuple(fc.constantFrom(...MAGICS), tail).map(([m, t]) => Buffer.concat([m, t])),
    // An MPEG transport stream: sync bytes every 188 bytes.
    fc.integer({ min: 1, max: 6 }).chain((packets) =>
      fc.uint8Array({ minLength: packets * 188, maxLength: packets * 188 }).map((b) => {
        const out = Buffer.from(b);
        for (let i = 0; i < out.length; i += 188) out[i] = 0x47;
        return out;
      }),
    ),
  );
}

/** Mutations of real bytes: a bit flip, a truncation, an overwritten run; bounded in number. */
export function mutated(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('write' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 6 }).map((edits) => {
    let out = Buffer.from(base);
    for (const e of edits) {
      if (out.length === 0) break;
      const at = e.at % out.length;
      if (e.kind === 'flip') out[at]! ^= 1 << e.bit;
      else if (e.kind === 'cut') out = out.subarray(0, at);
      else out.set(e.bytes.subarray(0, out.length - at), at);
    }
    return out;
  });
}

/** Path segments: valid ids, near misses and hostile strings (with the marker now and then). */
export function keySegment(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/),
    fc.constantFrom('', '.', '..', '-a', '_', 'a'.repeat(65), 'ä', 'a b', '%2F', MARKER, `${MARKER}-x`),
    fc.string({ maxLength: 20 }),
    fc.string({ unit: 'binary', maxLength: 12 }),
  );
}

/** Object keys: well-formed upload keys, near misses and arbitrary strings. */
export function objectKey(): fc.Arbitrary<string> {
  return fc.oneof(
    fc
      .tuple(
        fc.constantFrom('uploads/', 'uploads//', 'upload/', '/uploads/', '', 'features/', 'UPLOADS/'),
        fc.array(keySegment(), { minLength: 0, maxLength: 5 }),
        fc.constantFrom('', '.mp4', '.meta.json', '/', '.MP4'),
      )
      .map(([prefix, parts, suffix]) => `${prefix}${parts.join('/')}${suffix}`),
    fc.string({ maxLength: 80 }),
  );
}
