/**
 * Paths inside the sonomark package, resolved the same way from source (ts-jest,
 * the CDK app) and from the compiled tree under dist/.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ENV, MODELS } from './contract';

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string };
      if (pkg.name === 'sonomark') return dir;
    }
    const parent = path.dirname(dir);
    // Bundled code (a Lambda under /var/task) has no package.json: it sets ENV.modelsDir and
    // never needs the package root, so importing this module must not throw there.
    if (parent === dir) return start;
    dir = parent;
  }
}

export const PACKAGE_ROOT = findPackageRoot(__dirname);
/** The package's model directory; ENV.modelsDir overrides it (a Lambda function and the container set it). */
export const DEFAULT_MODELS_DIR = path.join(PACKAGE_ROOT, MODELS.folder);

/** ENV.modelsDir when set, else the package's models/. */
export function modelsDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env[ENV.modelsDir] ?? DEFAULT_MODELS_DIR;
}
