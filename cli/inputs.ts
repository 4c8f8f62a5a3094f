/**
 * The FILE|DIR arguments of analyze, frames and features, checked before any
 * service or model starts: a path that does not exist or cannot be read is a
 * usage error (exit 2) naming the path, not a failed input minutes later.
 */
import {
  accessSync,
  constants,
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  type Stats,
} from 'node:fs';
import * as path from 'node:path';
import { ACCEPTED_FORMATS, MEDIA_EXTENSIONS } from '../core/formats';
import { SIDECAR_SUFFIX } from '../core/keys';
import { localSidecar, type ModalityHint } from '../local/sidecar';
import { UsageError } from './context';

/** File name endings that a directory argument contributes (core/formats.ts); the bytes are sniffed later anyway. */
export { MEDIA_EXTENSIONS };

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

/** Files a directory argument passed over because their name ends in no accepted format's extension. */
export interface SkippedFiles {
  readonly count: number;
  /** Count per lower-case extension ('' for none), e.g. { '.txt': 3 }. */
  readonly byExtension: Readonly<Record<string, number>>;
}

/** One line for stderr: what directory mode skipped and what it takes. */
export function describeSkipped(skipped: SkippedFiles): string | undefined {
  if (skipped.count === 0) return undefined;
  const parts = Object.entries(skipped.byExtension)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([ext, n]) => `${n} ${ext || '(no extension)'}`);
  return (
    `Skipped ${skipped.count} file${skipped.count === 1 ? '' : 's'} in the given directories (${parts.join(', ')}): ` +
    `not an accepted format's extension (${[...MEDIA_EXTENSIONS].join(' ')}; ${ACCEPTED_FORMATS}). ` +
    'Name a file on the command line to have its bytes checked anyway.'
  );
}

/**
 * The files named by `inputs`, in order; a directory contributes the media files
 * below it, sorted by name, following symlinked folders (each real folder once, so a
 * link loop ends). Throws a UsageError listing every path that does not exist or
 * cannot be read, and one when no clip is found at all. `onSkipped` hears what the
 * directories held that is not taken.
 */
export function expandInputs(inputs: readonly string[], onSkipped?: (skipped: SkippedFiles) => void): string[] {
  const files: string[] = [];
  const problems: string[] = [];
  const byExtension: Record<string, number> = {};
  let skipped = 0;
  const seen = new Set<string>();
  const walk = (dir: string) => {
    let names: string[];
    try {
      const real = realpathSync(dir);
      if (seen.has(real)) return;
      seen.add(real);
      names = readdirSync(dir);
    } catch (e) {
      problems.push(`${dir}: ${reason(e)}`);
      return;
    }
    for (const name of names.sort((a, b) => a.localeCompare(b))) {
      const p = path.join(dir, name);
      let st: Stats;
      try {
        st = statSync(p); // follows symlinks: a linked folder is walked, a linked clip taken
      } catch (e) {
        problems.push(`${p}: ${reason(e)}`);
        continue;
      }
      const ext = path.extname(name).toLowerCase();
      if (st.isDirectory()) walk(p);
      else if (!st.isFile()) continue;
      else if (MEDIA_EXTENSIONS.has(ext)) files.push(p);
      // A clip's sidecar goes up with its clip (analyze): not a skipped input.
      else if (name.endsWith(SIDECAR_SUFFIX)) continue;
      else if (!name.startsWith('.')) {
        skipped++;
        byExtension[ext] = (byExtension[ext] ?? 0) + 1;
      }
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
  if (skipped > 0) onSkipped?.({ count: skipped, byExtension });
  if (files.length === 0) {
    const why = describeSkipped({ count: skipped, byExtension });
    throw new UsageError(`No clips found in ${inputs.join(', ')}.${why ? ` ${why}` : ''}`);
  }
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

/**
 * Each file's own sidecar text (FILE.meta.json beside it; undefined when there is none), checked
 * against an explicit --modality before anything starts: a file whose sidecar names another
 * modality is a usage error, listed with the others.
 */
export function userSidecars(
  files: readonly string[],
  /** One hint for every file, or each file's own (a cohort manifest's rows). */
  hint: ModalityHint | readonly (ModalityHint | undefined)[],
): (string | undefined)[] {
  const problems: string[] = [];
  const texts = files.map((file, i) => {
    const sidecar = `${file}${SIDECAR_SUFFIX}`;
    if (!existsSync(sidecar)) return undefined;
    const text = readFileSync(sidecar, 'utf8');
    const merged = localSidecar(text, Array.isArray(hint) ? (hint[i] ?? null) : (hint as ModalityHint));
    if ('conflict' in merged) problems.push(`${file}: ${merged.conflict}`);
    return text;
  });
  if (problems.length > 0) throw new UsageError(`The modality is given twice:\n  ${problems.join('\n  ')}`);
  return texts;
}
