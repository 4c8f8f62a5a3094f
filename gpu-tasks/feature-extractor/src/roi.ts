/**
 * Preprocessing `roi-1` (core/schemas.ts Preprocessing): finding the ultrasound image region of a
 * clip, the mask around it, and the intensity normalisation. Pure functions over gray frames; the
 * decoder (decode.ts) runs ffmpeg around them.
 *
 * Why: the network should see the scan, not the scanner. A pillar-boxed copy of a healthy clip used to
 * score as pneumonia because the black bars shrank the scan inside the square; overlays (text, depth
 * scale, logos) and another device's gain are other shortcuts a small model takes.
 *
 * The region: pixels that change over time (speckle moves with breathing and the probe; text, scales
 * and borders do not), or, for a still or a frozen clip, pixels above a dark floor; closed by a small
 * disc, its largest connected component, holes filled. Its bounding box is cropped (in the source's
 * own pixels, by ffmpeg) and fitted into the square; everything outside the component is set to 0.
 * Intensities inside the mask are stretched so that their 0.5th and 99.5th percentiles over the clip
 * become 0 and 255 (gain and dynamic-range differences between devices and presets).
 */

/** Side of the square the region is searched in (the clip fitted into it, aspect kept). */
export const ROI_ANALYSIS_SIZE = 512;
/** A pixel whose grey level spans at least this over the clip is part of the moving image. */
export const ROI_MOTION_RANGE = 8;
/** For stills (or when too little moves): a pixel whose mean is above this belongs to the image. */
export const ROI_FLOOR = 20;
/** The moving part must cover at least this fraction of the picture, else the floor rule is used. */
export const ROI_MIN_FRACTION = 0.02;
/** Closing radius, as a fraction of the analysis side: joins the speckle into one region. */
export const ROI_CLOSE_FRACTION = 1 / 96;
/** Percentiles mapped to 0 and 255 by the intensity normalisation. */
export const ROI_PERCENTILES = [0.005, 0.995] as const;
/** Below this spread (grey levels) the clip is not stretched: it would only amplify noise. */
export const ROI_MIN_SPREAD = 24;

/**
 * Running per-pixel statistics of a clip's frames at analysis size. `roi-1` needs the minimum, maximum and
 * sum; `trim-1` only the maximum, and keeping only that cuts the pass's own CPU time by about two thirds
 * (every frame of the clip goes through this loop at 512 px, on the critical path of a cold start).
 */
export class FrameStats {
  readonly min: Uint8Array;
  readonly max: Uint8Array;
  readonly sum: Float64Array;
  count = 0;

  constructor(
    readonly width: number,
    readonly height: number,
    readonly kept: 'all' | 'max' = 'all',
  ) {
    const n = width * height;
    const all = kept === 'all';
    this.min = new Uint8Array(all ? n : 0).fill(255);
    this.max = new Uint8Array(n);
    this.sum = new Float64Array(all ? n : 0);
  }

  add(data: Uint8Array): void {
    const { min, max, sum } = this;
    if (this.kept === 'max') {
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v > max[i]!) max[i] = v;
      }
    } else {
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v < min[i]!) min[i] = v;
        if (v > max[i]!) max[i] = v;
        sum[i]! += v;
      }
    }
    this.count++;
  }
}

export interface Region {
  /** Bounding box in analysis pixels: [x0, x1) × [y0, y1). */
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  /** The analysis picture's size. */
  readonly width: number;
  readonly height: number;
  /** 1 inside the image region, at analysis size (width × height). */
  readonly mask: Uint8Array;
  /**
   * Which rule found it: moving pixels, the floor (stills), or nothing usable (the whole picture);
   * `content` is trim-1's box (findContentBox), which has no mask.
   */
  readonly rule: 'motion' | 'floor' | 'whole' | 'content';
}

/** Separable box maximum (dilate) or minimum (erode) of a 0/1 image with radius r. */
function boxFilter(src: Uint8Array, w: number, h: number, r: number, dilate: boolean): Uint8Array {
  const tmp = new Uint8Array(src.length);
  const out = new Uint8Array(src.length);
  const pass = (a: Uint8Array, b: Uint8Array, len: number, lines: number, stride: number, step: number) => {
    for (let l = 0; l < lines; l++) {
      const base = l * stride;
      // Prefix counts of ones along the line make every window O(1).
      const pre = new Int32Array(len + 1);
      for (let i = 0; i < len; i++) pre[i + 1] = pre[i]! + a[base + i * step]!;
      for (let i = 0; i < len; i++) {
        const lo = Math.max(0, i - r);
        const hi = Math.min(len - 1, i + r);
        const ones = pre[hi + 1]! - pre[lo]!;
        // Outside the picture counts as 0: erosion shrinks away from the edge, as it should for a fan.
        b[base + i * step] = dilate ? (ones > 0 ? 1 : 0) : ones === 2 * r + 1 ? 1 : 0;
      }
    }
  };
  pass(src, tmp, w, h, w, 1);
  pass(tmp, out, h, w, 1, w);
  return out;
}

