/**
 * A small, dependency-free line chart as standalone SVG text (opens in any
 * browser): several series of points with optional min–max bars, linear or
 * logarithmic axes. Pure: options in, a string out.
 *
 * @module
 */

/** One point of a series; `low`/`high` draw a spread bar. */
export interface PlotPoint {
  /** Horizontal value. */
  x: number;
  /** Vertical value (the marker). */
  y: number;
  /** Lower end of the spread bar. */
  low?: number;
  /** Upper end of the spread bar. */
  high?: number;
}

/** A named series. */
export interface PlotSeries {
  /** Legend text. */
  name: string;
  /** Points, drawn in x order. */
  points: PlotPoint[];
}

/** Options of {@linkcode lineChartSvg}. */
export interface LineChartOptions {
  /** Title above the chart. */
  title: string;
  /** Label of the horizontal axis. */
  xLabel: string;
  /** Label of the vertical axis. */
  yLabel: string;
  /** The series. */
  series: PlotSeries[];
  /** Logarithmic horizontal axis (values must be > 0). */
  logX?: boolean;
  /** Logarithmic vertical axis (values must be > 0). */
  logY?: boolean;
  /** Formats a tick value of the horizontal axis. */
  formatX?: (value: number) => string;
  /** Formats a tick value of the vertical axis. */
  formatY?: (value: number) => string;
  /** Tick positions of the horizontal axis (default: decades on a log axis, the data's x values otherwise); they also widen the axis. */
  xTicks?: number[];
  /** Pixel width (default 720). */
  width?: number;
  /** Pixel height (default 440). */
  height?: number;
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];

/**
 * Escapes text for SVG/XML content and attributes.
 *
 * @param text Any text.
 * @returns The escaped text.
 */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;")
    .replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/**
 * Formats a number with an SI prefix (`1.5 k`, `2 M`), 3 significant digits.
 *
 * @example
 * ```ts
 * import { formatSi } from "./svg_plot.ts";
 * console.log(formatSi(2_500_000)); // 2.5 M
 * ```
 *
 * @param value The number.
 * @returns The text.
 */
export function formatSi(value: number): string {
  const abs = Math.abs(value);
  const units: Array<[number, string]> = [
    [1e9, " G"],
    [1e6, " M"],
    [1e3, " k"],
    [1, ""],
    [1e-3, " m"],
    [1e-6, " µ"],
  ];
  if (abs === 0) return "0";
  for (const [scale, unit] of units) {
    if (abs >= scale) return `${Number((value / scale).toPrecision(3))}${unit}`;
  }
  return value.toExponential(2);
}

