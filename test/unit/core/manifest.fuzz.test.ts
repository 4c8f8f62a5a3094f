/**
 * Property-based fuzzing of the model manifest loader (core/manifest.ts): the real
 * manifest with random edits at random paths, and arbitrary bytes as manifest.json,
 * give a valid Manifest or a ModelError/PayloadError naming the problem; never a
 * TypeError from deep inside, never a hang.
 */
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MODELS } from '../../../core/contract';
import { ModelError, PayloadError } from '../../../core/errors';
import { loadManifest, validateManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { tempDir } from '../../helpers/temp';
import { fuzzParams, withinBudget } from '../helpers/fuzz';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const REAL = JSON.parse(readFileSync(path.join(DEFAULT_MODELS_DIR, MODELS.manifestFile), 'utf8')) as Json;

/** Every path into a JSON value (arrays by index), the root excluded. */
function paths(v: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (v === null || typeof v !== 'object') return [];
  const entries: [string | number, Json][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  return entries.flatMap(([k, x]) => [[...prefix, k], ...paths(x, [...prefix, k])]);
}
const ALL_PATHS = paths(REAL);

type Edit = { at: number; op: 'delete' | 'set' | 'duplicate'; value: Json };
const edit: fc.Arbitrary<Edit> = fc.record({
  at: fc.nat({ max: ALL_PATHS.length - 1 }),
  op: fc.constantFrom('delete' as const, 'set' as const, 'duplicate' as const),
  value: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
    fc.constantFrom<Json>(-1, 0, 1e308, '', '../../etc/passwd', 'x'.repeat(5000), [], {}, null),
  ),
});

function applyEdits(base: Json, edits: Edit[]): Json {
  const out = structuredClone(base);
  for (const e of edits) {
    const p = ALL_PATHS[e.at]!;
    let parent: any = out;
    for (const k of p.slice(0, -1)) parent = parent?.[k];
    if (parent === null || typeof parent !== 'object') continue;
    const last = p.at(-1)!;
    if (e.op === 'delete') {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (e.op === 'set') parent[last] = e.value;
    else if (Array.isArray(parent) && parent[Number(last)] !== undefined)
      parent.push(structuredClone(parent[Number(last)]));
  }
  return out;
}

const isTypedError = (err: unknown) => err instanceof ModelError || err instanceof PayloadError;

describe('the manifest loader under fuzzing', () => {
  it('validates the edited real manifest or throws a typed error naming the manifest', () => {
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const value = applyEdits(REAL, edits);
        try {
          const m = withinBudget(() => validateManifest(value, 'model manifest (fuzzed)'), 'validateManifest');
          // What validates is self-consistent: its experts' names are unique.
          expect(new Set(m.experts.map((e) => e.name)).size).toBe(m.experts.length);
        } catch (err) {
          if (!isTypedError(err)) throw err;
          expect((err as Error).message.length).toBeGreaterThan(15);
          if (err instanceof PayloadError)
            expect((err as Error).message).toMatch(/^Invalid model manifest \(fuzzed\): /);
        }
      }),
      fuzzParams(400),
    );
  });

  it('reads any bytes as manifest.json into a manifest or a typed error', () => {
    const dir = tempDir();
    const file = path.join(dir, MODELS.manifestFile);
    const realText = JSON.stringify(REAL);
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
      fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
      fc.nat({ max: realText.length }).map((n) => Buffer.from(realText.slice(0, n))),
    );
    fc.assert(
      fc.property(bytes, (b) => {
        writeFileSync(file, b);
        try {
          withinBudget(() => loadManifest(dir), 'loadManifest');
        } catch (err) {
          if (!isTypedError(err)) throw err;
        }
      }),
      fuzzParams(200),
    );
  });
});
