/**
 * Environment variables, read once at module load by the modules that need
 * them and failing fast with the variable's name.
 */
import type { z } from 'zod';
import { ConfigError } from './errors';
import { formatZodIssues } from './zod-parse';

export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new ConfigError(`Environment variable ${name} is required but not set.`);
  }
  return value;
}

export function optionalEnv(name: string, fallback: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  return value === undefined || value === '' ? fallback : value;
}

/**
 * A required environment variable holding JSON, parsed and checked against `schema`;
 * a ConfigError names the variable and each bad field (values are not echoed).
 */
export function jsonEnv<T extends z.ZodTypeAny>(
  name: string,
  schema: T,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<T> {
  const raw = requireEnv(name, env);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ConfigError(`Environment variable ${name} is not valid JSON.`);
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data as z.infer<T>;
  throw new ConfigError(`Environment variable ${name} is invalid: ${formatZodIssues(parsed.error)}`);
}

/** Names of every environment variable the handlers and the extractor read. */
export const ENV = {
  resultsTable: 'RESULTS_TABLE',
  artifactsBucket: 'ARTIFACTS_BUCKET',
  modelsDir: 'MODELS_DIR',
  maxUploadBytes: 'MAX_UPLOAD_BYTES',
  /** Finalize: this deployment's ScanRates (core/pricing.ts) as JSON, for the usage record's cost estimate. */
  scanRates: 'SCAN_RATES',
} as const;
