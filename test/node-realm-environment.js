/**
 * Jest's node environment runs tests in a separate V8 realm with its own typed-array
 * constructors, but native addons (onnxruntime-node) and Node's Buffer create typed
 * arrays in the main realm, so `instanceof Float32Array` checks fail inside tests
 * ("A float32 tensor's data must be type of function Float32Array()"). Sharing the
 * main realm's constructors makes tests see what production code sees.
 */
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

class NodeRealmEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = NodeRealmEnvironment;
