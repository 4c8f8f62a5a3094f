/**
 * Local mode runs the definition that `cdk synth` puts into the pipeline
 * template, not a copy: synthesize with the real CDK CLI (bundling and all),
 * substitute tokens, and compare with what the local StateMachine executes —
 * whether local mode synthesized it at start-up or read it from the cache
 * (local/definition.ts), which is what `sonomark analyze` normally does.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { extractDefinition, lambdaFunctions, taskStates, type CfnTemplate } from '../../local/asl';
import { loadWorkflowDefinition } from '../../local/definition';
import { LocalWorkflow } from '../../local/workflow';
import { PACKAGE_ROOT } from '../../core/paths';
import { STATE } from '../../core/contract';
import { tempDir } from './helpers';

jest.setTimeout(300_000);

function cdkSynth(stack: string, outdir: string): CfnTemplate {
  const synth = spawnSync('npx', ['--no-install', 'cdk', 'synth', '--quiet', '--output', outdir, stack], {
    cwd: PACKAGE_ROOT,
    encoding: 'utf8',
  });
  if (synth.status !== 0) throw new Error(`cdk synth failed: ${synth.stderr}`);
  return JSON.parse(readFileSync(path.join(outdir, `${stack}.template.json`), 'utf8')) as CfnTemplate;
}

describe('the ASL executed locally', () => {
  let pipeline: CfnTemplate;
  let storage: CfnTemplate;

  beforeAll(() => {
    // One `cdk synth` of the pipeline writes the storage stack it depends on too.
    const outdir = tempDir('sonomark-cdkout-');
    pipeline = cdkSynth('SonomarkPipeline', outdir);
    storage = JSON.parse(readFileSync(path.join(outdir, 'SonomarkStorage.template.json'), 'utf8')) as CfnTemplate;
  });

  it('is the definition in the template that cdk synth writes', async () => {
    // Prepare / Act
    const workflow = await LocalWorkflow.start();
    const executed = workflow.executedDefinition;
    const bound = workflow.synthesized;
    await workflow.close();

    // Assess
    expect(executed).toEqual(extractDefinition(pipeline));
    expect(bound.functions).toEqual(lambdaFunctions(pipeline));
    const tasks = taskStates(executed).map((t) => t.name);
    expect(tasks).toEqual(
      expect.arrayContaining([STATE.validate, STATE.extract, STATE.scoreExpert, STATE.finalize, STATE.recordFailure]),
    );
  });

  it('is the same whether synthesized at start-up or read back from the cache', async () => {
    // Prepare
    const cacheDir = tempDir('sonomark-definition-cache-');
    const table = Object.values(storage.Resources).find((r) => r.Type === 'AWS::DynamoDB::Table');

    // Act
    const first = await loadWorkflowDefinition({ cacheDir });
    const second = await loadWorkflowDefinition({ cacheDir });

    // Assess
    expect(first.source).toBe('synth');
    expect(second.source).toBe('cache');
    expect(second.key).toBe(first.key);
    for (const loaded of [first, second]) {
      expect(loaded.workflow.definition).toEqual(extractDefinition(pipeline));
      expect(loaded.workflow.functions).toEqual(lambdaFunctions(pipeline));
      expect(loaded.workflow.tableProperties).toEqual(table?.Properties);
    }
  });
});
