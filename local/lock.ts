/**
 * One process per data directory. s3rver and dynalite keep their data in files that two
 * processes cannot share (the second one's close pulled the database from under the
 * first: "Database is closed"), so `sonomark analyze --data-dir D` takes D/.sonomark.lock,
 * created atomically (O_EXCL) with the owner's pid. A lock whose pid is no longer alive
 * (the owner was killed) is stale and taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';

export const LOCK_FILE = '.sonomark.lock';

/** Another live process holds the data directory. */
export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `The data directory ${dataDir} is in use by another sonomark process (pid ${pid}). ` +
        'Wait for it to finish, stop it, or use another --data-dir.',
    );
  }
}

export interface DataDirLock {
  readonly file: string;
  /** Removes the lock file if it is still this process's. Idempotent. */
  release(): void;
}

/** Whether a process with this pid exists (EPERM: it does, owned by another user). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the data directory's lock, or throws DataDirLockedError naming the holder's pid. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  // The services create it anyway; the lock must exist before they open anything there.
  mkdirSync(dataDir, { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = readOwner(file);
      // This very process counts too: two workflows in one process would share the files as badly.
      if (owner !== undefined && pidAlive(owner)) {
        throw new DataDirLockedError(dataDir, owner);
      }
      // Stale (its process is gone), or half-written by a process that died creating it.
      // A file without a pid may be one being written right now: only after a retry is it stale.
      if (owner === undefined && attempt === 0) continue;
      rmSync(file, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      file,
      release() {
        if (released) return;
        released = true;
        if (readOwner(file) === process.pid) rmSync(file, { force: true });
      },
    };
  }
  throw new DataDirLockedError(dataDir, readOwner(file) ?? -1);
}