/** The largest 8-connected component of a 0/1 image, with its holes filled; null when empty. */
function largestComponent(bin: Uint8Array, w: number, h: number): Uint8Array | null {
  const label = new Int32Array(bin.length);
  const queue = new Int32Array(bin.length);
  let best = 0;
  let bestSize = 0;
  let next = 0;
  for (let s = 0; s < bin.length; s++) {
    if (!bin[s] || label[s]) continue;
    next++;
    let head = 0;
    let tail = 0;
    queue[tail++] = s;
    label[s] = next;
    while (head < tail) {
      const p = queue[head++]!;
      const x = p % w;
      const y = (p - x) / w;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          const q = yy * w + xx;
          if (bin[q] && !label[q]) {
            label[q] = next;
            queue[tail++] = q;
          }
        }
      }
    }
    if (tail > bestSize) {
      bestSize = tail;
      best = next;
    }
  }
  if (best === 0) return null;
  // Fill holes: whatever the border cannot reach without crossing the component is inside it.
  const outside = new Uint8Array(bin.length);
  let head = 0;
  let tail = 0;
  const seed = (q: number) => {
    if (label[q] !== best && !outside[q]) {
      outside[q] = 1;
      queue[tail++] = q;
    }
  };
  for (let x = 0; x < w; x++) {
    seed(x);
    seed((h - 1) * w + x);
  }
  for (let y = 0; y < h; y++) {
    seed(y * w);
    seed(y * w + w - 1);
  }
  while (head < tail) {
    const p = queue[head++]!;
    const x = p % w;
    const y = (p - x) / w;
    if (x > 0) seed(p - 1);
    if (x < w - 1) seed(p + 1);
    if (y > 0) seed(p - w);
    if (y < h - 1) seed(p + w);
  }
  const mask = new Uint8Array(bin.length);
  for (let i = 0; i < mask.length; i++) mask[i] = outside[i] ? 0 : 1;
  return mask;
}

/** The image region of a clip from its per-pixel statistics (see the file comment). */
export function findRegion(stats: FrameStats): Region {
  if (stats.kept !== 'all') throw new Error('findRegion needs the minimum and sum: FrameStats kept only the maximum.');
  const { width: w, height: h, count } = stats;
  const n = w * h;
  const whole = (): Region => ({
    x0: 0,
    y0: 0,
    x1: w,
    y1: h,
    width: w,
    height: h,
    mask: new Uint8Array(n).fill(1),
    rule: 'whole',
  });
  if (count === 0) return whole();
  const r = Math.max(1, Math.round(Math.max(w, h) * ROI_CLOSE_FRACTION));
  const attempt = (bin: Uint8Array, rule: Region['rule']): Region | null => {
    let on = 0;
    for (let i = 0; i < n; i++) on += bin[i]!;
    if (on < ROI_MIN_FRACTION * n) return null;
    const closed = boxFilter(boxFilter(bin, w, h, r, true), w, h, r, false);
    const mask = largestComponent(closed, w, h);
    if (!mask) return null;
    let x0 = w;
    let y0 = h;
    let x1 = 0;
    let y1 = 0;
    let area = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!mask[y * w + x]) continue;
        area++;
        if (x < x0) x0 = x;
        if (x >= x1) x1 = x + 1;
        if (y < y0) y0 = y;
        if (y >= y1) y1 = y + 1;
      }
    }
    if (area < ROI_MIN_FRACTION * n) return null;
    return { x0, y0, x1, y1, width: w, height: h, mask, rule };
  };
  if (count >= 2) {
    const moving = new Uint8Array(n);
    for (let i = 0; i < n; i++) moving[i] = stats.max[i]! - stats.min[i]! >= ROI_MOTION_RANGE ? 1 : 0;
    const found = attempt(moving, 'motion');
    if (found) return found;
  }
  const bright = new Uint8Array(n);
  for (let i = 0; i < n; i++) bright[i] = stats.sum[i]! / count > ROI_FLOOR ? 1 : 0;
  return attempt(bright, 'floor') ?? whole();
}

/**
 * Preprocessing `trim-1`: a grey level a pixel must reach in some frame to count as picture, not border.
 * Black bars added by a re-encoding or an archive (pillar-box, letterbox, uneven padding) are 0 after the
 * decoder's full-range conversion, or a few levels above it where a codec rings at their edge.
 */
