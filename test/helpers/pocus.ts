/**
 * The real POCUS clips the data-driven tests read, from ../shared/data/pocus.
 * Without them those tests fail and say so; they are never skipped.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths';

export const POCUS = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus');

/** Throws unless the POCUS data set is where the tests read it: call it in a beforeAll. */
export function requirePocus(): void {
  for (const needed of ['videos', 'images', 'metadata.csv']) {
    if (!existsSync(path.join(POCUS, needed))) {
      throw new Error(
        `The POCUS data set is missing: ${path.join(POCUS, needed)} does not exist. ` +
          'These tests read real clips from ../shared/data/pocus (next to the repository); put the data set there.',
      );
    }
  }
}
