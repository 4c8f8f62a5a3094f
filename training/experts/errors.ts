/**
 * What a user must fix in the training inputs (labels file, features, options).
 * The message names the file and row, so the CLI prints it as is.
 */
export class TrainingDataError extends Error {
  override readonly name = 'TrainingDataError';
}
