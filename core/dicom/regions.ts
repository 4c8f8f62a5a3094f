/**
 * Sequence of Ultrasound Regions (0018,6011), PS3.3 C.8.5.5: where on the frame the
 * scanner drew each part of its display. sonomark crops to the B-mode region so the
 * network sees tissue only, never the burned-in annotations (names, dates, settings)
 * around it.
 */

/** Inclusive pixel bounds, as the standard gives them (Min X0/Y0, Max X1/Y1). */
export interface PixelRegion {
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
}

export interface UltrasoundRegion extends PixelRegion {
  /** Region Spatial Format (0018,6012): 1 = 2D (tissue or flow). */
  readonly spatialFormat: number;
  /** Region Data Type (0018,6014): 1 = tissue, 2 = colour flow, 3 = PW spectral Doppler, ... */
  readonly dataType: number;
}

export const SPATIAL_FORMAT_2D = 1;
export const DATA_TYPE_TISSUE = 1;

export function readUltrasoundRegions(sequence: unknown): UltrasoundRegion[] {
  const items = Array.isArray(sequence) ? sequence : sequence && typeof sequence === 'object' ? [sequence] : [];
  const out: UltrasoundRegion[] = [];
  for (const item of items as Record<string, unknown>[]) {
    const n = (k: string): number | undefined => {
      const v = Array.isArray(item[k]) ? (item[k] as unknown[])[0] : item[k];
      const x = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
      return Number.isInteger(x) ? x : undefined;
    };
    const x0 = n('RegionLocationMinX0');
    const y0 = n('RegionLocationMinY0');
    const x1 = n('RegionLocationMaxX1');
    const y1 = n('RegionLocationMaxY1');
    if (x0 === undefined || y0 === undefined || x1 === undefined || y1 === undefined) continue;
    out.push({ x0, y0, x1, y1, spatialFormat: n('RegionSpatialFormat') ?? 0, dataType: n('RegionDataType') ?? 0 });
  }
  return out;
}

/**
 * The region to crop to: the largest 2D tissue (B-mode) region; failing that the largest
 * 2D region (a colour-flow box drawn over the B-mode image); clamped to the image. Undefined
 * when there is none or it is degenerate (the whole frame is used then).
 */
export function chooseBModeRegion(
  regions: readonly UltrasoundRegion[],
  columns: number,
  rows: number,
): PixelRegion | undefined {
  const clamp = (r: PixelRegion): PixelRegion | undefined => {
    const c = {
      x0: Math.max(0, r.x0),
      y0: Math.max(0, r.y0),
      x1: Math.min(columns - 1, r.x1),
      y1: Math.min(rows - 1, r.y1),
    };
    // Too small to hold an image (and x1 < x0 is a broken header): use the whole frame.
    return c.x1 - c.x0 + 1 >= 8 && c.y1 - c.y0 + 1 >= 8 ? c : undefined;
  };
  const area = (r: PixelRegion) => (r.x1 - r.x0 + 1) * (r.y1 - r.y0 + 1);
  const largest = (list: readonly UltrasoundRegion[]) =>
    list
      .map(clamp)
      .filter((r): r is PixelRegion => r !== undefined)
      .sort((a, b) => area(b) - area(a))[0];
  const twoD = regions.filter((r) => r.spatialFormat === SPATIAL_FORMAT_2D);
  const region = largest(twoD.filter((r) => r.dataType === DATA_TYPE_TISSUE)) ?? largest(twoD);
  // A region covering the whole frame crops nothing.
  if (region && region.x0 === 0 && region.y0 === 0 && region.x1 === columns - 1 && region.y1 === rows - 1) {
    return undefined;
  }
  return region;
}
