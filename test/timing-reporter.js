/**
 * Where `npm test`'s time goes: after every run, the wall time of each jest project (first start to
 * last end of its files), each project's summed file time, and the slowest files, printed at the end
 * and written to .sonomark/test-times.json (ignored by git). The performance issue's "before and after"
 * for the suite reads from here instead of from a stopwatch; nothing in it is asserted.
 */
const { mkdirSync, writeFileSync } = require('node:fs');
const path = require('node:path');

class TimingReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
    this.files = [];
  }

  onTestResult(test, result) {
    const { start, end } = result.perfStats;
    this.files.push({
      project: test.context.config.displayName?.name ?? 'default',
      file: path.relative(this.rootDir, result.testFilePath),
      seconds: Math.round((end - start) / 10) / 100,
      start,
      end,
      tests: result.numPassingTests + result.numFailingTests + result.numPendingTests,
    });
  }

  onRunComplete() {
    if (this.files.length === 0) return;
    const projects = {};
    for (const f of this.files) {
      const p = (projects[f.project] ??= { files: 0, summedSeconds: 0, start: f.start, end: f.end });
      p.files++;
      p.summedSeconds += f.seconds;
      p.start = Math.min(p.start, f.start);
      p.end = Math.max(p.end, f.end);
    }
    const start = Math.min(...this.files.map((f) => f.start));
    const end = Math.max(...this.files.map((f) => f.end));
    const summary = {
      wallSeconds: Math.round((end - start) / 100) / 10,
      projects: Object.fromEntries(
        Object.entries(projects).map(([name, p]) => [
          name,
          {
            files: p.files,
            summedSeconds: Math.round(p.summedSeconds * 10) / 10,
            wallSeconds: Math.round((p.end - p.start) / 100) / 10,
          },
        ]),
      ),
      files: [...this.files]
        .sort((a, b) => b.seconds - a.seconds)
        .map(({ project, file, seconds, tests }) => ({ project, file, seconds, tests })),
    };
    const out = path.join(this.rootDir, '.sonomark', 'test-times.json');
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(summary, null, 1) + '\n');
    const lines = [
      `test time: ${summary.wallSeconds} s of jest wall time; by project (summed file time / wall):`,
      ...Object.entries(summary.projects).map(
        ([n, p]) => `  ${n.padEnd(12)} ${String(p.files).padStart(3)} files ${p.summedSeconds} s / ${p.wallSeconds} s`,
      ),
      'slowest files:',
      ...summary.files.slice(0, 12).map((f) => `  ${String(f.seconds).padStart(7)} s  ${f.file}`),
      `(all files: ${path.relative(this.rootDir, out)})`,
    ];
    process.stderr.write(`\n${lines.join('\n')}\n`);
  }
}

module.exports = TimingReporter;
