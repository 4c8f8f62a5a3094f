import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DataDirLockedError, LOCK_FILE, lockDataDir, pidAlive } from '../../../local/lock';
import { tempDir } from '../../helpers/temp';

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('lockDataDir', () => {
  it('creates the lock with this pid, refuses a second holder naming dir and pid, and releases', () => {
    // Prepare
    const dir = tempDir();
    // Act
    const lock = lockDataDir(dir);
    const second = (() => {
      try {
        lockDataDir(dir);
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    // Assess
    expect(readFileSync(path.join(dir, LOCK_FILE), 'utf8').trim()).toBe(String(process.pid));
    expect(second).toBeInstanceOf(DataDirLockedError);
    expect((second as Error).message).toBe(
      `The data directory ${dir} is in use by another sonomark process (pid ${process.pid}). ` +
        'Wait for it to finish, stop it, or use another --data-dir.',
    );
    lock.release();
    lock.release();
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it('takes over a stale lock (its pid is not alive) and an empty one (its writer died)', () => {
    // Prepare
    const dir = tempDir();
    const pid = deadPid();
    writeFileSync(path.join(dir, LOCK_FILE), `${pid}\n`);
    // Act / Assess
    expect(pidAlive(pid)).toBe(false);
    lockDataDir(dir).release();
    writeFileSync(path.join(dir, LOCK_FILE), '');
    lockDataDir(dir).release();
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it('does not remove a lock another process took after this one was released', () => {
    // Prepare
    const dir = tempDir();
    const lock = lockDataDir(dir);
    writeFileSync(path.join(dir, LOCK_FILE), '1\n'); // pid 1: alive, not ours
    // Act
    lock.release();
    // Assess
    expect(readFileSync(path.join(dir, LOCK_FILE), 'utf8')).toBe('1\n');
    expect(() => lockDataDir(dir)).toThrow(/pid 1\)/);
  });

  it('creates a data dir that does not exist yet', () => {
    // Prepare
    const dir = path.join(tempDir(), 'new', 'data');
    // Act / Assess
    lockDataDir(dir).release();
    expect(existsSync(dir)).toBe(true);
  });
});
