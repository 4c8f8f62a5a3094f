/**
 * The report's charts, drawn to SVG strings by Apache ECharts' server-side renderer
 * (no DOM, no browser, no script in the page): the same code runs in the CLI and in
 * a Lambda. Every chart names both axes, so a printed page stays readable.
 */
import * as echarts from 'echarts';
import { FRAME_THRESHOLD } from '../biomarkers';
import { MODALITY_LABELS } from '../modality';
import type { FeaturesDocument } from '../schemas';

// A calm palette that stays distinct in grayscale print (luminance steps) and for common colour-vision deficiencies.
const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9'];
const TEXT = { color: '#222', fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', fontSize: 12 };

function renderSvg(option: echarts.EChartsOption, width: number, height: number): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    // Animation off: SSR renders the final frame only; aria adds a text description for screen readers.
    chart.setOption({ animation: false, aria: { enabled: true }, color: PALETTE, textStyle: TEXT, ...option });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

export const humanBiomarker = (b: string): string => b.replace(/_/g, ' ');

/**
 * Every biomarker's per-frame probability against the clip's time axis: the decoded
 * frame index of each sampled frame, or seconds when the frame rate is known (the
 * features document records frames, not time; the sidecar may carry the rate).
 */
export function timelineSvg(doc: FeaturesDocument, frameRate?: number): string {
  const x = doc.sampling.frameIndices.map((i) => (frameRate ? i / frameRate : i));
  const labels = MODALITY_LABELS[doc.modality];
  const xName = frameRate ? 'time (s)' : 'decoded frame';
  const last = frameRate ? (doc.sampling.decodedFrames - 1) / frameRate : doc.sampling.decodedFrames - 1;
  return renderSvg(
    {
      title: { text: 'Biomarker probability per sampled frame', left: 8, textStyle: { ...TEXT, fontSize: 14 } },
      // A vertical legend beside the plot: the server measures text with its own font metrics, and a
      // horizontal row of long names would overlap in the reader's (usually wider) font.
      legend: { orient: 'vertical', left: 600, top: 'middle', data: labels.map(humanBiomarker), textStyle: TEXT },
      grid: { left: 56, right: 210, top: 40, bottom: 48 },
      xAxis: {
        type: 'value',
        name: xName,
        nameLocation: 'middle',
        nameGap: 28,
        min: 0,
        max: Math.max(last, 1e-9),
        axisLabel: { formatter: (v: number) => (frameRate ? v.toFixed(1) : String(Math.round(v))) },
      },
      yAxis: { type: 'value', name: 'probability', nameLocation: 'middle', nameGap: 38, min: 0, max: 1 },
      series: labels.map((b, k) => ({
        type: 'line',
        name: humanBiomarker(b),
        showSymbol: x.length <= 24,
        symbolSize: 4,
        lineStyle: { width: 1.6, type: k % 2 === 0 ? 'solid' : 'dashed' },
        data: (doc.frames[b] ?? []).map((p, i) => [x[i], round3(p)]),
        ...(k === 0
          ? {
              markLine: {
                silent: true,
                symbol: 'none',
                lineStyle: { color: '#888', type: 'dotted' },
                label: { formatter: `threshold ${FRAME_THRESHOLD}`, position: 'insideEndTop', color: '#555' },
                data: [{ yAxis: FRAME_THRESHOLD }],
              },
            }
          : {}),
      })),
    },
    800,
    340,
  );
}

export interface BarChart {
  readonly title: string;
  readonly categories: readonly string[];
  readonly values: readonly number[];
  readonly xName: string;
  readonly yName: string;
  /** Upper end of the value axis (1 for probabilities); default: the data's. */
  readonly max?: number;
  /** How a value is written on its bar. */
  readonly format?: (v: number) => string;
  /** Slant the category labels (many or long categories, e.g. histogram bins). */
  readonly rotateLabels?: boolean;
}

/** Vertical bars: an expert's probability per class, or a cohort's count per class. */
export function barSvg(c: BarChart, width = 360, height = 240): string {
  const format = c.format ?? ((v: number) => String(v));
  return renderSvg(
    {
      title: { text: c.title, left: 'center', textStyle: { ...TEXT, fontSize: 13 } },
      // Room above the plot for the value labels of the tallest bar, below the title.
      grid: { left: 52, right: 16, top: 56, bottom: c.rotateLabels ? 64 : 48 },
      xAxis: {
        type: 'category',
        name: c.xName,
        nameLocation: 'middle',
        nameGap: c.rotateLabels ? 50 : 30,
        data: [...c.categories],
        axisLabel: { interval: 0, rotate: c.rotateLabels ? 45 : 0 },
      },
      yAxis: {
        type: 'value',
        name: c.yName,
        nameLocation: 'middle',
        nameGap: 36,
        min: 0,
        ...(c.max !== undefined ? { max: c.max } : { minInterval: 1 }),
      },
      series: [
        {
          type: 'bar',
          name: c.yName,
          data: c.values.map((v) => round3(v)),
          barMaxWidth: 48,
          label: { show: true, position: 'top', formatter: (p: { value: unknown }) => format(Number(p.value)) },
        },
      ],
    },
    width,
    height,
  );
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}
