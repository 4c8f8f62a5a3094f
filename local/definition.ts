/**
 * What local mode needs from the CDK app, without synthesizing it on every run:
 * the state machine's ASL (tokens substituted, asl.ts), the construct path of
 * every Lambda function its ARNs name (bindings.ts), and the results table's
 * keys and indexes. Synthesis takes 10+ s; this is read from a cache file keyed
 * by a sha256 over everything the synthesis reads — the code that runs it (lib/,
 * core/, this folder's asl/synth/definition modules, as .ts or compiled .js), the
 * CDK library versions, cdk.json, CDK_CONTEXT_JSON and the model manifest — and
 * verified on load (its key and a digest of its content). Any change to an input
 * is a new key, so a stale definition is never run; a missing or damaged file is
 * re-synthesized and rewritten. `npm run build` fills the cache for the package's
 * models (`node dist/local/definition.js`), so a fresh clone never synthesizes on
 * the hot path. test/integration/asl-parity.test.ts proves the cached definition
 * is the one `cdk synth` writes.
 *
 * A synthesized definition is validated (aws-local-stepfunctions' ASL validator) before it is
 * returned or cached, so a verified cache file holds a valid definition and local start-up does
 * not validate it again: the validator compiles its JSON schemas with ajv on every call, about
 * 0.5 s of CPU, a quarter of a cold `sonomark analyze`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MODELS } from '../core/contract';
import { ModelError } from '../core/errors';
import { DEFAULT_MODELS_DIR, PACKAGE_ROOT } from '../core/paths';
import type { LocalPermissions } from './iam-policy';

/** Bumped when the cached file's shape or meaning changes (3: only validated definitions are written). */
const FORMAT = 3;

export interface LambdaFunctionRef {
  readonly logicalId: string;
  /** aws:cdk:path metadata: names the function's role (bindings.ts roleOfConstructPath). */
  readonly path: string;
}

export interface WorkflowDefinition {
  /** The ASL the local StateMachine runs (asl.ts extractDefinition of the pipeline template). */
  readonly definition: Record<string, unknown>;
  /** Every AWS::Lambda::Function of the pipeline stack. */
  readonly functions: readonly LambdaFunctionRef[];
  /** CloudFormation properties of the results table, so the local table has the same keys and indexes. */
  readonly tableProperties: Record<string, unknown>;
  /** Each workflow role's IAM policy from the templates, resolved to local ARNs; local mode enforces it (iam-guard.ts). */
  readonly permissions: LocalPermissions;
}

interface CacheFile {
  readonly format: number;
  readonly key: string;
  /** sha256 of JSON.stringify(workflow): a truncated or edited file is caught on load. */
  readonly digest: string;
  readonly inputs: readonly { readonly name: string; readonly sha256: string }[];
  readonly workflow: WorkflowDefinition;
}

export interface DefinitionOptions {
  /** @default the package's models/ */
  readonly modelsDir?: string;
  /** @default $SONOMARK_CACHE_DIR, else <package>/.sonomark/cache */
  readonly cacheDir?: string;
  /**
   * CDK context the definition is synthesized with, over cdk.json's (e.g. `{ computeMode: 'lambda' }`:
   * Extract invokes the extractor's function). Part of the cache key. @default none
   */
  readonly context?: Record<string, unknown>;
}

