import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Allowed imports between the project folders (DESIGN.md "Layout"). Each entry
 * lists the folders a file may reach by a relative import; anything else is an
 * error whose message says what is allowed. cli/, bin/, bench/ and test/ are free.
 *
 * - folder: the project folder the rule applies to.
 * - unitDepth: 1 when the whole folder is one unit; 2 when each subfolder is one
 *   (lambdas/<fn>, gpu-tasks/<task>), so one function cannot import another.
 * - root: what a specifier that climbs to the repository root may name next.
 * - siblings: for unitDepth 2, what a specifier that climbs to the folder itself
 *   (lambdas/, gpu-tasks/) may name next; the own unit is reached with './'.
 * - noCdk: runtime code, which never imports the CDK packages.
 */
const BOUNDARIES = [
  {
    folder: 'core',
    root: ['core'],
    noCdk: true,
    allowed: 'core/ imports no other project folder (packages only)',
  },
  {
    folder: 'lambdas',
    unitDepth: 2,
    root: ['core', 'lambdas/shared'],
    siblings: ['shared'],
    noCdk: true,
    allowed: "lambdas/<fn> imports only core/, lambdas/shared/ and its own folder (via './')",
  },
  {
    folder: 'gpu-tasks',
    unitDepth: 2,
    root: ['core'],
    siblings: [],
    noCdk: true,
    allowed: "gpu-tasks/<task> imports only core/ and its own folder (via './')",
  },
  {
    folder: 'lib',
    root: ['core', 'lib'],
    allowed: 'lib/ (the CDK app) imports only core/ and lib/',
  },
  {
    folder: 'local',
    root: ['core', 'lambdas', 'gpu-tasks', 'lib', 'local'],
    allowed: 'local/ imports only core/, lambdas/, gpu-tasks/, lib/ and local/ (never training/ or cli/)',
  },
  {
    folder: 'training',
    root: ['core', 'gpu-tasks', 'training'],
    allowed: 'training/ imports only core/, gpu-tasks/ (the decoder) and training/',
  },
];

/** Files nested deeper than this under a bounded folder are not checked (today's deepest: 3). */
const MAX_DEPTH = 8;

const CDK_PACKAGES = '^(aws-cdk-lib|aws-cdk|constructs|cdk-nag|@aws-cdk/[^/]+)(/.*)?$';

// A relative specifier that is not in normal form ('./../x', 'a/../b', 'a/./b') could
// climb past a rule below unseen; the rules match text, so the text must be plain.
const NOT_NORMAL = '^\\./\\.\\.?(/|$)|^(\\./|(\\.\\./)+)(?!\\.\\.?(/|$))([^/]+/)+\\.\\.?(/|$)';

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/**
 * Climbs exactly `ups` levels ('..' or '../' repeated), then names something not in
 * `allowed`; with `further`, climbing on is left to the rule for the next level up.
 */
const climbsTo = (ups, allowed, further = false) => {
  const next = [...(further ? ['\\.\\.'] : []), ...allowed.map(escape)];
  const rest = next.length > 0 ? `/(?!(${next.join('|')})(/|$))` : '/';
  return `^(\\.\\./){${ups - 1}}\\.\\.($|${rest})`;
};

/**
 * ESLint's no-restricted-imports matches the specifier as text, so each folder
 * gets one block per file depth: from core/a.ts the root is '..', from
 * core/x/a.ts it is '../..'. One block per file, since a later block's options
 * replace an earlier one's.
 */
function boundaryBlocks({ folder, unitDepth = 1, root, siblings = [], noCdk = false, allowed }) {
  const blocks = [];
  for (let depth = 1; depth <= MAX_DEPTH; depth++) {
    const patterns = [
      {
        regex: NOT_NORMAL,
        message: `Write relative imports in normal form (the boundaries are checked on the text). ${allowed}.`,
      },
      { regex: climbsTo(depth, root), message: `${allowed}.` },
    ];
    if (unitDepth === 2 && depth >= 2) {
      patterns.push({ regex: climbsTo(depth - 1, siblings, true), message: `${allowed}.` });
    }
    if (noCdk) {
      patterns.push({
        regex: CDK_PACKAGES,
        message: `Runtime code never imports the CDK (aws-cdk-lib, constructs, cdk-nag): only lib/ does. ${allowed}.`,
      });
    }
    for (const p of patterns) p.caseSensitive = true;
    blocks.push({
      files: [`${folder}/${'*/'.repeat(depth - 1)}*.ts`],
      rules: { 'no-restricted-imports': ['error', { patterns }] },
    });
  }
  // no-restricted-imports sees only static imports and exports: an import() or require() that
  // climbs out of its folder ('..') would slip past it.
  const message = `Import files outside this folder statically, so the import boundaries apply. ${allowed}.`;
  blocks.push({
    files: [`${folder}/**/*.ts`],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: 'ImportExpression[source.value=/\\.\\./]', message },
        { selector: "CallExpression[callee.name='require'][arguments.0.value=/\\.\\./]", message },
      ],
    },
  });
  return blocks;
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'cdk.out/', 'coverage/', 'scratch/', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  ...BOUNDARIES.flatMap(boundaryBlocks),
  {
    // Infra tests walk CloudFormation JSON, whose shape is the assertion itself.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
