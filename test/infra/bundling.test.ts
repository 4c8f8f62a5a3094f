import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { loadManifest } from '../../core/manifest';
import { synth } from './helpers';

// The one test that runs esbuild for real: only the pipeline stack's first expert is checked.
test('an expert bundle ships onnxruntime-node linux/arm64 and no model (it reads models/ from the artifacts bucket)', () => {
  // Prepare
  const { manifest } = loadManifest();
  const expert = manifest.experts[0]!;
  const other = manifest.experts[1];
  // Act
  const built = synth({ bundling: true, nag: false, context: { 'aws:cdk:bundling-stacks': ['SonomarkPipeline'] } });
  const template = Template.fromStack(built.pipeline);
  const fn = Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) =>
    id.startsWith(`Expert${expert.name[0]!.toUpperCase()}${expert.name.slice(1)}`),
  )![1] as any;
  const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
  const assets = JSON.parse(readFileSync(path.join(built.outdir, `${built.pipeline.artifactId}.assets.json`), 'utf8'));
  const dir = path.join(built.outdir, assets.files[hash].source.path);
  // Assess
  expect(existsSync(path.join(dir, 'index.js'))).toBe(true);
  expect(
    existsSync(path.join(dir, 'node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node')),
  ).toBe(true);
  expect(existsSync(path.join(dir, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64'))).toBe(false);
  expect(existsSync(path.join(dir, 'node_modules/onnxruntime-node/dist'))).toBe(true);
  expect(existsSync(path.join(dir, 'node_modules/onnxruntime-common/package.json'))).toBe(true);
  // A published expert version changes no function code: neither the manifest nor any model is bundled.
  expect(existsSync(path.join(dir, 'models'))).toBe(false);
  for (const e of [expert, other]) if (e) expect(existsSync(path.join(dir, e.file))).toBe(false);
}, 120_000);
