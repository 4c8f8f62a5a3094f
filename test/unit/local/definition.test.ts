import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { definitionInputs, definitionKey, readCachedDefinition, validateDefinition } from '../../../local/definition';
import { tempDir } from '../../helpers/temp';
import { createHash } from 'node:crypto';

const workflow = {
  definition: { StartAt: 'A', States: { A: { Type: 'Pass', End: true } } },
  functions: [{ logicalId: 'Fn', path: 'SonomarkPipeline/ValidateUpload/Function/Resource' }],
  tableProperties: { KeySchema: [] },
  permissions: { functions: {}, extractJob: null, bucketPolicies: {} },
};
const digest = (w: unknown) => createHash('sha256').update(JSON.stringify(w)).digest('hex');

function writeCache(dir: string, body: Record<string, unknown>): string {
  const file = path.join(dir, 'workflow.json');
  writeFileSync(file, JSON.stringify(body));
  return file;
}

describe('the cached workflow definition', () => {
  it('is read back when its key and digest match', () => {
    // Prepare
    const file = writeCache(tempDir(), { format: 3, key: 'k', digest: digest(workflow), inputs: [], workflow });

    // Act
    const read = readCachedDefinition(file, 'k');

    // Assess
    expect(read).toEqual(workflow);
  });

  it('is validated as ASL (what is cached is not validated again at start-up)', async () => {
    // Act / Assess
    await expect(validateDefinition(workflow.definition)).resolves.toBeUndefined();
    await expect(validateDefinition({ StartAt: 'B', States: { A: { Type: 'Pass', End: true } } })).rejects.toThrow();
  });

  it('is refused when written for other inputs, edited, damaged or absent', () => {
    // Prepare
    const dir = tempDir();
    const otherKey = writeCache(dir, { format: 3, key: 'other', digest: digest(workflow), inputs: [], workflow });
    const edited = { ...workflow, definition: { StartAt: 'B', States: {} } };
    const editedFile = path.join(dir, 'edited.json');
    writeFileSync(editedFile, JSON.stringify({ format: 3, key: 'k', digest: digest(workflow), workflow: edited }));
    const damaged = path.join(dir, 'damaged.json');
    writeFileSync(damaged, '{"format":3,"key":"k"');

    // Act / Assess
    expect(readCachedDefinition(otherKey, 'k')).toBeUndefined();
    expect(readCachedDefinition(editedFile, 'k')).toBeUndefined();
    expect(readCachedDefinition(damaged, 'k')).toBeUndefined();
    expect(readCachedDefinition(path.join(dir, 'absent.json'), 'k')).toBeUndefined();
  });

  it('has a key that changes with the manifest and with the code that synthesizes it', () => {
    // Prepare
    const models = path.join(tempDir(), 'models');
    cpSync(DEFAULT_MODELS_DIR, models, { recursive: true });
    const before = definitionInputs(models);
    const manifestFile = path.join(models, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    const edit = (change: (e: any) => any) =>
      writeFileSync(manifestFile, JSON.stringify({ ...manifest, experts: manifest.experts.map(change) }));

    // Act: a new expert version (LoadExperts reads it at run time), then new sizing (in the definition's functions)
    edit((e) => ({ ...e, version: '9.9.9', sha256: 'f'.repeat(64), file: 'experts/x.onnx' }));
    const newVersion = definitionInputs(models);
    edit((e) => ({ ...e, lambda: { ...e.lambda, memoryMb: 2048 } }));
    const after = definitionInputs(models);

    // Assess
    expect(definitionKey(newVersion)).toBe(definitionKey(before));
    expect(definitionKey(after)).not.toBe(definitionKey(before));
    expect(definitionKey(definitionInputs(models))).toBe(definitionKey(after));
    const names = before.map((i) => i.name);
    for (const input of [
      'lib/app',
      'lib/stacks/pipeline-stack',
      'lib/constructs/workflow',
      'core/contract',
      'local/asl',
    ]) {
      expect(names.some((n) => n.replace(/\.(ts|js)$/, '') === input)).toBe(true);
    }
    expect(names).toEqual(expect.arrayContaining(['cdk.json', 'CDK_CONTEXT_JSON']));
    expect(names.some((n) => n.startsWith('aws-cdk-lib@'))).toBe(true);
  });
});
