/**
 * The allowed imports between the project folders (DESIGN.md "Layout") are
 * enforced by eslint.config.mjs. Each row lints one import, as if written in a
 * file of that folder, through the project's own ESLint config: a forbidden edge
 * is an error that says what is allowed; an allowed edge lints clean.
 */
import { spawnSync } from 'node:child_process';
import { PACKAGE_ROOT } from '../../core/paths';

jest.setTimeout(60_000);

const CORE = 'core/ imports no other project folder';
const LAMBDA = 'lambdas/<fn> imports only core/, lambdas/shared/';
const GPU = 'gpu-tasks/<task> imports only core/';
const LIB = 'lib/ (the CDK app) imports only core/ and lib/';
const LOCAL = 'local/ imports only core/, lambdas/, gpu-tasks/, lib/ and local/';
const TRAINING = 'training/ imports only core/, gpu-tasks/ (the decoder) and training/';
const NO_CDK = 'Runtime code never imports the CDK';
const NORMAL = 'Write relative imports in normal form';
const STATIC = 'Import files outside this folder statically';

const EXTRACTOR = 'gpu-tasks/feature-extractor/src/fixture.ts';

/** [file the import is written in, specifier, the message's fragment]. */
const FORBIDDEN: [string, string, string][] = [
  // core imports nothing else of the project, and never the CDK.
  ['core/fixture.ts', '../lib/config', CORE],
  ['core/fixture.ts', '../lambdas/expert/score', CORE],
  ['core/fixture.ts', '../lambdas/shared/runtime', CORE],
  ['core/fixture.ts', '../gpu-tasks/feature-extractor/src', CORE],
  ['core/fixture.ts', '../local/workflow', CORE],
  ['core/fixture.ts', '../cli/main', CORE],
  ['core/fixture.ts', '../training/npy', CORE],
  ['core/fixture.ts', '..', CORE],
  ['core/fixture.ts', '../../elsewhere/x', CORE],
  ['core/nested/fixture.ts', '../../lib/config', CORE],
  ['core/fixture.ts', 'aws-cdk-lib', NO_CDK],
  ['core/fixture.ts', 'aws-cdk-lib/aws-s3', NO_CDK],
  ['core/fixture.ts', 'constructs', NO_CDK],
  ['core/fixture.ts', 'cdk-nag', NO_CDK],
  // Specifiers that would hide a climb from the text match.
  ['core/fixture.ts', './../lib/config', NORMAL],
  ['core/fixture.ts', '../core/../lib/config', NORMAL],
  ['core/fixture.ts', './x/../../lib/config', NORMAL],
  // lambdas: core and lambdas/shared only; never another function, gpu-tasks, lib, local, cli, training, the CDK.
  ['lambdas/expert/fixture.ts', '../finalize/finalize', LAMBDA],
  ['lambdas/expert/fixture.ts', '../../lambdas/finalize/finalize', LAMBDA],
  ['lambdas/expert/nested/fixture.ts', '../../finalize/finalize', LAMBDA],
  ['lambdas/shared/fixture.ts', '../expert/score', LAMBDA],
  ['lambdas/expert/fixture.ts', '../../gpu-tasks/feature-extractor/src', LAMBDA],
  ['lambdas/expert/fixture.ts', '../../lib/config', LAMBDA],
  ['lambdas/expert/fixture.ts', '../../local/workflow', LAMBDA],
  ['lambdas/expert/fixture.ts', '../../cli/main', LAMBDA],
  ['lambdas/expert/fixture.ts', '../../training/npy', LAMBDA],
  ['lambdas/expert/fixture.ts', 'aws-cdk-lib', NO_CDK],
  ['lambdas/expert/fixture.ts', 'constructs', NO_CDK],
  // gpu-tasks: core and their own folder only.
  [EXTRACTOR, '../../../lambdas/expert/score', GPU],
  [EXTRACTOR, '../../../lambdas/shared/runtime', GPU],
  [EXTRACTOR, '../../other-task/src', GPU],
  [EXTRACTOR, '../../../lib/config', GPU],
  [EXTRACTOR, '../../../local/workflow', GPU],
  [EXTRACTOR, '../../../cli/main', GPU],
  [EXTRACTOR, '../../../training/npy', GPU],
  [EXTRACTOR, 'aws-cdk-lib/aws-batch', NO_CDK],
  [EXTRACTOR, 'cdk-nag', NO_CDK],
  // lib (the CDK app): core only.
  ['lib/fixture.ts', '../lambdas/expert/score', LIB],
  ['lib/fixture.ts', '../gpu-tasks/feature-extractor/src', LIB],
  ['lib/fixture.ts', '../local/workflow', LIB],
  ['lib/fixture.ts', '../cli/main', LIB],
  ['lib/fixture.ts', '../training/npy', LIB],
  ['lib/stacks/fixture.ts', '../../local/workflow', LIB],
  // local: never training or cli.
  ['local/fixture.ts', '../training/npy', LOCAL],
  ['local/fixture.ts', '../cli/main', LOCAL],
  // training: core and gpu-tasks only.
  ['training/fixture.ts', '../lambdas/expert/score', TRAINING],
  ['training/fixture.ts', '../lib/config', TRAINING],
  ['training/fixture.ts', '../local/workflow', TRAINING],
  ['training/fixture.ts', '../cli/main', TRAINING],
  ['training/experts/fixture.ts', '../../cli/main', TRAINING],
];

