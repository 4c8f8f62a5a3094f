/**
 * `sonomark train xray-experts`: the plan (what each expert is trained with) and the EVALUATION.md part
 * it owns (appended once, then rewritten in place between its markers, the rest of the file untouched).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  XRAY_EVALUATION_BEGIN,
  XRAY_EVALUATION_END,
  writeXrayEvaluation,
  xrayExpertsSteps,
} from '../../../training/xray-experts';
import { tempDir } from '../../helpers/temp';

describe('sonomark train xray-experts', () => {
  it('plans labels, features through the X-ray extractor, three experts on the embedding, and EVALUATION.md', () => {
    // Act
    const steps = xrayExpertsSteps({
      cxrDir: '/data/cxr',
      trainingDir: path.resolve('.sonomark/training'),
      modelsDir: path.resolve('models'),
      log: () => {},
    });

    // Assess
    expect(steps.map((s) => s.title)).toEqual([
      'X-ray labels (the CXR loader, one column per expert task)',
      'features with the X-ray extractor (the serving decoder and ONNX)',
      'expert xray-pneumonia',
      'expert xray-bacterial-viral',
      'expert xray-covid',
      'source classifier over every image (report only)',
      'the chest X-ray experts part of models/EVALUATION.md',
    ]);
    expect(steps[4]!.detail).toEqual([
      'sonomark experts train --features .sonomark/training/xray/features.jsonl --labels .sonomark/training/xray/labels.csv ' +
        '--target covid --kind binary --name xray-covid --classes 0=other-pneumonia,1=covid --positive covid ' +
        '--group-column group --fold-column fold --source-column source --blocks embedding-mean --version 1.0.0 --markdown-card --label-free-features',
    ]);
  });

  it('appends its part of EVALUATION.md once, then rewrites only that part', () => {
    // Prepare
    const dir = tempDir();
    const file = path.join(dir, 'EVALUATION.md');
    writeFileSync(file, '# Evaluation\n\nultrasound text\n');

    // Act
    writeXrayEvaluation(dir, 'first numbers');
    const once = readFileSync(file, 'utf8');
    writeXrayEvaluation(dir, 'second numbers');
    const twice = readFileSync(file, 'utf8');

    // Assess
    expect(once).toBe(
      `# Evaluation\n\nultrasound text\n\n## Chest X-ray experts\n\n${XRAY_EVALUATION_BEGIN}\n\nfirst numbers\n\n${XRAY_EVALUATION_END}\n`,
    );
    expect(twice).toBe(once.replace('first numbers', 'second numbers'));
  });
});
