/**
 * The FILE|DIR arguments of analyze, frames and features, checked before any
 * service or model starts: a path that does not exist or cannot be read is a
 * usage error (exit 2) naming the path, not a failed input minutes later.
 */
import { accessSync, constants, readdirSync, statSync, type Dirent, type Stats } from 'node:fs';
import * as path from 'node:path';
import { UsageError } from './context';

/** File name endings that a directory argument contributes; the bytes are sniffed later anyway. */
export const MEDIA_EXTENSIONS: ReadonlySet<string> = new Set([
  '.mp4',
  '.m4v',
  '.mov',
  '.avi',
  '.gif',
  '.mpeg',
  '.mpg',
  '.jpg',
  '.jpeg',
  '.png',
]);

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a path component is not a directory';
    default:
      return `cannot be read (${code ?? (e as Error).message})`;
  }
}

/**
 * The files named by `inputs`, in order; a directory contributes the media files
 * below it, sorted by name. Throws a UsageError listing every path that does not
 * exist or cannot be read, and one when no clip is found at all.
 */
export function expandInputs(inputs: readonly string[]): string[] {
  const files: string[] = [];
  const problems: string[] = [];
  const walk = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      problems.push(`${dir}: ${reason(e)}`);
      return;
    }
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (MEDIA_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) files.push(p);
    }
  };
  for (const input of inputs) {
    let st: Stats;
    try {
      st = statSync(input);
      accessSync(input, constants.R_OK);
    } catch (e) {
      problems.push(`${input}: ${reason(e)}`);
      continue;
    }
    if (st.isDirectory()) walk(input);
    else files.push(input);
  }
  if (problems.length === 1) throw new UsageError(problems[0]);
  if (problems.length > 1)
    throw new UsageError(`${problems.length} inputs cannot be read:\n  ${problems.join('\n  ')}`);
  if (files.length === 0) throw new UsageError(`No clips found in ${inputs.join(', ')}.`);
  return files;
}

/** An option naming a directory that must exist (e.g. --models-dir); undefined passes through. */
export function existingDir(dir: string | undefined, option: string): string | undefined {
  if (dir === undefined) return undefined;
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (e) {
    throw new UsageError(`${option} ${dir}: ${reason(e)}`);
  }
  if (!st.isDirectory()) throw new UsageError(`${option} ${dir}: not a directory`);
  return dir;
}

/** An option naming a file or directory that must exist and be readable (e.g. --labels). */
export function existingPath(p: string, option: string): string {
  try {
    statSync(p);
    accessSync(p, constants.R_OK);
  } catch (e) {
    throw new UsageError(`${option} ${p}: ${reason(e)}`);
  }
  return p;
}