function niceTicks(min: number, max: number, log: boolean): number[] {
  if (log) {
    const ticks: number[] = [];
    for (
      let e = Math.floor(Math.log10(min));
      e <= Math.ceil(Math.log10(max));
      e++
    ) ticks.push(10 ** e);
    return ticks;
  }
  const span = max - min || Math.abs(max) || 1;
  const raw = span / 5;
  const step10 = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * step10).find((s) => s >= raw) ??
    raw;
  const ticks: number[] = [];
  for (let t = Math.floor(min / step) * step; t <= max + step / 2; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

/**
 * Renders a line chart as a complete SVG document.
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./svg_plot.ts";
 * const svg = lineChartSvg({
 *   title: "t", xLabel: "x", yLabel: "y",
 *   series: [{ name: "a", points: [{ x: 1, y: 2 }, { x: 2, y: 3 }] }],
 * });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 *
 * @param options Title, labels, series, scales, size.
 * @returns The SVG text.
 */
export function lineChartSvg(options: LineChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 440;
  const left = 90, right = 170, top = 50, bottom = 60;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const fx = options.formatX ?? formatSi;
  const fy = options.formatY ?? formatSi;
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of options.series) {
    for (const p of s.points) {
      xs.push(p.x);
      ys.push(p.y, p.low ?? p.y, p.high ?? p.y);
    }
  }
  const usableY = options.logY ? ys.filter((v) => v > 0) : ys;
  const usableX = options.logX ? xs.filter((v) => v > 0) : xs;
  let xMin = usableX.length ? Math.min(...usableX) : 0;
  let xMax = usableX.length ? Math.max(...usableX) : 1;
  let yMin = usableY.length ? Math.min(...usableY) : 0;
  let yMax = usableY.length ? Math.max(...usableY) : 1;
  if (!options.logY) yMin = Math.min(0, yMin);
  if (options.xTicks && options.xTicks.length > 0) {
    xMin = Math.min(xMin, ...options.xTicks);
    xMax = Math.max(xMax, ...options.xTicks);
  } else if (options.logX) {
    xMin = 10 ** Math.floor(Math.log10(xMin || 1));
    xMax = 10 ** Math.ceil(Math.log10(xMax || 10));
  }
  if (options.logY) {
    yMin = 10 ** Math.floor(Math.log10(yMin || 1));
    yMax = 10 ** Math.ceil(Math.log10(yMax || 10));
  }
  if (xMax === xMin) xMax = xMin + 1;
  const yTicks = niceTicks(yMin, yMax, options.logY === true);
  if (!options.logY) yMax = Math.max(yMax, yTicks[yTicks.length - 1]);
  if (yMax === yMin) yMax = yMin + 1;
  const tx = (v: number) =>
    left + plotW * (options.logX
        ? (Math.log10(v) - Math.log10(xMin)) /
          (Math.log10(xMax) - Math.log10(xMin))
        : (v - xMin) / (xMax - xMin));
  const ty = (v: number) =>
    top + plotH * (1 - (options.logY
        ? (Math.log10(v) - Math.log10(yMin)) /
          (Math.log10(yMax) - Math.log10(yMin))
        : (v - yMin) / (yMax - yMin)));
  const r = (v: number) => v.toFixed(1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16">${
      escapeXml(options.title)
    }</text>`,
  );
  for (const t of yTicks) {
    if (t < yMin || t > yMax) continue;
    const y = r(ty(t));
    out.push(
      `<line x1="${left}" y1="${y}" x2="${
        left + plotW
      }" y2="${y}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y}" text-anchor="end" dy="4">${
        escapeXml(fy(t))
      }</text>`,
    );
  }
  const xTicks = options.xTicks ??
    (options.logX
      ? niceTicks(xMin, xMax, true)
      : [...new Set(xs)].sort((a, b) => a - b));
  for (const t of xTicks) {
    if (t < xMin || t > xMax) continue;
    const x = r(tx(t));
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${
        top + plotH
      }" stroke="#eee"/>`,
      `<text x="${x}" y="${top + plotH + 16}" text-anchor="middle">${
        escapeXml(fx(t))
      }</text>`,
    );
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${left + plotW / 2}" y="${height - 16}" text-anchor="middle">${
      escapeXml(options.xLabel)
    }</text>`,
    `<text transform="translate(18 ${
      top + plotH / 2
    }) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );
  options.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points
      .filter((p) => (!options.logX || p.x > 0) && (!options.logY || p.y > 0))
      .sort((a, b) => a.x - b.x);
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${
          pts.map((p) => `${r(tx(p.x))},${r(ty(p.y))}`).join(" ")
        }"/>`,
      );
    }
    for (const p of pts) {
      const x = r(tx(p.x));
      if (p.low !== undefined && p.high !== undefined) {
        const lo = options.logY ? Math.max(p.low, yMin) : p.low;
        out.push(
          `<line x1="${x}" y1="${r(ty(lo))}" x2="${x}" y2="${
            r(ty(p.high))
          }" stroke="${color}" stroke-width="1"/>`,
        );
      }
      out.push(
        `<circle cx="${x}" cy="${r(ty(p.y))}" r="3.5" fill="${color}"/>`,
      );
    }
    const ly = top + 10 + i * 20;
    out.push(
      `<line x1="${left + plotW + 14}" y1="${ly}" x2="${
        left + plotW + 38
      }" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${left + plotW + 44}" y="${ly + 4}">${
        escapeXml(s.name)
      }</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
