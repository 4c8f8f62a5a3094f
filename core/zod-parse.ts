import type { z } from 'zod';
import { PayloadError } from './errors';

/**
 * The one rendering of zod issues in sonomark's messages: `path: message` for the
 * first `max` issues, `(root)` for the value itself, joined by `; `. Values are
 * never echoed (they can be object keys, and keys can name patients).
 */
export function formatZodIssues(error: z.ZodError, max = 5): string {
  return error.issues
    .slice(0, max)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Parses a payload, turning zod's issues into one readable PayloadError naming each bad field. */
export function parsePayload<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data as z.infer<T>;
  throw new PayloadError(`Invalid ${what}: ${formatZodIssues(result.error)}`);
}