const ALLOWED: [string, string][] = [
  ['core/fixture.ts', './errors'],
  ['core/nested/fixture.ts', '../errors'],
  ['core/fixture.ts', 'zod'],
  ['core/fixture.ts', 'node:fs'],
  ['lambdas/expert/fixture.ts', './score'],
  ['lambdas/expert/fixture.ts', '../shared/runtime'],
  ['lambdas/expert/fixture.ts', '../../lambdas/shared/runtime'],
  ['lambdas/expert/fixture.ts', '../../core/errors'],
  ['lambdas/expert/nested/fixture.ts', '../score'],
  ['lambdas/expert/nested/fixture.ts', '../../shared/runtime'],
  ['lambdas/expert/nested/fixture.ts', '../../../core/errors'],
  ['lambdas/expert/fixture.ts', '@aws-sdk/client-s3'],
  [EXTRACTOR, './decode'],
  [EXTRACTOR, '../../../core/errors'],
  [EXTRACTOR, 'onnxruntime-node'],
  ['lib/fixture.ts', '../core/keys'],
  ['lib/fixture.ts', './config'],
  ['lib/stacks/fixture.ts', '../../core/keys'],
  ['lib/stacks/fixture.ts', '../constructs/workflow'],
  ['lib/fixture.ts', 'aws-cdk-lib'],
  ['lib/fixture.ts', 'aws-cdk-lib/aws-s3'],
  ['lib/fixture.ts', 'constructs'],
  ['lib/fixture.ts', 'cdk-nag'],
  ['local/fixture.ts', '../core/keys'],
  ['local/fixture.ts', '../lambdas/expert/score'],
  ['local/fixture.ts', '../gpu-tasks/feature-extractor/src'],
  ['local/fixture.ts', '../lib/app'],
  ['local/fixture.ts', './asl'],
  ['training/fixture.ts', '../core/keys'],
  ['training/fixture.ts', '../gpu-tasks/feature-extractor/src'],
  ['training/experts/fixture.ts', '../../gpu-tasks/feature-extractor/src'],
  ['training/fixture.ts', './npy'],
  // Only cli imports local; cli may use every other folder.
  ['cli/fixture.ts', '../local/workflow'],
  ['cli/fixture.ts', '../training/experts/train-command'],
  ['cli/fixture.ts', '../lib/app'],
  ['cli/fixture.ts', '../gpu-tasks/feature-extractor/src'],
  // Tests, benchmarks and the launchers are free.
  ['test/unit/fixture.ts', '../../local/workflow'],
  ['test/unit/fixture.ts', '../../training/npy'],
  ['bench/fixture.ts', '../local/workflow'],
  ['bin/fixture.ts', '../lib/app'],
];

