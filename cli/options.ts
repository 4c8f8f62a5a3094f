/** Option value parsers shared by the commands (commander argParsers: a bad value is a usage error). */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_MODALITY, MODALITIES, type Modality } from '../core/modality';
import type { ModalityHint } from '../local/sidecar';

/** An integer option value no smaller than `min`. */
export function integerAtLeast(min: number): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value) || Number(value) < min) {
      throw new InvalidArgumentError(min === 0 ? 'Expected a non-negative integer.' : `Expected an integer ≥ ${min}.`);
    }
    return Number(value);
  };
}

/** A comma-separated list option value, each item trimmed (the command validates the items). */
export function list(value: string): string[] {
  return value.split(',').map((v) => v.trim());
}

/**
 * `--modality`, the one definition `sonomark analyze` and `sonomark cohort run` share: what the
 * inputs are when they do not say it themselves. A fresh Option per command (commander keeps
 * per-command state on it).
 */
export function modalityOption(): Option {
  return new Option(
    '--modality <MODALITY>',
    'what the inputs are, for those that do not say it themselves (a DICOM Modality US/CR/DX decides; ' +
      'a still image is otherwise ultrasound only by this default). Given explicitly, it goes into each ' +
      'upload\'s sidecar as "modality", and a DICOM header that says otherwise is refused (MODALITY_CONFLICT)',
  )
    .choices([...MODALITIES])
    .default(DEFAULT_MODALITY);
}

/**
 * The hint a command's `--modality` gives: the default is a weaker hint than the flag given
 * (core/modality-detect.ts), so whether the user typed it travels with the value.
 */
export function modalityHint(opts: { modality: Modality }, cmd: Command): ModalityHint {
  return { modality: opts.modality, explicit: cmd.getOptionValueSource('modality') === 'cli' };
}
