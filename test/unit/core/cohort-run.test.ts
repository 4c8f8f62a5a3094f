/** The cloud cohort run's pure parts: site scoping of items, the score-only decision, schedule inputs, config. */
import {
  batchIdOf,
  cohortRunPrefix,
  cohortScheduleInput,
  CohortRunInput,
  featuresLocation,
  hasCurrentFeatures,
  siteUpload,
} from '../../../core/cohort-run';
import { featuresKey } from '../../../core/keys';
import { sha256Hex } from '../../../core/scan-id';
import { parseConfig } from '../../../lib/config';

const extractor = { name: 'usfm', version: '1.0.0', sha256: 'a'.repeat(64) };
const scanId = '0123456789abcdef0123456789abcdef';

describe('siteUpload', () => {
  it('accepts an upload of the run’s site and names its study', () => {
    expect(siteUpload('uploads/site-a/study-1/x.mp4', 'site-a')).toEqual({ ok: true, studyId: 'study-1' });
  });

  it('refuses another site’s upload and a key outside uploads/', () => {
    expect(siteUpload('uploads/site-b/study-1/x.mp4', 'site-a')).toMatchObject({ ok: false, code: 'OTHER_SITE' });
    expect(siteUpload('features/site-a/x.json', 'site-a')).toMatchObject({ ok: false, code: 'INVALID_KEY' });
  });
});

describe('hasCurrentFeatures', () => {
  const completed = { status: 'COMPLETED' as const, extractor, featuresKey: 'features/k.json' };

  it('is true for a COMPLETED scan of the current extractor, or when the features document exists', () => {
    expect(hasCurrentFeatures(completed, extractor, false)).toBe(true);
    expect(hasCurrentFeatures(undefined, extractor, true)).toBe(true);
  });

  it('is false for another extractor version, a scan not COMPLETED, or no scan and no document', () => {
    expect(hasCurrentFeatures({ ...completed, extractor: { ...extractor, version: '2.0.0' } }, extractor, false)).toBe(
      false,
    );
    expect(hasCurrentFeatures({ ...completed, status: 'FAILED' }, extractor, false)).toBe(false);
    expect(hasCurrentFeatures(undefined, extractor, false)).toBe(false);
  });

  it('locates features at the scan item’s key when current, else at the deterministic key', () => {
    expect(featuresLocation({ ...completed, featuresBucket: 'b1' }, 'site-a', scanId, extractor, 'art')).toEqual({
      featuresBucket: 'b1',
      featuresKey: 'features/k.json',
    });
    expect(featuresLocation(undefined, 'site-a', scanId, extractor, 'art')).toEqual({
      featuresBucket: 'art',
      featuresKey: featuresKey('site-a', extractor, scanId),
    });
  });
});

describe('run files', () => {
  it('puts a run under cohorts/{site}/{runId}/ and names a batch by its items', () => {
    expect(cohortRunPrefix('site-a', 'exec-1')).toBe('cohorts/site-a/exec-1/');
    const id = batchIdOf(['a', 'b'], sha256Hex);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(batchIdOf(['a', 'b'], sha256Hex)).toBe(id);
    expect(batchIdOf(['a', 'c'], sha256Hex)).not.toBe(id);
  });
});

describe('cohortScheduleInput', () => {
  it('builds the manual start’s input from a configured cohort', () => {
    const manifest = cohortScheduleInput(
      { site: 'site-a', manifest: { key: 'cohorts/manifests/m.jsonl', format: 'jsonl' } },
      'art',
    );
    expect(manifest).toEqual({
      site: 'site-a',
      manifest: { bucket: 'art', key: 'cohorts/manifests/m.jsonl', format: 'jsonl' },
    });
    expect(CohortRunInput.parse(manifest)).toEqual(manifest);
    expect(cohortScheduleInput({ site: 'site-a', prefix: 'uploads/site-a/2026/' }, 'art')).toEqual({
      site: 'site-a',
      prefix: 'uploads/site-a/2026/',
    });
  });

  it('refuses a manifest outside cohorts/manifests/ and a prefix outside the site’s uploads', () => {
    expect(() => cohortScheduleInput({ site: 'site-a', manifest: { key: 'm.csv', format: 'csv' } }, 'art')).toThrow(
      /cohorts\/manifests\//,
    );
    expect(() => cohortScheduleInput({ site: 'site-a', prefix: 'uploads/site-b/' }, 'art')).toThrow(
      /uploads\/site-a\//,
    );
  });
});

describe('config cohorts and cohortBatching', () => {
  it('defaults to no schedule and batches of 25, 4 at once, 10% tolerated', () => {
    const config = parseConfig({});
    expect(config.cohorts).toEqual([]);
    expect(config.cohortBatching).toEqual({ batchSize: 25, maxConcurrency: 4, toleratedFailurePercentage: 10 });
  });

  it('refuses a cohort with both or neither source, a five-field cron, and a repeated name', () => {
    const base = { name: 'w', site: 'site-a', cron: '0 3 ? * MON *' };
    expect(() => parseConfig({ cohorts: [base] })).toThrow(/exactly one of manifest/);
    expect(() =>
      parseConfig({ cohorts: [{ ...base, prefix: 'uploads/site-a/', manifest: { key: 'k', format: 'csv' } }] }),
    ).toThrow(/exactly one of manifest/);
    expect(() => parseConfig({ cohorts: [{ ...base, cron: '0 3 * * 1', prefix: 'uploads/site-a/' }] })).toThrow(
      /six cron fields/,
    );
    const p = { ...base, prefix: 'uploads/site-a/' };
    expect(() => parseConfig({ cohorts: [p, p] })).toThrow(/configured twice/);
  });
});
