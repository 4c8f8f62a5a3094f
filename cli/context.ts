/** What every command module gets from cli/main.ts: its output streams and how to report an exit status. */
export interface CliContext {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  /** Sets the process exit status for this run (0 ok, 1 an input failed, 2 usage). */
  exit(code: number): void;
}

/** A usage error: main prints it with the command's usage hint and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
