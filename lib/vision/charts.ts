// Pictures of training: the curves of a run (loss, accuracy, learning rate per epoch) and a
// confusion matrix, drawn into 8-bit RGB and encoded as PNG here (zlib, no sharp needed).
import { deflateSync } from 'node:zlib';
import { drawText, textWidth } from './font.js';

interface Canvas {
  data: Uint8Array;
  width: number;
  height: number;
  /** 3 (RGB, the default) or 1 (grey). */
  channels?: 1 | 3;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An 8-bit RGB (or grey) image as PNG bytes. */
export function encodePng(img: Canvas): Uint8Array {
  const c = img.channels ?? 3;
  if (c !== 1 && c !== 3) throw new RangeError(`encodePng: channels must be 1 or 3, got ${String(c)}`);
  if (img.data.length !== img.width * img.height * c) throw new RangeError(`encodePng: ${img.width}x${img.height}x${c} needs ${img.width * img.height * c} bytes, got ${img.data.length}`);
  const row = img.width * c;
  const raw = new Uint8Array(img.height * (row + 1));
  for (let y = 0; y < img.height; y++) raw.set(img.data.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  const chunk = (type: string, body: Uint8Array) => {
    const out = new Uint8Array(12 + body.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, body.length);
    out.set(Buffer.from(type, 'ascii'), 4);
    out.set(body, 8);
    v.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, img.width);
  hv.setUint32(4, img.height);
  ihdr.set([8, c === 3 ? 2 : 0, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

function canvas(width: number, height: number): Canvas {
  return { data: new Uint8Array(width * height * 3).fill(255), width, height };
}

function setPx(c: Canvas, x: number, y: number, rgb: readonly number[]): void {
  x = Math.round(x);
  y = Math.round(y);
  if (x < 0 || y < 0 || x >= c.width || y >= c.height) return;
  c.data.set(rgb, (y * c.width + x) * 3);
}

function line(c: Canvas, x0: number, y0: number, x1: number, y1: number, rgb: readonly number[]): void {
  const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1) * 2;
  for (let i = 0; i <= n; i++) {
    const x = x0 + ((x1 - x0) * i) / n, y = y0 + ((y1 - y0) * i) / n;
    setPx(c, x, y, rgb);
    setPx(c, x, y + 1, rgb);
  }
}

function rect(c: Canvas, x: number, y: number, w: number, h: number, rgb: readonly number[]): void {
  for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) setPx(c, xx, yy, rgb);
}

const fmt = (v: number) => (Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(Math.abs(v) >= 10 ? 1 : 3) : v.toExponential(1));

/** One panel: series over epochs with its own y range, axes and labels. */
function panel(c: Canvas, x: number, y: number, w: number, h: number, title: string, series: { name: string; values: (number | undefined)[]; color: number[] }[]): void {
  const grey = [200, 200, 200], ink = [40, 40, 40];
  drawText(c, title, x, y, ink, 2);
  const top = y + 22, left = x + 60, width = w - 70, height = h - 50;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  if (all.length === 0) return;
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi === lo) { hi += 1e-9 + Math.abs(hi) * 0.05; lo -= 1e-9 + Math.abs(lo) * 0.05; }
  const n = Math.max(...series.map((s) => s.values.length));
  const px = (i: number) => left + (n <= 1 ? width / 2 : (i * width) / (n - 1));
  const py = (v: number) => top + height - ((v - lo) / (hi - lo)) * height;
  line(c, left, top, left, top + height, grey);
  line(c, left, top + height, left + width, top + height, grey);
  drawText(c, fmt(hi), x, top, ink, 1);
  drawText(c, fmt(lo), x, top + height - 7, ink, 1);
  drawText(c, '1', left, top + height + 6, ink, 1);
  drawText(c, `EPOCH ${n}`, left + width - textWidth(`EPOCH ${n}`, 1), top + height + 6, ink, 1);
  let lx = left + 10;
  for (const s of series) {
    let prev: [number, number] | null = null;
    s.values.forEach((v, i) => {
      if (v === undefined || !Number.isFinite(v)) return;
      const p: [number, number] = [px(i), py(v)];
      if (prev) line(c, prev[0], prev[1], p[0], p[1], s.color);
      rect(c, p[0] - 1, p[1] - 1, 3, 3, s.color);
      prev = p;
    });
    rect(c, lx, top + height + 18, 10, 6, s.color);
    drawText(c, s.name, lx + 14, top + height + 17, ink, 1);
    lx += 24 + textWidth(s.name, 1);
  }
}

export interface CurvePoint {
  trainLoss: number;
  lr: number;
  valTop1?: number;
  valLoss?: number;
  testTop1?: number;
  testLoss?: number;
}

/** The curves of a training log as PNG: loss, accuracy and learning rate against the epoch. */
export function trainingCurves(log: readonly CurvePoint[]): Uint8Array {
  const c = canvas(1200, 340);
  const blue = [31, 119, 180], orange = [255, 127, 14], green = [44, 160, 44];
  panel(c, 10, 10, 390, 320, 'LOSS', [
    { name: 'TRAIN', values: log.map((r) => r.trainLoss), color: blue },
    { name: 'VAL', values: log.map((r) => r.valLoss), color: orange },
    { name: 'TEST', values: log.map((r) => r.testLoss), color: green },
  ]);
  panel(c, 410, 10, 390, 320, 'TOP-1', [
    { name: 'VAL', values: log.map((r) => r.valTop1), color: orange },
    { name: 'TEST', values: log.map((r) => r.testTop1), color: green },
  ]);
  panel(c, 810, 10, 390, 320, 'LEARNING RATE', [{ name: 'LR', values: log.map((r) => r.lr), color: blue }]);
  return encodePng(c);
}

/** A confusion matrix (rows: truth, columns: prediction; counts) as PNG, with class names. */
export function confusionPicture(confusion: Int32Array, classes: readonly string[]): Uint8Array {
  const k = classes.length, cell = Math.max(24, Math.min(48, Math.floor(600 / k)));
  const labelW = Math.max(...classes.map((n) => textWidth(n, 1))) + 10;
  const c = canvas(labelW + k * cell + 20, labelW + k * cell + 40);
  const ink = [40, 40, 40];
  drawText(c, 'TRUTH \\ PREDICTED', 10, 10, ink, 1);
  const ox = labelW, oy = labelW + 20;
  for (let t = 0; t < k; t++) {
    let rowSum = 0;
    for (let p = 0; p < k; p++) rowSum += confusion[t * k + p];
    for (let p = 0; p < k; p++) {
      const v = confusion[t * k + p], f = rowSum > 0 ? v / rowSum : 0;
      const shade = Math.round(255 - 200 * f);
      rect(c, ox + p * cell, oy + t * cell, cell - 1, cell - 1, t === p ? [shade, 255 - Math.round(60 * f), shade] : [255, shade, shade]);
      const s = String(v);
      drawText(c, s, ox + p * cell + (cell - textWidth(s, 1)) / 2, oy + t * cell + (cell - 7) / 2, ink, 1);
    }
    drawText(c, classes[t], 5, oy + t * cell + (cell - 7) / 2, ink, 1);
    // Column labels: the class index, names being too wide for a column.
    drawText(c, String(t), ox + t * cell + (cell - textWidth(String(t), 1)) / 2, oy - 12, ink, 1);
  }
  return encodePng(c);
}
