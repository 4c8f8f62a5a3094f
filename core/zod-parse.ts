import type { z } from 'zod';
import { PayloadError } from './errors';

/** Parses a payload, turning zod's issues into one readable PayloadError naming each bad field. */
export function parsePayload<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data as z.infer<T>;
  const issues = result.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
  throw new PayloadError(`Invalid ${what}: ${issues}`);
}
