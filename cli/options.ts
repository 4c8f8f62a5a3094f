/** Option value parsers shared by the commands (commander argParsers: a bad value is a usage error). */
import { InvalidArgumentError } from 'commander';

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
