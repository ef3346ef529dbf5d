// Where training data comes from: a folder of IDX files (MNIST, Fashion-MNIST), or an image
// folder laid out as torchvision's ImageFolder (root/train/<class>/*, root/val/<class>/*; class
// names sorted, as torchvision sorts them). Image-folder files are decoded by sharp (in its own
// threads), resized (shorter side) and centre-cropped to the input size once, Pillow-exact, so
// evaluation and the pipeline (crop_pct 1, the same filter) see the same pixels. Files that do
// not decode are skipped and counted (`skipped`), never silently: the count is reported.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { decodeImage } from '../vision/image.js';
import { resizeAndCrop } from '../vision/preprocess.js';
import type { ResampleFilter } from '../vision/resize.js';
import type { ImageSet } from './dataset.js';
import { DataError, isIdxDir, loadIdx } from './idx.js';

export interface ImageData {
  train: ImageSet;
  test: ImageSet | null;
  classes: string[];
  /** Image-folder files that could not be decoded (path and why). */
  skipped: { file: string; error: string }[];
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.avif', '.ppm', '.pgm']);

export interface LoadDataOptions {
  /** The side image-folder images are stored at (default 224). */
  size?: number;
  /** Image folders: the shorter side before the centre crop (default: size, a crop_pct of 1). */
  resize?: number;
  /** Image folders: the resampling filter (default 'bilinear'). */
  interpolation?: ResampleFilter;
  split?: 'train' | 'test' | 'both';
}

/** The data in `dir` (IDX or an image folder). */
export async function loadImageData(dir: string, options: LoadDataOptions = {}): Promise<ImageData> {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new DataError(`${dir}: no such folder`);
  }
  if (!st.isDirectory()) throw new DataError(`${dir}: not a folder (expected IDX files or train/<class>/ image folders)`);
  const split = options.split ?? 'both';
  if (isIdxDir(dir)) {
    const hasTrain = split !== 'test', hasTest = split !== 'train';
    const train = hasTrain ? loadIdx(dir, 'train') : null;
    let test: ImageSet | null = null;
    if (hasTest) {
      try {
        test = loadIdx(dir, 'test');
      } catch (e) {
        if (!hasTrain || !/no IDX test split/.test((e as Error).message)) throw e;
      }
    }
    const first = (train ?? test)!;
    if (train && test && (train.height !== test.height || train.width !== test.width || train.channels !== test.channels))
      throw new DataError(`${dir}: train images are ${train.height}x${train.width}x${train.channels}, test images ${test.height}x${test.width}x${test.channels}`);
    return { train: train ?? test!, test, classes: first.classes, skipped: [] };
  }
  const size = options.size ?? 224;
  const geometry = { size, resize: options.resize ?? size, interpolation: options.interpolation ?? 'bilinear' };
  const skipped: ImageData['skipped'] = [];
  const trainDir = path.join(dir, 'train');
  const valDir = ['val', 'test'].map((s) => path.join(dir, s)).find((d) => isDir(d));
  const needTrain = split !== 'test';
  if (needTrain && !isDir(trainDir)) throw new DataError(`${dir}: neither IDX files nor an image folder (expected ${trainDir}/<class>/*.png)`);
  const classes = classFolders(isDir(trainDir) ? trainDir : valDir ?? trainDir);
  const train = needTrain ? await readFolder(trainDir, classes, geometry, skipped) : null;
  const test = split !== 'train' && valDir ? await readFolder(valDir, classes, geometry, skipped, true) : null;
  if (!train && !test) throw new DataError(`${dir}: no ${split} images (expected ${path.join(dir, 'val')}/<class>/*)`);
  return { train: train ?? test!, test, classes, skipped };
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function classFolders(dir: string): string[] {
  const names = readdirSync(dir).filter((n) => isDir(path.join(dir, n))).sort();
  if (names.length < 2) throw new DataError(`${dir}: an image folder needs at least 2 class folders, found ${names.length}`);
  return names;
}

async function readFolder(dir: string, classes: string[], geometry: { size: number; resize: number; interpolation: ResampleFilter }, skipped: ImageData['skipped'], allowMissing = false): Promise<ImageSet> {
  const size = geometry.size;
  const files: [string, number][] = [];
  const present = new Set(readdirSync(dir).filter((n) => isDir(path.join(dir, n))));
  for (const extra of present) if (!classes.includes(extra)) throw new DataError(`${path.join(dir, extra)}: a class folder that the training folder does not have`);
  classes.forEach((c, label) => {
    const cdir = path.join(dir, c);
    if (!present.has(c)) {
      if (allowMissing) return;
      throw new DataError(`${cdir}: missing class folder`);
    }
    const images = readdirSync(cdir).filter((n) => IMAGE_EXT.has(path.extname(n).toLowerCase())).sort();
    if (images.length === 0 && !allowMissing) throw new DataError(`${cdir}: an empty class folder (no images with extensions ${[...IMAGE_EXT].join(' ')})`);
    for (const n of images) files.push([path.join(cdir, n), label]);
  });
  const per = size * size * 3;
  const pixels = new Uint8Array(files.length * per);
  const labels = new Int32Array(files.length);
  let count = 0;
  for (const [file, label] of files) {
    try {
      const img = resizeAndCrop(await decodeImage(file, 'image folder'), geometry);
      pixels.set(img.data, count * per);
      labels[count++] = label;
    } catch (e) {
      if (/optional dependency 'sharp'/.test((e as Error).message)) throw e;
      skipped.push({ file, error: (e as Error).message });
    }
  }
  if (count === 0) throw new DataError(`${dir}: none of the ${files.length} images could be decoded${skipped.length ? ` (first: ${skipped[0].error})` : ''}`);
  return {
    name: path.basename(path.resolve(dir, '..')), source: dir, count, height: size, width: size, channels: 3,
    pixels: pixels.subarray(0, count * per), labels: labels.subarray(0, count), classes,
  };
}
