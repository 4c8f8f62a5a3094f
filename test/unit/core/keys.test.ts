import {
  extractErrorKey,
  featuresKey,
  isSidecarKey,
  NO_SITE,
  parseUploadKey,
  scanPk,
  siteItemsPrefix,
  sitePrefixes,
  sidecarKeyFor,
  uploadKey,
  UploadKeyError,
} from '../../../core/keys';
import { SegmentId } from '../../../core/schemas';

function parseError(key: string): UploadKeyError {
  try {
    parseUploadKey(key);
  } catch (err) {
    return err as UploadKeyError;
  }
  throw new Error(`parseUploadKey(${JSON.stringify(key)}) did not throw`);
}

describe('parseUploadKey', () => {
  it('splits site, study and the rest of the path as file name', () => {
    // Prepare
    const key = 'uploads/site-a/study_1/day1/clip.mp4';

    // Act
    const parsed = parseUploadKey(key);

    // Assess
    expect(parsed).toEqual({ siteId: 'site-a', studyId: 'study_1', fileName: 'day1/clip.mp4' });
  });

  it('round-trips with uploadKey', () => {
    // Prepare
    const key = uploadKey('s1', 'st2', 'a/b/c.mov');

    // Act
    const parsed = parseUploadKey(key);

    // Assess
    expect(key).toBe('uploads/s1/st2/a/b/c.mov');
    expect(parsed).toEqual({ siteId: 's1', studyId: 'st2', fileName: 'a/b/c.mov' });
  });

  it('rejects a key outside uploads/ and says what is expected', () => {
    // Prepare
    const key = 'features/site-a/study/clip.mp4';

    // Act
    const err = parseError(key);

    // Assess
    expect(err).toBeInstanceOf(UploadKeyError);
    expect(err.name).toBe('UploadKeyError');
    expect(err.message).toContain('outside uploads/');
    expect(err.message).toContain('expected "uploads/{siteId}/{studyId}/{file}"');
  });

  it('rejects a key with no study', () => {
    // Prepare
    const key = 'uploads/site-a/clip.mp4';

    // Act
    const err = parseError(key);

    // Assess
    expect(err).toBeInstanceOf(UploadKeyError);
    expect(err.message).toContain('no site, study and file name');
    expect(err.message).toContain('expected "uploads/{siteId}/{studyId}/{file}"');
  });

  it('rejects an empty study segment', () => {
    // Prepare
    const key = 'uploads/a//b.mp4';

    // Act
    const err = parseError(key);

    // Assess
    expect(err).toBeInstanceOf(UploadKeyError);
    expect(err.message).toContain('Invalid studyId');
    expect(err.message).toContain('must be 1-64 characters');
  });

  it.each(['uploads/a/b/', 'uploads/a/b/day1//clip.mp4'])('rejects an empty file segment in %s', (key) => {
    // Prepare / Act
    const err = parseError(key);

    // Assess
    expect(err).toBeInstanceOf(UploadKeyError);
    expect(err.message).toContain('no site, study and file name');
  });

  it('rejects a site id starting with "-" and says what a segment must be', () => {
    // Prepare
    const key = 'uploads/-bad/s/x.mp4';

    // Act
    const err = parseError(key);

    // Assess
    expect(err).toBeInstanceOf(UploadKeyError);
    expect(err.message).toContain('Invalid siteId');
    expect(err.message).toContain('must be 1-64 characters');
  });

  it('accepts a 64-character site id and rejects a 65-character one', () => {
    // Prepare
    const ok = 'a'.repeat(64);
    const tooLong = 'a'.repeat(65);

    // Act
    const parsed = parseUploadKey(`uploads/${ok}/s/x.mp4`);
    const err = parseError(`uploads/${tooLong}/s/x.mp4`);

    // Assess
    expect(parsed.siteId).toBe(ok);
    expect(err).toBeInstanceOf(UploadKeyError);
    expect(err.message).toContain('Invalid siteId');
  });

  it('rejects an invalid study id', () => {
    // Prepare
    const key = 'uploads/site/st.udy/x.mp4';

    // Act
    const err = parseError(key);

    // Assess
    expect(err).toBeInstanceOf(UploadKeyError);
    expect(err.message).toContain('Invalid studyId');
  });
});

describe('featuresKey and extractErrorKey', () => {
  it('builds the features key under the site from extractor name, version and scan id', () => {
    // Prepare
    const extractor = { name: 'sonomark-fixture-extractor', version: '0.0.1' };

    // Act
    const key = featuresKey('site-a', extractor, 'abc123');

    // Assess
    expect(key).toBe('features/site-a/sonomark-fixture-extractor-0.0.1/abc123.json');
    expect(key.startsWith(sitePrefixes('site-a').features)).toBe(true);
  });

  it('puts every table item of a site under SITE#{siteId}#, which no other site id is a prefix of', () => {
    // Prepare: "site-a" is a string prefix of "site-ab"; the "#" delimiter keeps them apart
    const pk = scanPk('site-ab', 'abc');

    // Act / Assess
    expect(pk).toBe('SITE#site-ab#SCAN#abc');
    expect(pk.startsWith(siteItemsPrefix('site-ab'))).toBe(true);
    expect(pk.startsWith(siteItemsPrefix('site-a'))).toBe(false);
    expect(sitePrefixes('site-ab').uploads.startsWith(sitePrefixes('site-a').uploads)).toBe(false);
    // NO_SITE (failures before a site is known) is no valid site id
    expect(SegmentId.safeParse(NO_SITE).success).toBe(false);
  });

  it('puts the error document next to the features document', () => {
    // Prepare
    const key = 'features/x-1.0.0/abc.json';

    // Act
    const errorKey = extractErrorKey(key);

    // Assess
    expect(errorKey).toBe('features/x-1.0.0/abc.error.json');
  });

  it('only strips a trailing .json', () => {
    // Prepare
    const key = 'features/x.json-1.0.0/abc';

    // Act
    const errorKey = extractErrorKey(key);

    // Assess
    expect(errorKey).toBe('features/x.json-1.0.0/abc.error.json');
  });
});

describe('sidecar helpers', () => {
  it('names the sidecar of a clip and recognises it', () => {
    // Prepare
    const clip = 'uploads/s/st/clip.mp4';

    // Act
    const sidecar = sidecarKeyFor(clip);

    // Assess
    expect(sidecar).toBe('uploads/s/st/clip.mp4.meta.json');
    expect(isSidecarKey(sidecar)).toBe(true);
    expect(isSidecarKey(clip)).toBe(false);
    expect(isSidecarKey('uploads/s/st/notes.json')).toBe(false);
  });
});
