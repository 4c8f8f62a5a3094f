/**
 * A training step cannot run here, or a step it runs failed: the Python recipe lacks its
 * packages, an earlier step's output is missing or unfinished, a child process exited non-zero.
 * The message says what to install, run or wait for.
 */
export class TrainingSetupError extends Error {
  override readonly name = 'TrainingSetupError';
}
