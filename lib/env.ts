/**
 * Environment variables, read once at module load by the modules that need
 * them and failing fast with the variable's name.
 */
import { ConfigError } from './errors';

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

/** Names of every environment variable the handlers and the extractor read. */
export const ENV = {
  resultsTable: 'RESULTS_TABLE',
  artifactsBucket: 'ARTIFACTS_BUCKET',
  modelsDir: 'MODELS_DIR',
  maxUploadBytes: 'MAX_UPLOAD_BYTES',
} as const;
