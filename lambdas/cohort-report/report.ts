/**
 * CohortReport of the cohort workflow, after the Distributed Map: every batch's outcomes
 * (written by ScoreBatch under the run's batches/) gathered into the cohort report that
 * `sonomark cohort run` writes locally (core/cohort.ts): cohort.csv and summary.json, next to
 * the map's ResultWriter output under cohorts/{site}/{runId}/.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { COHORT_CSV, COHORT_SUMMARY, cohortCsv, summarizeCohort, type CohortItemOutcome } from '../../core/cohort';
import { BATCH_OUTCOMES_SUFFIX } from '../../core/cohort-run';
import type { Manifest } from '../../core/schemas';
import { SegmentId } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';

export interface ReportDeps {
  readonly s3: S3Client;
  readonly artifactsBucket: string;
  readonly manifest: () => Promise<Manifest>;
  readonly now?: () => Date;
}

export const ReportInput = z.object({
  site: SegmentId,
  runPrefix: z.string().regex(/^cohorts\/.+\/$/),
  /** The execution's start time: the report's `seconds`. */
  startedAt: z.string().datetime(),
  /** What the run read (the manifest's key or the prefix), for the summary's `source`. */
  source: z.string(),
});

async function listOutcomeKeys(deps: ReportDeps, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await deps.s3.send(
      new ListObjectsV2Command({ Bucket: deps.artifactsBucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of out.Contents ?? []) if (o.Key?.endsWith(BATCH_OUTCOMES_SUFFIX)) keys.push(o.Key);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

export async function writeCohortReport(
  input: unknown,
  deps: ReportDeps,
): Promise<{ csvKey: string; summaryKey: string; counts: Record<string, number> }> {
  const { runPrefix, startedAt, source } = parsePayload(ReportInput, input, 'cohort report input');
  const outcomes: CohortItemOutcome[] = [];
  for (const key of await listOutcomeKeys(deps, `${runPrefix}batches/`)) {
    const out = await deps.s3.send(new GetObjectCommand({ Bucket: deps.artifactsBucket, Key: key }));
    outcomes.push(...(JSON.parse((await out.Body?.transformToString('utf8')) ?? '[]') as CohortItemOutcome[]));
  }
  outcomes.sort((a, b) => a.item.localeCompare(b.item));
  const manifest = await deps.manifest();
  const experts = manifest.experts.map((e) => e.name);
  const now = deps.now?.() ?? new Date();
  const summary = summarizeCohort(outcomes, {
    source,
    models: {
      extractor: `${manifest.extractor.name}@${manifest.extractor.version}`,
      experts: manifest.experts.map((e) => `${e.name}@${e.version}`),
    },
    experts,
    seconds: Math.max(0, (now.getTime() - Date.parse(startedAt)) / 1000),
    now,
  });
  const csvKey = `${runPrefix}${COHORT_CSV}`;
  const summaryKey = `${runPrefix}${COHORT_SUMMARY}`;
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.artifactsBucket,
      Key: csvKey,
      Body: cohortCsv(outcomes, experts),
      ContentType: 'text/csv',
    }),
  );
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.artifactsBucket,
      Key: summaryKey,
      Body: JSON.stringify(summary, null, 2),
      ContentType: 'application/json',
    }),
  );
  return { csvKey, summaryKey, counts: summary.counts };
}