// ESLint loads eslint.config.mjs with import(), which jest's module sandbox refuses (without
// --experimental-vm-modules): the ESLint Node API runs in a child Node process instead, once for every row.
const LINT_TEXTS = `
const { ESLint } = require('eslint');
(async () => {
  const cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
  const eslint = new ESLint({ cwd: process.cwd() });
  const out = [];
  for (const { filePath, code } of cases) {
    const [result] = await eslint.lintText(code, { filePath });
    out.push(result.messages.map(({ ruleId, severity, message }) => ({ ruleId, severity, message })));
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
`;

interface Problem {
  readonly ruleId: string | null;
  readonly severity: number;
  readonly message: string;
}

const importOf = (specifier: string) => `import * as m from '${specifier}';\nexport default m;\n`;

const VIA = [
  ['an export ... from', `export * from '../lib/config';\n`, 'no-restricted-imports', CORE],
  [
    'a type-only import',
    `import type { X } from '../lib/config';\nexport type Y = X;\n`,
    'no-restricted-imports',
    CORE,
  ],
  ['a dynamic import()', `export const m = import('../lib/config');\n`, 'no-restricted-syntax', STATIC],
  ['a require() of a project file', `export const m = require('../lib/config');\n`, 'no-restricted-syntax', STATIC],
] as const;

/** Dynamic imports within the folder, and of packages, stay allowed. */
const DYNAMIC_ALLOWED = [
  `export const m = import('./errors');\n`,
  `export const m = import('zod');\n`,
  `// eslint-disable-next-line @typescript-eslint/no-require-imports\nexport const m = require('./errors');\n`,
];

const CASES = [
  ...FORBIDDEN.map(([filePath, specifier]) => ({ filePath, code: importOf(specifier) })),
  ...ALLOWED.map(([filePath, specifier]) => ({ filePath, code: importOf(specifier) })),
  ...VIA.map(([, code]) => ({ filePath: 'core/fixture.ts', code })),
  ...DYNAMIC_ALLOWED.map((code) => ({ filePath: 'core/fixture.ts', code })),
];

let linted: Map<string, Problem[]>;

beforeAll(() => {
  const r = spawnSync(process.execPath, ['-e', LINT_TEXTS], {
    cwd: PACKAGE_ROOT,
    input: JSON.stringify(CASES),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`ESLint failed (${r.status}): ${r.stderr}`);
  const results = JSON.parse(r.stdout) as Problem[][];
  linted = new Map(CASES.map((c, i) => [`${c.filePath}\n${c.code}`, results[i]!]));
});

/** The problems ESLint reported for `code` in `filePath`, as `error|warning ruleId: message`. */
function problems(filePath: string, code: string): string[] {
  const found = linted.get(`${filePath}\n${code}`);
  if (!found) throw new Error(`not linted: ${filePath}: ${code}`);
  return found.map((p) => `${p.severity === 2 ? 'error' : 'warning'} ${p.ruleId}: ${p.message}`);
}

describe('lint: allowed imports between the project folders', () => {
  it.each(FORBIDDEN)('%s may not import %s', (file, specifier, allowed) => {
    // Assess: exactly one error, from the boundary rule, saying what is allowed.
    expect(problems(file, importOf(specifier))).toEqual([
      expect.stringMatching(new RegExp(`^error no-restricted-imports: .*${escapeRegExp(allowed)}`)),
    ]);
  });

  it.each(ALLOWED)('%s may import %s', (file, specifier) => {
    // Assess
    expect(problems(file, importOf(specifier))).toEqual([]);
  });

  it.each(VIA)('core/ may not reach lib/ through %s either', (_how, code, ruleId, allowed) => {
    // Assess
    const boundary = problems('core/fixture.ts', code).filter((p) => p.startsWith(`error ${ruleId}: `));
    expect(boundary).toEqual([expect.stringContaining(allowed)]);
  });

  it.each(DYNAMIC_ALLOWED)('core/ may load its own files and packages dynamically: %s', (code) => {
    // Assess
    expect(problems('core/fixture.ts', code)).toEqual([]);
  });
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