export interface LoadedDefinition {
  readonly workflow: WorkflowDefinition;
  /** 'cache': read and verified; 'synth': synthesized now (and written to the cache). */
  readonly source: 'cache' | 'synth';
  readonly key: string;
  readonly file: string;
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

function codeFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...codeFiles(full));
    else if (/\.(ts|js)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function packageVersion(name: string): string {
  try {
    const file = require.resolve(`${name}/package.json`, { paths: [PACKAGE_ROOT] });
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'absent';
  }
}

/**
 * Every input of the synthesis, named and hashed. The code is the code that would run
 * here: this module's siblings and the lib/ and core/ beside them (dist/ when compiled).
 */
export function definitionInputs(modelsDir: string = DEFAULT_MODELS_DIR): { name: string; sha256: string }[] {
  const codeRoot = path.resolve(__dirname, '..');
  const code = [
    ...codeFiles(path.join(codeRoot, 'lib')),
    ...codeFiles(path.join(codeRoot, 'core')),
    ...['asl', 'synth', 'definition', 'iam-policy', 'names'].map((m) =>
      path.join(__dirname, `${m}${path.extname(__filename)}`),
    ),
  ].sort();
  const manifest = path.join(path.resolve(modelsDir), MODELS.manifestFile);
  const cdkJson = path.join(PACKAGE_ROOT, 'cdk.json');
  return [
    { name: `format ${FORMAT}`, sha256: sha256(String(FORMAT)) },
    ...code.map((f) => ({ name: path.relative(codeRoot, f), sha256: sha256(readFileSync(f)) })),
    { name: 'cdk.json', sha256: existsSync(cdkJson) ? sha256(readFileSync(cdkJson)) : 'absent' },
    { name: 'CDK_CONTEXT_JSON', sha256: sha256(process.env.CDK_CONTEXT_JSON ?? '') },
    ...['aws-cdk-lib', 'constructs'].map((p) => ({ name: `${p}@${packageVersion(p)}`, sha256: '' })),
    // The directory too: the app resolves model files under it.
    { name: `models ${path.resolve(modelsDir)}`, sha256: sha256(definingManifest(readFileSync(manifest, 'utf8'))) },
  ];
}

/**
 * The parts of the manifest the definition depends on: everything but each expert's version,
 * file, sha256 and card, which LoadExperts reads at run time. Publishing a new version of an
 * expert therefore keeps the cached definition; a new expert name or new sizing does not.
 */
function definingManifest(text: string): string {
  try {
    const m = JSON.parse(text) as { experts?: Record<string, unknown>[] };
    const experts = (m.experts ?? []).map(({ version: _v, file: _f, sha256: _s, card: _c, ...rest }) => rest);
    return JSON.stringify({ ...m, experts });
  } catch {
    return text; // not JSON: hashed as is, and the synthesis says what is wrong with it
  }
}

export function definitionKey(inputs: readonly { name: string; sha256: string }[]): string {
  return sha256(inputs.map((i) => `${i.name}\0${i.sha256}`).join('\n'));
}

function cacheDirOf(opts: DefinitionOptions): string {
  return path.resolve(opts.cacheDir ?? process.env.SONOMARK_CACHE_DIR ?? path.join(PACKAGE_ROOT, '.sonomark', 'cache'));
}

/** The verified cached definition, or undefined (absent, another key, damaged). */
export function readCachedDefinition(file: string, key: string): WorkflowDefinition | undefined {
  let parsed: CacheFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
  } catch {
    return undefined;
  }
  if (parsed?.format !== FORMAT || parsed.key !== key || !parsed.workflow) return undefined;
  if (sha256(JSON.stringify(parsed.workflow)) !== parsed.digest) return undefined;
  const w = parsed.workflow;
  if (
    typeof w.definition !== 'object' ||
    !Array.isArray(w.functions) ||
    typeof w.tableProperties !== 'object' ||
    typeof w.permissions?.functions !== 'object'
  )
    return undefined;
  return w;
}

/**
 * Throws when the definition is not valid ASL, as the local StateMachine's constructor does.
 * checkArn off: the definition's ARNs are local placeholders for deploy-time tokens. The library
 * fills in defaults (QueryLanguage) in place, so it gets its own copy (a JSON copy: structuredClone's
 * objects can come from another realm under jest, and the library's plain-object checks then skip them).
 */
export async function validateDefinition(definition: Record<string, unknown>): Promise<void> {
  const { StateMachine } = await import('aws-local-stepfunctions');
  new StateMachine(JSON.parse(JSON.stringify(definition)) as never, { validationOptions: { checkArn: false } });
}

/** Synthesizes the CDK app in-process (slow: loads aws-cdk-lib), takes out what local mode needs and validates its ASL. */
export async function synthesizeDefinition(
  modelsDir: string,
  context?: Record<string, unknown>,
): Promise<WorkflowDefinition> {
  const [{ synthesizeWorkflow }, { lambdaFunctions }] = await Promise.all([import('./synth'), import('./asl')]);
  const synthesized = synthesizeWorkflow({ modelsDir, ...(context ? { context } : {}) });
  await validateDefinition(synthesized.definition);
  return {
    definition: synthesized.definition,
    functions: lambdaFunctions(synthesized.pipelineTemplate),
    tableProperties: synthesized.tableProperties,
    permissions: synthesized.permissions,
  };
}

/** The workflow definition for this models directory: from the cache when its key matches, else synthesized. */
export async function loadWorkflowDefinition(opts: DefinitionOptions = {}): Promise<LoadedDefinition> {
  const modelsDir = path.resolve(opts.modelsDir ?? DEFAULT_MODELS_DIR);
  const inputs = [
    ...definitionInputs(modelsDir),
    ...(opts.context ? [{ name: 'context', sha256: sha256(JSON.stringify(opts.context)) }] : []),
  ];
  const key = definitionKey(inputs);
  const dir = cacheDirOf(opts);
  const file = path.join(dir, `workflow-${key.slice(0, 32)}.json`);
  const cached = readCachedDefinition(file, key);
  if (cached) return { workflow: cached, source: 'cache', key, file };

  const workflow = await synthesizeDefinition(modelsDir, opts.context);
  const body: CacheFile = { format: FORMAT, key, digest: sha256(JSON.stringify(workflow)), inputs, workflow };
  try {
    mkdirSync(dir, { recursive: true });
    // Temp file + rename: a concurrent reader (another jest worker, a second CLI) sees the old file or the whole new one.
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify(body));
    try {
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  } catch {
    // A read-only package directory costs a synthesis per run, not the run itself.
  }
  return { workflow, source: 'synth', key, file };
}

if (require.main === module) {
  // `npm run build` runs this: fill the cache for the package's models, so the first `sonomark analyze` is fast.
  loadWorkflowDefinition().then(
    ({ source, file }) =>
      process.stderr.write(
        `workflow definition ${source === 'cache' ? 'cached' : 'written'}: ${path.relative(PACKAGE_ROOT, file)}\n`,
      ),
    (err: unknown) => {
      process.stderr.write(
        `workflow definition not cached: ${err instanceof ModelError ? err.message : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
