/**
 * Local mode runs the definition that `cdk synth` puts into the pipeline
 * template, not a copy: synthesize with the real CDK CLI (bundling and all),
 * substitute tokens, and compare with what the local StateMachine executes.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { extractDefinition, taskStates, type CfnTemplate } from '../../local/asl';
import { LocalWorkflow } from '../../local/workflow';
import { PACKAGE_ROOT } from '../../core/paths';
import { STATE } from '../../core/contract';
import { tempDir } from './helpers';

jest.setTimeout(300_000);

describe('the ASL executed locally', () => {
  it('is the definition in the template that cdk synth writes', async () => {
    // Prepare
    const outdir = tempDir('sonomark-cdkout-');
    const synth = spawnSync(
      'npx',
      ['--no-install', 'cdk', 'synth', '--quiet', '--output', outdir, 'SonomarkPipeline'],
      {
        cwd: PACKAGE_ROOT,
        encoding: 'utf8',
      },
    );
    if (synth.status !== 0) throw new Error(`cdk synth failed: ${synth.stderr}`);
    const template = JSON.parse(
      readFileSync(path.join(outdir, 'SonomarkPipeline.template.json'), 'utf8'),
    ) as CfnTemplate;

    // Act
    const workflow = await LocalWorkflow.start();
    const executed = workflow.executedDefinition;
    await workflow.close();

    // Assess
    expect(executed).toEqual(extractDefinition(template));
    const tasks = taskStates(executed).map((t) => t.name);
    expect(tasks).toEqual(
      expect.arrayContaining([STATE.validate, STATE.extract, STATE.scoreExpert, STATE.finalize, STATE.recordFailure]),
    );
  });
});
