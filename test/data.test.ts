// Training data: IDX files (valid, gzipped, and every way one can be broken), image folders
// (classes, undecodable files, empty classes), the augmentation's determinism and the batch
// loader's workers, which must give the same batches as building them in place.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BatchLoader, DataError, epochOrder, loadIdx, loadImageData, parseIdx, parseRandAugment, readIdx, type ImageTransform,
} from '../lib/index.js';
import { makeBatch } from '../lib/data/batch.js';
import { mixBatch } from '../lib/data/augment.js';
import { Rng } from '../lib/nn/random.js';
import { idxBytes, patternImages, writeIdxDataset, writeImageFolder } from './helpers/datasets.js';

const tmp = mkdtempSync(join(tmpdir(), 'secvit-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const FASHION = '/usr/share/datasets/fashion-mnist';

const NO_AUG = { cropScale: null, cropRatio: [0.75, 4 / 3] as [number, number], flip: 0, randAugment: null, reprob: 0 };

describe('IDX files', () => {
  it('reads plain and gzipped files; dims and bytes as written', () => {
    const data = Uint8Array.from({ length: 3 * 5 * 7 }, (_, i) => (i * 37) % 256);
    const plain = join(tmp, 'a-idx3-ubyte');
    writeFileSync(plain, idxBytes([3, 5, 7], data));
    writeFileSync(`${plain}.gz`, gzipSync(idxBytes([3, 5, 7], data)));
    for (const f of [plain, `${plain}.gz`]) {
      const r = readIdx(f);
      expect(r.dims).toEqual([3, 5, 7]);
      expect(Array.from(r.data)).toEqual(Array.from(data));
    }
  });

  it('rejects broken files with an error naming the file and what was wrong', () => {
    const good = idxBytes([4, 3, 3], new Uint8Array(36).fill(9));
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, good.length - 5), /need 52 bytes, the file has 47 \(truncated\)/],
      [Uint8Array.from([...good, 1, 2]), /trailing bytes/],
      [Uint8Array.from([1, 0, 8, 3]), /not an IDX file: the magic starts 1, 0/],
      [Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]), /type code 0xd is not supported/],
      [Uint8Array.from([0, 0, 8, 9]), /9 dims is not supported/],
      [Uint8Array.from([0, 0, 8, 3, 0, 0]), /truncated IDX header/],
      [idxBytes([0xffffffff, 0xffffffff, 2], new Uint8Array(0)), /describe more than/],
    ];
    for (const [bytes, msg] of cases) {
      expect(() => parseIdx(bytes, 'f.idx')).toThrow(DataError);
      expect(() => parseIdx(bytes, 'f.idx')).toThrow(msg);
    }
    // A truncated gzip stream, and a missing file.
    const gz = gzipSync(good);
    const bad = join(tmp, 'bad-idx3-ubyte.gz');
    writeFileSync(bad, gz.subarray(0, gz.length - 10));
    expect(() => readIdx(bad)).toThrow(/bad-idx3-ubyte\.gz: corrupt or truncated gzip/);
    expect(() => readIdx(join(tmp, 'nope'))).toThrow(/nope: cannot read/);
    // A gzip bomb: a header for 10 bytes followed by 64 MiB of zeros stops at the header's size.
    const bomb = join(tmp, 'bomb-idx1-ubyte.gz');
    writeFileSync(bomb, gzipSync(Buffer.concat([Buffer.from(idxBytes([10], new Uint8Array(10))), Buffer.alloc(64 << 20)])));
    expect(() => readIdx(bomb)).toThrow(/bomb-idx1-ubyte\.gz: decompresses to more than the 18 bytes its IDX header describes/);
  });

  it('a dataset whose images and labels differ in count is refused, naming both files', () => {
    const dir = join(tmp, 'mismatch');
    mkdirSync(dir);
    const { pixels } = patternImages(6, 28, 3, 1);
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxBytes([6, 28, 28], pixels));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes([5], new Uint8Array(5)));
    expect(() => loadIdx(dir, 'train')).toThrow(/train-images-idx3-ubyte has 6 images but train-labels-idx1-ubyte has 5 labels/);
  });

  it.runIf(existsSync(FASHION) || process.env.SECVIT_REQUIRE_DATA === '1')('Fashion-MNIST from Debian\'s package: 60,000 + 10,000 images, recognised by its labels, named classes', () => {
    const train = loadIdx(FASHION, 'train');
    const test = loadIdx(FASHION, 'test');
    expect([train.count, train.height, train.width, train.channels]).toEqual([60000, 28, 28, 1]);
    expect(test.count).toBe(10000);
    expect(train.name).toBe('fashion-mnist');
    expect(train.classes[0]).toBe('T-shirt/top');
    expect(train.classes[9]).toBe('Ankle boot');
    // Balanced: 6,000 of each class.
    const counts = new Array(10).fill(0);
    for (const l of train.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(6000));
  });

  it('other IDX data is named by its labels', async () => {
    const dir = join(tmp, 'digits');
    writeIdxDataset(dir, { train: 20, test: 10, classes: 4 });
    const d = await loadImageData(dir);
    expect(d.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(d.train.count).toBe(20);
    expect(d.test?.count).toBe(10);
  });
});

