/**
 * Both lung-ultrasound collections as one training set, with the folds items.ts describes.
 */
import { loadCovidBlues } from './covid-blues';
import { assignFoldsBy, sourceClusters, type CollectionDirs, type LusItem } from './items';
import { loadPocus } from './pocus';

import { DEFAULT_FOLDS } from './pocus';

export { DEFAULT_FOLDS };

/**
 * Both collections, folds assigned as the file comment says: POCUS by source cluster (stratified by
 * diagnosis), COVID-BLUES by patient (stratified by diagnosis, "unlabelled" its own stratum).
 */
export function loadCollections(dirs: CollectionDirs, k = DEFAULT_FOLDS): LusItem[] {
  const pocus: LusItem[] = loadPocus(dirs.pocus, k);
  if (!dirs.blues) return pocus; // POCUS only: its own grouped folds, as 1.1.x trained.
  const clusters = sourceClusters(pocus);
  const pocusFolds = assignFoldsBy(
    pocus.map((i) => ({ group: clusters.get(i.source)!, stratum: i.diagnosis ?? 'unlabelled' })),
    k,
  );
  for (const it of pocus) it.fold = pocusFolds.get(clusters.get(it.source)!)!;
  const blues = loadCovidBlues(dirs.blues);
  const bluesFolds = assignFoldsBy(
    blues.map((i) => ({ group: i.group, stratum: i.diagnosis ?? 'unlabelled' })),
    k,
  );
  for (const it of blues) it.fold = bluesFolds.get(it.group)!;
  return [...pocus, ...blues];
}
