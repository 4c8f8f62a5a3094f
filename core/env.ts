/**
 * Reading environment variables: once, at module load, by the modules that need
 * them, failing fast with the variable's name. The names are in contract.ts (ENV).
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