describe('image folders', () => {
  it('classes sorted as torchvision sorts them, images resized to the input size; undecodable files skipped and counted; empty classes refused', async () => {
    const dir = join(tmp, 'folder');
    writeImageFolder(dir, { classes: ['zebra', 'ant', 'moth'], perClass: 3, valPerClass: 2 });
    writeFileSync(join(dir, 'train', 'ant', 'broken.png'), Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    const d = await loadImageData(dir, { size: 32 });
    expect(d.classes).toEqual(['ant', 'moth', 'zebra']);
    expect([d.train.count, d.test?.count, d.train.height, d.train.channels]).toEqual([9, 6, 32, 3]);
    expect(d.skipped.map((s) => s.file)).toEqual([join(dir, 'train', 'ant', 'broken.png')]);
    expect(Array.from(d.train.labels)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2]);
    mkdirSync(join(dir, 'train', 'empty'));
    await expect(loadImageData(dir, { size: 32 })).rejects.toThrow(/train\/empty: an empty class folder/);
    await expect(loadImageData(join(tmp, 'none'))).rejects.toThrow(/none: no such folder/);
  });
});

describe('augmentation and batches', () => {
  const { pixels, labels } = patternImages(40, 28, 10, 5);
  const src = { pixels, labels: Int32Array.from(labels), height: 28, width: 28, channels: 1, classes: 10 };
  const transform: ImageTransform = {
    size: 28, outChannels: 3, mean: [0.2, 0.2, 0.2], std: [0.3, 0.3, 0.3], train: true,
    augment: { cropScale: [0.08, 1], cropRatio: [0.75, 4 / 3], flip: 0.5, randAugment: 'rand-m9-mstd0.5-inc1', reprob: 0.25 },
  };
  const mix = { mixup: 0.8, cutmix: 1, prob: 1, switchProb: 0.5, smoothing: 0.1 };

  it('an evaluation batch is the plain normalisation, grey repeated to 3 channels', () => {
    const b = makeBatch(src, { ...transform, augment: NO_AUG }, null, { id: 0, indices: Int32Array.from([3, 7]), seed: 1, train: false });
    const n = 28 * 28;
    let worst = 0;
    for (let i = 0; i < 2; i++)
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < n; p++) {
          const ref = (pixels[[3, 7][i] * n + p] / 255 - 0.2) / 0.3;
          worst = Math.max(worst, Math.abs(b.x[(i * 3 + c) * n + p] - ref));
        }
    expect(worst).toBeLessThan(1e-6);  // float32 rounding of the reference
    expect(Array.from(b.labels)).toEqual([labels[3], labels[7]]);
    expect(b.targets).toBeNull();
  });

  it('a training batch depends on its seed only: the same seed gives the same bytes, another seed others', () => {
    const req = { id: 0, indices: Int32Array.from({ length: 16 }, (_, i) => i * 2), seed: 77, train: true };
    const a = makeBatch(src, transform, mix, req);
    const b = makeBatch(src, transform, mix, { ...req, id: 5 });
    const c = makeBatch(src, transform, mix, { ...req, seed: 78 });
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(b.x.buffer))).toBe(true);
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(c.x.buffer))).toBe(false);
    expect(a.x.every(Number.isFinite)).toBe(true);
  });

  it('mixup/cutmix targets: each row sums to 1, and mixup\'s pixels are the same blend as its targets', () => {
    const rng = new Rng(4);
    for (let trial = 0; trial < 20; trial++) {
      const b = 6, per = 3 * 8 * 8;
      const x = Float32Array.from({ length: b * per }, () => rng.normal());
      const orig = x.slice();
      const lab = Int32Array.from([0, 1, 2, 3, 4, 5]);
      const t = mixBatch(x, lab, 10, 8, 3, { ...mix, cutmix: trial % 2 ? 1 : 0 }, new Rng(trial))!;
      for (let i = 0; i < b; i++) {
        let s = 0;
        for (let k = 0; k < 10; k++) s += t[i * 10 + k];
        expect(Math.abs(s - 1)).toBeLessThan(1e-6);
      }
      if (trial % 2 === 0) {
        // mixup: lam from the target of the row's own class: t = off + (on - off) * lam.
        const lam = (t[lab[0]] - 0.01) / 0.9;
        for (let e = 0; e < per; e++) expect(Math.abs(x[e] - (lam * orig[e] + (1 - lam) * orig[5 * per + e]))).toBeLessThan(1e-5);
      }
    }
  });

  it('RandAugment strings: timm\'s form parses, anything else is a RangeError naming the part', () => {
    expect(parseRandAugment('rand-m9-mstd0.5-inc1')).toEqual({ ops: 2, magnitude: 9, magnitudeStd: 0.5, prob: 0.5 });
    expect(parseRandAugment('rand-m7-n3')).toMatchObject({ ops: 3, magnitude: 7 });
    expect(() => parseRandAugment('auto-m9')).toThrow(RangeError);
    expect(() => parseRandAugment('rand-q4')).toThrow(/unknown part 'q4'/);
  });

  it('an epoch\'s order is a seeded permutation', () => {
    const a = epochOrder(1000, 3, 2);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(epochOrder(1000, 3, 2))).toEqual(Array.from(a));
    expect(Array.from(epochOrder(1000, 3, 3))).not.toEqual(Array.from(a));
  });

  it('the loader\'s worker gives the batches built in place, in order, bit for bit; it counts its waits', async () => {
    const set = { name: 't', source: '', count: 40, height: 28, width: 28, channels: 1, pixels, labels: Int32Array.from(labels), classes: Array.from({ length: 10 }, String) };
    const collect = async (workers: number) => {
      const l = new BatchLoader(set, { batchSize: 7, transform, mix, workers, prefetch: 3, dropLast: true });
      const out: Float32Array[] = [];
      const ids: number[][] = [];
      try {
        for await (const b of l.epoch(1, 9, true, 1)) {
          out.push(b.x);
          ids.push(Array.from(b.labels));
        }
      } finally {
        await l.close();
      }
      // Nothing is done with the batches here, so the loop outruns the worker and waits for it.
      if (workers > 0) expect(l.waitMs).toBeGreaterThan(0);
      else expect(l.waitMs).toBe(0);  // built in place: never waited for
      return { out, ids };
    };
    const inPlace = await collect(0);
    const worker = await collect(1);
    expect(inPlace.out.length).toBe(4);  // floor(40 / 7) = 5 batches, the first skipped
    expect(worker.ids).toEqual(inPlace.ids);
    inPlace.out.forEach((x, i) => expect(Buffer.from(worker.out[i].buffer).equals(Buffer.from(x.buffer))).toBe(true));
  });
});
