/// <reference lib="dom" />
// The page-side callbacks below run in Chromium, where the DOM types hold.
/**
 * The research report in a real browser: real clips from ../shared/data/pocus through
 * `sonomark analyze --data-dir` (the local workflow), `sonomark report`, then the page
 * opened in headless Chromium (Debian's, driven by playwright-core). Screenshots go to
 * .sonomark/test-artifacts/ (git-ignored) for a person to look at.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { CohortItemOutcome, CohortSummary } from '../../core/cohort';
import { batchOutcomesKey, cohortRunPrefix } from '../../core/cohort-run';
import { loadManifest } from '../../core/manifest';
import { PACKAGE_ROOT } from '../../core/paths';
import { listExpertResultVersions } from '../../core/results-store';
import { writeCohortReport } from '../../lambdas/cohort-report/report';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE } from '../../local/names';
import { startLocalApi } from '../../local/serve';
import { startLocalServices } from '../../local/services';
import { runCli } from '../helpers/cli';
import { POCUS, requirePocus } from '../helpers/pocus';
import { tempDir } from '../helpers/temp';

jest.setTimeout(300_000);

const CHROMIUM = process.env.SONOMARK_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(PACKAGE_ROOT, '.sonomark', 'test-artifacts');
const clip = (name: string) => path.join(POCUS, 'videos', 'convex', name);
const SINGLE = clip('Pneu-Atlas-pneumonia.gif');
const COHORT = ['Reg_liftl_case3_clip2.mp4', 'Pneu_liftl_pneu_case3_clip3.mp4', 'Cov_combatting_Image1.mp4'].map(clip);

let context: BrowserContext;
let dataDir: string;

beforeAll(async () => {
  requirePocus();
  if (!existsSync(CHROMIUM)) {
    throw new Error(`No Chromium at ${CHROMIUM}: install Debian's (apt-get install -y chromium; .ci/run does).`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = tempDir('sonomark-report-data-');
  // A fresh profile per run, and Chromium's own temp files kept out of the run's TMPDIR check.
  const profile = tempDir('sonomark-chromium-');
  context = await chromium.launchPersistentContext(path.join(profile, 'user-data'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    env: { ...process.env, TMPDIR: profile, HOME: profile },
    viewport: { width: 1100, height: 900 },
  });
});

afterAll(async () => {
  await context?.close();
});

interface Opened {
  readonly page: Page;
  readonly errors: string[];
  readonly requests: string[];
}

/** Opens the page (a file, or a URL), recording console errors, page errors and every other request it makes. */
async function open(file: string): Promise<Opened> {
  const href = /^https?:/.test(file) ? file : pathToFileURL(file).href;
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (r.url() !== href && !r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url());
  });
  await page.goto(href, { waitUntil: 'load' });
  return { page, errors, requests };
}

/** Every chart: an SVG with size, and the axis names and labels its kind must show. */
async function charts(page: Page): Promise<{ kind: string; width: number; texts: string[] }[]> {
  return page.$$eval('figure.chart', (figs) =>
    figs.map((f) => {
      const svg = f.querySelector('svg');
      return {
        kind: f.getAttribute('data-chart') ?? '',
        width: svg ? svg.getBoundingClientRect().width : 0,
        texts: svg ? Array.from(svg.querySelectorAll('text')).map((t) => t.textContent ?? '') : [],
      };
    }),
  );
}

function expectAxes(c: { kind: string; width: number; texts: string[] }): void {
  expect(c.width).toBeGreaterThan(150);
  const want: Record<string, string[]> = {
    timeline: [
      'decoded frame',
      'probability',
      'a lines',
      'b lines',
      'pleural irregularity',
      'consolidation',
      'effusion',
      'healthy pattern',
      '0',
      '1',
    ],
    'expert-diagnosis': ['class', 'probability', 'covid', 'pneumonia', 'healthy'],
    'expert-severity': ['grade', 'probability', '0', '1', '2', '3'],
    'expert-triage': ['class', 'probability', 'healthy', 'abnormal'],
    'expert-b-lines': ['class', 'probability', 'absent', 'present'],
    'distribution-diagnosis': ['label', 'scans', 'covid', 'pneumonia', 'healthy'],
    'distribution-severity': ['grade', 'scans', '0', '3'],
    'distribution-triage': ['P(abnormal)', 'scans', '0–10%', '90–100%'],
    'distribution-b-lines': ['P(present)', 'scans', '0–10%', '90–100%'],
  };
  const expected = want[c.kind];
  if (!expected) throw new Error(`unexpected chart kind ${c.kind}`);
  for (const t of expected)
    expect({ kind: c.kind, has: c.texts.includes(t) ? t : c.texts }).toEqual({ kind: c.kind, has: t });
}

