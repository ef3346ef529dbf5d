// Pictures of SEC's clusters: every tinted pixel is checked against the cluster its token has in
// the model's own order (SPEC 1 step 4's split of the sorted positions), recomputed here.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { clusterColor, clusterOfTokens, clusterPicture, decodeImage, preprocess, resizeAndCrop, SecViT } from '../lib/index.js';

const FIX = resolve(__dirname, 'fixtures');
const MICRO = join(FIX, 'micro.model.safetensors'); // heads 2, 2, 2, 4; clusters 32, 8, 2, global
const IMAGE = join(FIX, 'images', 'portrait.png');
const tmp = mkdtempSync(join(tmpdir(), 'secvit-clusters-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('cluster pictures', () => {
  it('splits sorted positions into clusters as SPEC 1 step 4 does, uneven sizes included', () => {
    // L = 7, C = 3: positions [0, 2), [2, 4), [4, 7).
    const ids = clusterOfTokens([6, 0, 5, 1, 4, 2, 3], 3);
    expect(Array.from(ids)).toEqual([0, 1, 2, 2, 2, 1, 0]);
    expect(Array.from(clusterOfTokens([2, 0, 1], 1))).toEqual([0, 0, 0]);
    const colors = new Set(Array.from({ length: 32 }, (_, k) => clusterColor(k).join(',')));
    expect(colors.size).toBe(32);
  });

  it('tints each token\'s patch with its cluster\'s colour, one panel per stage 0-2', async () => {
    using model = SecViT.load(MICRO);
    const pic = await clusterPicture(model, IMAGE, { opacity: 1 });
    expect(pic.panels.map((p) => [p.stage, p.clusters, p.gridHeight])).toEqual([[0, 32, 56], [1, 8, 28], [2, 2, 14]]);
    // The orders, recomputed: the same input through model.clusters.
    const x = await preprocess(IMAGE);
    const { logits, blocks } = model.clusters(x);
    const crop = resizeAndCrop(await decodeImage(IMAGE), { size: 224, resize: 256, interpolation: 'bicubic' });
    expect(crop.width).toBe(224);
    // Panel p's pixel (px, py) lies at x = 8 + p * 232 + px, y = strip + 8 + py in the picture.
    const strip = pic.image.height - 224 - 16;
    let checked = 0;
    for (const [p, panel] of pic.panels.entries()) {
      const rec = blocks.find((b) => b.stage === panel.stage && b.block === 0)!;
      const L = rec.height * rec.width;
      const ids = clusterOfTokens(((await rec.order.data()) as Int32Array).subarray(0, L), rec.clusters);
      for (let py = 0; py < 224; py += 3)
        for (let px = 0; px < 224; px += 5) {
          const token = Math.floor((py * rec.height) / 224) * rec.width + Math.floor((px * rec.width) / 224);
          const o = ((strip + 8 + py) * pic.image.width + 8 + p * 232 + px) * 3;
          expect(Array.from(pic.image.data.subarray(o, o + 3))).toEqual(clusterColor(ids[token]));
          checked++;
        }
    }
    expect(checked).toBeGreaterThan(9000);
    [x, logits, ...blocks.map((b) => b.order)].forEach((t) => t.dispose());
  });

  it('one stage, block and head on request; out-of-range choices are RangeErrors naming the limit', async () => {
    using model = SecViT.load(MICRO);
    const one = await clusterPicture(model, IMAGE, { stage: 3, head: 3 });
    expect(one.panels).toHaveLength(1);
    expect(one.panels[0].caption).toBe('stage 3 block 0 head 3 of 4: 1 cluster of 49 tokens');
    await expect(clusterPicture(model, IMAGE, { stage: 4 })).rejects.toThrow(/stage must be an integer in 0\.\.3/);
    await expect(clusterPicture(model, IMAGE, { head: 2 })).rejects.toThrow(/head must be an integer in 0\.\.1 \(stage 0 has 2 heads\)/);
    await expect(clusterPicture(model, IMAGE, { block: 1 })).rejects.toThrow(/block must be an integer in 0\.\.0/);
  });

  it('secvit clusters writes the PNG; bad choices exit 2 with one line', async () => {
    const out = join(tmp, 'c.png');
    const run = (...a: string[]) => spawnSync(process.execPath, [resolve(__dirname, '..', 'bin', 'secvit.mjs'), 'clusters', IMAGE, '--weights', MICRO, '--device', 'cpu', ...a], { encoding: 'utf8' });
    const ok = run('-o', out);
    expect(ok.status, ok.stderr).toBe(0);
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.channels]).toEqual(['png', 8 + 3 * 232, 3]);
    const bad = run('-o', out, '--stage', '9');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/stage must be an integer in 0\.\.3/);
  });
});
