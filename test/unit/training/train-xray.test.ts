/** `sonomark train xray`: its steps, in order, with what each reads and writes (the dry run). */
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { loadManifest, writeManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { TrainingSetupError } from '../../../training/errors';
import { runSteps, xraySteps } from '../../../training/pipeline';
import { XRAY_RECIPE_SCRIPT } from '../../../training/python-recipe';
import { tempDir } from '../../helpers/temp';

let work: string;
beforeEach(() => {
  work = tempDir('sonomark-train-xray-');
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

async function plan(opts: Partial<Parameters<typeof xraySteps>[0]> = {}): Promise<string[]> {
  const printed: string[] = [];
  await runSteps(
    xraySteps({
      trainingDir: path.join(work, 'training'),
      cxrDir: '/data/cxr',
      modelsDir: DEFAULT_MODELS_DIR,
      python: '/opt/py',
      log: () => {},
      ...opts,
    }),
    { dryRun: true, log: () => {}, print: (l) => printed.push(l) },
  );
  return printed;
}

describe('train xray', () => {
  it('exports through the decoder, runs the recipe with the anchor comparison, then ships as extractors.xray', async () => {
    const x = loadManifest(DEFAULT_MODELS_DIR).manifest.extractors.xray!;
    const printed = await plan();
    expect(printed.filter((l) => /^\d+\. /.test(l))).toEqual([
      '1. the recipe has PyTorch and onnx',
      '2. chest X-ray training set (the extractor decoder, xray-1)',
      '3. X-ray recipe: group-masked SSL, frozen-encoder heads, anchor comparison, ONNX',
      `4. ship ${x.name}@${x.version} as extractors.xray`,
    ]);
    const training = path.join(work, 'training');
    expect(printed).toContain(
      `     /opt/py ${XRAY_RECIPE_SCRIPT} --data ${path.join(training, 'xray')} --out ${path.join(training, 'xray-extractor')} --anchor`,
    );
  });

  it('--quick, --skip-anchor and --ship-only change the plan', async () => {
    const quick = await plan({ quick: true, skipAnchor: true, version: '2.0.0' });
    expect(quick.join('\n')).toMatch(/--quick$/m);
    expect(quick.join('\n')).not.toContain('--anchor');
    expect(quick.join('\n')).toContain('ship sonomark-cxr-ssl@2.0.0');
    const ship = await plan({ shipOnly: true });
    expect(ship.filter((l) => /^\d+\. /.test(l))).toHaveLength(1);
  });

  it('asks for a version when the manifest has no X-ray extractor to re-ship', () => {
    const m = loadManifest(DEFAULT_MODELS_DIR).manifest;
    const models = path.join(work, 'models');
    writeManifest(models, { ...m, extractors: { ultrasound: m.extractors.ultrasound }, experts: [] });
    expect(() =>
      xraySteps({ trainingDir: work, cxrDir: '/data/cxr', modelsDir: models, python: 'py', log: () => {} }),
    ).toThrow(TrainingSetupError);
    expect(() =>
      xraySteps({ trainingDir: work, cxrDir: '/data/cxr', modelsDir: models, python: 'py', log: () => {} }),
    ).toThrow(/give --version/);
  });
});
