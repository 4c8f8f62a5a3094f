#!/usr/bin/env node
/** CDK app entry (cdk.json: `npx tsx bin/app.ts`). */
import { buildApp } from '../lib/app';

buildApp().app.synth();