async function thumbnails(page: Page): Promise<{ loaded: number; total: number }> {
  return page.$$eval('.thumb img', (imgs) => ({
    total: imgs.length,
    loaded: (imgs as HTMLImageElement[]).filter((i) => i.complete && i.naturalWidth > 0).length,
  }));
}

async function screenshot(page: Page, name: string): Promise<void> {
  const file = path.join(ARTIFACTS, name);
  writeFileSync(file, await page.screenshot({ fullPage: true }));
}

describe('the report in Chromium', () => {
  it('one clip: analyze --report writes a page with its timeline, peak thumbnails and expert outputs', async () => {
    // Prepare
    const out = tempDir('sonomark-report-out-');

    // Act
    const r = await runCli(['analyze', '--data-dir', dataDir, '--report', out, SINGLE]);
    const file =
      r.stdout
        .trim()
        .split('\n')
        .pop()
        ?.replace(/^Report: /, '') ?? '';
    const { page, errors, requests } = await open(file);

    // Assess: the terminal says where the page is, last.
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/outputs\s+research software, not a medical device/);
    expect(path.dirname(file)).toBe(out);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    const found = await charts(page);
    expect(found.map((c) => c.kind).sort()).toEqual([
      'expert-b-lines',
      'expert-diagnosis',
      'expert-severity',
      'expert-triage',
      'timeline',
    ]);
    found.forEach(expectAxes);
    const thumbs = await thumbnails(page);
    expect(thumbs.total).toBeGreaterThanOrEqual(1);
    expect(thumbs.loaded).toBe(thumbs.total);
    expect(await page.locator('.ruo').count()).toBeGreaterThanOrEqual(4);
    await screenshot(page, 'report-clip.png');
    await page.close();
  });

  it('a cohort: sonomark report on the data dir gives a sortable table, distributions and failures', async () => {
    // Prepare: three more clips and one file that is no clip, into the same data dir.
    const bad = path.join(tempDir(), 'notes.gif');
    writeFileSync(bad, 'not a clip');
    const analyzed = await runCli(['analyze', '--data-dir', dataDir, ...COHORT, bad]);
    const out = tempDir('sonomark-report-out-');

    // Act
    const r = await runCli(['report', '--out', out, dataDir]);
    const { page, errors, requests } = await open(r.stdout.trim());

    // Assess: the batch ends with a compact summary, a line per clip.
    expect(analyzed.code).toBe(1);
    expect(analyzed.stdout).toMatch(/^Summary \([a-z, -]+: research software, not a medical device\)/);
    // Every shipped expert is in the headline, whatever the order the results came back in.
    for (const name of ['diagnosis', 'severity', 'triage', 'b-lines']) {
      expect(analyzed.stdout.split('\n')[0]!.split(':')[0]).toContain(name);
    }
    expect(analyzed.stdout).toMatch(/3 completed, 1 failed, 4 in all/);
    expect(analyzed.stdout.split('\n').length).toBeLessThan(20);
    expect(r.code).toBe(0);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    const rows = () => page.$$eval('#scan-table tbody tr', (trs) => trs.map((tr) => tr.children[1]?.textContent ?? ''));
    expect(await rows()).toHaveLength(5);
    const found = await charts(page);
    expect(found.filter((c) => c.kind === 'timeline')).toHaveLength(4);
    for (const k of ['diagnosis', 'severity', 'triage', 'b-lines'])
      expect(found.map((c) => c.kind)).toContain(`distribution-${k}`);
    found.forEach(expectAxes);
    const thumbs = await thumbnails(page);
    expect(thumbs.total).toBeGreaterThanOrEqual(4);
    expect(thumbs.loaded).toBe(thumbs.total);
    expect(await page.locator('#failures').textContent()).toMatch(/notes\.gif[\s\S]*UNSUPPORTED_FORMAT/);
    // Sorting by clip name, then again for the reverse order.
    const before = await rows();
    await page.click('#scan-table thead th:nth-child(2) button');
    const ascending = await rows();
    await page.click('#scan-table thead th:nth-child(2) button');
    expect(ascending).toEqual([...before].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
    expect(await rows()).toEqual([...ascending].reverse());
    await screenshot(page, 'report-cohort.png');
    // A narrow window: nothing wider than the screen but the table's own scroll box.
    await page.setViewportSize({ width: 390, height: 800 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await screenshot(page, 'report-cohort-narrow.png');
    await page.close();
  });

  it("a cohort run's page through the API link: the local run's and the cloud report's, both in Chromium", async () => {
    // Prepare: the cohort's clips (analysed above: nothing to decode or extract) as a CSV manifest
    const work = tempDir('sonomark-cohort-');
    const manifestFile = path.join(work, 'cohort.csv');
    writeFileSync(manifestFile, ['file', ...COHORT].join('\n') + '\n');
    const out = path.join(work, 'out');
    const run = await runCli(['cohort', 'run', manifestFile, '--data-dir', dataDir, '--out', out, '--no-progress']);
    expect(run.code).toBe(0);
    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as CohortSummary;
    expect(summary).toMatchObject({ site: 'local', runId: expect.stringMatching(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/) });
    // The cloud's CohortReport code over the same scans, under another run id of the same site
    const services = await startLocalServices(dataDir);
    try {
      const outcomes: CohortItemOutcome[] = [];
      for (const scanId of summary.scanIds)
        outcomes.push({
          item: scanId,
          scanId,
          action: 'done',
          ...(await listExpertResultVersions(services.doc, LOCAL_TABLE, 'local', scanId)),
        });
      const runPrefix = cohortRunPrefix('local', 'cloud-run');
      await services.s3.send(
        new PutObjectCommand({
          Bucket: LOCAL_ARTIFACTS_BUCKET,
          Key: batchOutcomesKey(runPrefix, '0123456789abcdef'),
          Body: JSON.stringify(outcomes),
        }),
      );
      const manifest = loadManifest().manifest;
      await writeCohortReport(
        { site: 'local', runPrefix, startedAt: new Date().toISOString(), source: manifestFile },
        {
          s3: services.s3,
          doc: services.doc,
          table: LOCAL_TABLE,
          artifactsBucket: LOCAL_ARTIFACTS_BUCKET,
          manifest: async () => manifest,
        },
      );
    } finally {
      await services.close();
    }
    const server = await startLocalApi({ dataDir, sites: ['local'] });
    try {
      const link = async (runId: string) => {
        const res = await fetch(`${server.url}/cohorts/${runId}/report`, {
          headers: { authorization: `Bearer ${server.tokens.local}` },
        });
        expect(res.status).toBe(200);
        return ((await res.json()) as { url: string }).url;
      };

      for (const [runId, cloud] of [
        [summary.runId!, false],
        ['cloud-run', true],
      ] as const) {
        // Act
        const { page, errors, requests } = await open(await link(runId));

        // Assess: the same page either way; frames where the clips could be decoded, a plain note where not
        expect(errors).toEqual([]);
        expect(requests).toEqual([]);
        expect(await page.title()).toBe(`sonomark cohort report (${summary.scanIds.length} scans)`);
        const found = await charts(page);
        expect(found.filter((c) => c.kind === 'timeline')).toHaveLength(summary.scanIds.length);
        found.forEach(expectAxes);
        const thumbs = await thumbnails(page);
        if (cloud) {
          expect(thumbs.total).toBe(0);
          await expect(page.locator('.no-frames').textContent()).resolves.toMatch(/No frame images on this page\./);
          expect(await page.locator('.noimg').count()).toBeGreaterThanOrEqual(summary.scanIds.length);
          await screenshot(page, 'report-cohort-cloud.png');
        } else {
          expect(thumbs.total).toBeGreaterThanOrEqual(summary.scanIds.length);
          expect(thumbs.loaded).toBe(thumbs.total);
          expect(await page.locator('.no-frames').count()).toBe(0);
        }
        await page.close();
      }
    } finally {
      await server.close();
    }
  });

  it('says what to do for an unknown scan id and for a data dir with nothing analysed', async () => {
    // Act
    const unknown = await runCli(['report', '--data-dir', dataDir, '--out', tempDir(), 'f'.repeat(32)]);
    const empty = await runCli(['report', '--data-dir', tempDir(), '--out', tempDir()]);

    // Assess
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown scan id f{32}/);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/Nothing has been analysed into .* yet: run "sonomark analyze --data-dir/);
  });
});
