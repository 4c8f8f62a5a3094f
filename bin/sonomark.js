#!/usr/bin/env node
'use strict';
// Thin launcher for the compiled CLI (npm run build, run by `npm ci` through "prepare").
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `sonomark needs Node.js 22 or newer (this is ${process.version}). Run it through npm (npx sonomark …), ` +
      'which uses the Node 22 installed in node_modules, or install Node 22.\n',
  );
  process.exit(2);
}
// V8's compile cache (Node 22.1+) keeps the parsed bytecode of the CLI's ~2,000 modules between
// runs: a cold `sonomark analyze` spends most of its CPU loading modules. Unwritable: Node skips it.
const nodeModule = require('node:module');
if (typeof nodeModule.enableCompileCache === 'function' && !process.env.NODE_COMPILE_CACHE) {
  nodeModule.enableCompileCache(require('node:path').join(__dirname, '..', '.sonomark', 'cache', 'v8'));
}
// `analyze` starts the local S3/DynamoDB worker before the CLI's own modules load (about 0.2 s),
// so its module loading overlaps theirs; unclaimed (a usage error, --help) it does not hold the process.
if (process.argv[2] === 'analyze') {
  try {
    require('../dist/local/service-host.js').prestartServiceHost();
  } catch {
    // Not built yet: reported below.
  }
}
let cli;
try {
  cli = require('../dist/cli/main.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && /cli.main/.test(String(err.message))) {
    process.stderr.write('sonomark is not built yet: run `npm run build` in the package directory.\n');
    process.exit(2);
  }
  throw err;
}
cli.main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`sonomark: ${(e && e.stack) || e}\n`);
    process.exitCode = 1;
  },
);
