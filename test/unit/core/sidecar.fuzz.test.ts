/** Property-based fuzzing of the sidecar schema (core/schemas.ts SidecarMetadata): strict, total, never echoing values. */
import fc from 'fast-check';
import { SidecarMetadata } from '../../../core/schemas';
import { formatZodIssues } from '../../../core/zod-parse';
import { fuzzParams, MARKER, withinBudget } from '../helpers/fuzz';

const FIELDS = ['probe', 'bodyRegion', 'frameRate', 'zone', 'modality', 'defaultModality'];

/** Values near and far from what each field accepts, with the marker among the strings. */
const fieldValue = fc.oneof(
  fc.constantFrom(
    'convex',
    'linear',
    'phased',
    'unknown',
    'lung',
    'other',
    'R2',
    'zone-R2',
    'xray',
    'ultrasound',
    MARKER,
    '',
    'a'.repeat(65),
  ),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 30 }),
  fc.anything({ maxDepth: 2, key: fc.constantFrom('a', 'probe', 'zone', 'x') }),
);
const sidecarLike = fc.oneof(
  fc.dictionary(fc.constantFrom(...FIELDS, 'patientName', '__proto__', 'constructor'), fieldValue, {
    maxKeys: 6,
  }),
  fc.anything({ maxDepth: 3, key: fc.constantFrom('a', 'probe', 'zone', 'x') }),
  fc.jsonValue({ maxDepth: 3 }).filter((v) => !JSON.stringify(v).includes(MARKER.slice(1))),
);

describe('SidecarMetadata under fuzzing', () => {
  it('parses or returns issues, never throws; a parse holds only known, valid fields', () => {
    fc.assert(
      fc.property(sidecarLike, (value) => {
        const result = withinBudget(() => SidecarMetadata.safeParse(value), 'SidecarMetadata.safeParse');
        if (result.success) {
          expect(Object.keys(result.data).every((k) => FIELDS.includes(k))).toBe(true);
          if (result.data.frameRate !== undefined) {
            expect(Number.isFinite(result.data.frameRate)).toBe(true);
            expect(result.data.frameRate).toBeGreaterThan(0);
            expect(result.data.frameRate).toBeLessThanOrEqual(1000);
          }
          if (result.data.zone !== undefined) expect(result.data.zone).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/);
        } else {
          // The rendering used in messages names fields and rules, never the values
          // (unknown key names are the validate step's concern: validate-upload.fuzz.test.ts).
          const message = formatZodIssues(result.error);
          expect(message.length).toBeGreaterThan(0);
          expect(message).not.toContain(MARKER.slice(1));
        }
      }),
      fuzzParams(500),
    );
  });
});
