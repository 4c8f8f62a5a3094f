import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ENV, FUNCTIONS, MODELS } from '../../../core/contract';
import { PACKAGE_ROOT } from '../../../core/paths';

/** `KEY=value` pairs of each `ENV` instruction of a Dockerfile stage (continuation lines joined). */
function dockerfileEnv(stage: string): Record<string, string> {
  const text = readFileSync(path.join(PACKAGE_ROOT, 'gpu-tasks/feature-extractor/Dockerfile'), 'utf8');
  const body = text.split(/^FROM /m).find((s) => new RegExp(`\\bAS ${stage}\\s*$`, 'm').test(s.split('\n')[0]!));
  if (!body) throw new Error(`no stage ${stage}`);
  const env: Record<string, string> = {};
  for (const m of body.replace(/\\\n/g, ' ').matchAll(/^ENV (.+)$/gm)) {
    for (const pair of m[1]!.trim().split(/\s+/)) {
      const [k, v] = pair.split('=');
      if (k && v !== undefined) env[k] = v;
    }
  }
  return env;
}

describe('the contract of names', () => {
  it.each(['runtime', 'runtime-cpu'])(
    'the extractor image (%s) points MODELS_DIR at MODELS.containerDir and sets its own variables',
    (stage) => {
      // Act
      const env = dockerfileEnv(stage);
      // Assess: the Dockerfile cannot import the contract, so this ties the two.
      expect(env[ENV.modelsDir]).toBe(MODELS.containerDir);
      expect(env[ENV.ffmpegPath]).toBeDefined();
      expect(env[ENV.onnxExecutionProvider]).toMatch(/^(auto|cpu)$/);
    },
  );

  it('every function has its handler in lambdas/<folder>/handler.ts', () => {
    // Assess
    for (const fn of Object.values(FUNCTIONS)) {
      expect(existsSync(path.join(PACKAGE_ROOT, 'lambdas', fn.folder, 'handler.ts'))).toBe(true);
    }
  });

  it('expert function ids are recognised as such, and no other function id is', () => {
    // Prepare
    const others = [FUNCTIONS.validate, FUNCTIONS.finalize, FUNCTIONS.recordFailure, FUNCTIONS.startExecution];
    // Assess
    expect(FUNCTIONS.expert.id('lung-severity')).toBe('ExpertLungSeverity');
    expect(FUNCTIONS.expert.isId(FUNCTIONS.expert.id('diagnosis'))).toBe(true);
    for (const fn of others) expect(FUNCTIONS.expert.isId(fn.id)).toBe(false);
  });
});