export const TRIM_LEVEL = 24;
/** A row or column is picture when at least this fraction of its pixels (and two) reach TRIM_LEVEL in some frame. */
export const TRIM_MIN_FRACTION = 0.01;

/**
 * `trim-1`'s region: the bounding box of the rows and columns that hold picture in any frame (per-pixel
 * maximum over the clip ≥ TRIM_LEVEL on at least TRIM_MIN_FRACTION of the line), with no mask. Black
 * borders around a clip, whatever their width, fall outside it, so the box of a pillar-boxed or padded copy
 * is the box of the original; everything inside (the scan, and any text or scale beside it) is kept as the
 * letterbox preprocessing keeps it. Nothing above the level anywhere: the whole picture.
 */
export function findContentBox(stats: FrameStats): Region {
  const { width: w, height: h } = stats;
  const rows = new Int32Array(h);
  const cols = new Int32Array(w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (stats.max[y * w + x]! >= TRIM_LEVEL) {
        rows[y]!++;
        cols[x]!++;
      }
    }
  }
  const rowOn = Math.max(2, Math.ceil(TRIM_MIN_FRACTION * w));
  const colOn = Math.max(2, Math.ceil(TRIM_MIN_FRACTION * h));
  const first = (a: Int32Array, on: number) => a.findIndex((c) => c >= on);
  const last = (a: Int32Array, on: number) => {
    for (let i = a.length - 1; i >= 0; i--) if (a[i]! >= on) return i;
    return -1;
  };
  const y0 = first(rows, rowOn);
  const x0 = first(cols, colOn);
  const mask = new Uint8Array(w * h).fill(1);
  if (stats.count === 0 || y0 < 0 || x0 < 0)
    return { x0: 0, y0: 0, x1: w, y1: h, width: w, height: h, mask, rule: 'whole' };
  return { x0, y0, x1: last(cols, colOn) + 1, y1: last(rows, rowOn) + 1, width: w, height: h, mask, rule: 'content' };
}

/** The region's crop as fractions of the picture, for ffmpeg's crop filter (source pixels = fraction × iw/ih). */
export function cropFractions(region: Region): { x: number; y: number; w: number; h: number } {
  return {
    x: region.x0 / region.width,
    y: region.y0 / region.height,
    w: (region.x1 - region.x0) / region.width,
    h: (region.y1 - region.y0) / region.height,
  };
}

/**
 * The mask at output size: `frameW × frameH` is the cropped region as fitted into the size×size square
 * (centred across, against the top edge, as the decoder places roi-1 frames); each output pixel reads the analysis mask at its centre.
 */
export function outputMask(region: Region, size: number, frameW: number, frameH: number): Uint8Array {
  const out = new Uint8Array(size * size);
  const ox = Math.floor((size - frameW) / 2);
  const oy = 0;
  const bw = region.x1 - region.x0;
  const bh = region.y1 - region.y0;
  for (let v = 0; v < frameH; v++) {
    const y = Math.min(region.y1 - 1, region.y0 + Math.floor(((v + 0.5) / frameH) * bh));
    for (let u = 0; u < frameW; u++) {
      const x = Math.min(region.x1 - 1, region.x0 + Math.floor(((u + 0.5) / frameW) * bw));
      out[(oy + v) * size + ox + u] = region.mask[y * region.width + x]!;
    }
  }
  return out;
}

/**
 * Masks and normalises [count, size, size] frames in place: outside the mask 0; inside, the clip's
 * ROI_PERCENTILES of the masked pixels stretched to 0..255 (skipped below ROI_MIN_SPREAD).
 */
export function maskAndNormalise(bytes: Uint8Array, size: number, mask: Uint8Array): void {
  const frame = size * size;
  const count = bytes.length / frame;
  const hist = new Float64Array(256);
  for (let f = 0; f < count; f++) {
    const base = f * frame;
    for (let i = 0; i < frame; i++) if (mask[i]) hist[bytes[base + i]!]!++;
  }
  let total = 0;
  for (const c of hist) total += c;
  const quantile = (q: number) => {
    let acc = 0;
    for (let v = 0; v < 256; v++) {
      acc += hist[v]!;
      if (acc >= q * total) return v;
    }
    return 255;
  };
  const lo = total > 0 ? quantile(ROI_PERCENTILES[0]) : 0;
  const hi = total > 0 ? quantile(ROI_PERCENTILES[1]) : 255;
  const stretch = hi - lo >= ROI_MIN_SPREAD;
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    lut[v] = stretch ? Math.max(0, Math.min(255, Math.round(((v - lo) * 255) / (hi - lo)))) : v;
  }
  for (let f = 0; f < count; f++) {
    const base = f * frame;
    for (let i = 0; i < frame; i++) bytes[base + i] = mask[i] ? lut[bytes[base + i]!]! : 0;
  }
}
