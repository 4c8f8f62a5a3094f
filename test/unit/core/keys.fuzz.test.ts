/** Property-based fuzzing of the upload key parser (core/keys.ts): a parse or a clear UploadKeyError, nothing else. */
import fc from 'fast-check';
import { parseUploadKey, uploadKey, UploadKeyError, UPLOADS_PREFIX } from '../../../core/keys';
import { SegmentId } from '../../../core/schemas';
import { fuzzParams, keySegment, MARKER, objectKey, withinBudget } from '../helpers/fuzz';

describe('parseUploadKey under fuzzing', () => {
  it('returns a key it round-trips, or throws an UploadKeyError saying what is accepted, never echoing the key', () => {
    fc.assert(
      fc.property(objectKey(), (key) => {
        let parsed;
        try {
          parsed = withinBudget(() => parseUploadKey(key), 'parseUploadKey');
        } catch (err) {
          expect(err).toBeInstanceOf(UploadKeyError);
          const message = (err as Error).message;
          expect(message).toMatch(
            /expected "uploads\/\{siteId\}\/\{studyId\}\/\{file\}"|Invalid (siteId|studyId) in object key: must be/,
          );
          expect(message).not.toContain(MARKER);
          return;
        }
        expect(SegmentId.safeParse(parsed.siteId).success).toBe(true);
        expect(SegmentId.safeParse(parsed.studyId).success).toBe(true);
        expect(parsed.fileName.length).toBeGreaterThan(0);
        expect(parsed.fileName.split('/').every((p) => p.length > 0)).toBe(true);
        expect(uploadKey(parsed.siteId, parsed.studyId, parsed.fileName)).toBe(key);
      }),
      fuzzParams(500),
    );
  });

  it('accepts every key built from valid ids and a non-empty file path', () => {
    const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/);
    const file = fc.array(
      keySegment().filter((s) => s.length > 0 && !s.includes('/')),
      { minLength: 1, maxLength: 4 },
    );
    fc.assert(
      fc.property(id, id, file, (site, study, parts) => {
        const key = `${UPLOADS_PREFIX}${site}/${study}/${parts.join('/')}`;
        expect(parseUploadKey(key)).toEqual({ siteId: site, studyId: study, fileName: parts.join('/') });
      }),
      fuzzParams(300),
    );
  });
});
