// Lifetimes under concurrency: many forwards in flight on one model, forwards from several
// workers at once, a worker terminated mid-forward, and a short soak with random disposal
// patterns (scripts/soak.mjs runs the long one). Each ends in results or JS errors, with
// memory() back to its baseline.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { memory, SecViT, tensor } from '../lib/index.js';
import { Rng } from './helpers/random.js';

interface SoakResult { finalTensors: number; finalHostBytes: number; maxLiveTensors: number }
const soakScript: string = '../scripts/soak.mjs';
const { soak } = (await import(soakScript)) as { soak: (o: { forwards: number; seed: number }) => Promise<SoakResult> };

const root = resolve(__dirname, '..');
const MICRO = resolve(__dirname, 'fixtures', 'micro.model.safetensors');

describe('concurrency', () => {
  it('16 forwards in flight on one model give what one at a time gives', async () => {
    const before = memory();
    using model = SecViT.load(MICRO);
    const rng = new Rng(8);
    const inputs = Array.from({ length: 16 }, () => tensor(rng.normals(3 * 48 * 48), [1, 3, 48, 48]));
    const alone: Float32Array[] = [];
    for (const x of inputs) {
      using y = model.forward(x);
      alone.push((await y.data()) as Float32Array);
    }
    const ys = inputs.map((x) => model.forward(x)); // all queued before any is read
    const together = await Promise.all(ys.map((y) => y.data()));
    together.forEach((t, i) => expect(Array.from(t)).toEqual(Array.from(alone[i])));
    [...ys, ...inputs].forEach((t) => t.dispose());
    model.dispose();
    const after = memory();
    expect([after.tensors, after.hostBytes]).toEqual([before.tensors, before.hostBytes]);
  });

  it('forwards from three workers at once agree with the main thread', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const code = ${JSON.stringify(`
        const s = require(${JSON.stringify(resolve(root, 'dist/cjs/index.js'))});
        const { parentPort } = require('node:worker_threads');
        const model = s.SecViT.load(${JSON.stringify(MICRO)});
        const x = s.tensor(Float32Array.from({ length: 3 * 40 * 40 }, (_, i) => Math.sin(i)), [1, 3, 40, 40]);
        const out = [];
        for (let i = 0; i < 5; i++) { const y = model.forward(x); out.push(Array.from(y.dataSync()).join(',')); y.dispose(); }
        x.dispose(); model.dispose();
        parentPort.postMessage({ same: out.every((o) => o === out[0]), first: out[0], tensors: s.memory().tensors });
      `)};
      const s = require(${JSON.stringify(resolve(root, 'dist/cjs/index.js'))});
      const model = s.SecViT.load(${JSON.stringify(MICRO)});
      const x = s.tensor(Float32Array.from({ length: 3 * 40 * 40 }, (_, i) => Math.sin(i)), [1, 3, 40, 40]);
      const y = model.forward(x);
      const want = Array.from(y.dataSync()).join(',');
      const results = [];
      let exited = 0;
      for (let i = 0; i < 3; i++) {
        const w = new Worker(code, { eval: true });
        w.on('message', (m) => results.push(m));
        w.on('error', (e) => { console.log('error ' + e.message); process.exitCode = 1; });
        w.on('exit', () => {
          if (++exited === 3) console.log(JSON.stringify(results.map((r) => r.same && r.first === want)));
        });
      }`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('[true,true,true]');
  });

  it('a worker terminated in the middle of a forward leaves the process working', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const code = ${JSON.stringify(`
        const s = require(${JSON.stringify(resolve(root, 'dist/cjs/index.js'))});
        const { parentPort } = require('node:worker_threads');
        const model = s.SecViT.load(${JSON.stringify(MICRO)});
        const x = s.tensor(new Float32Array(3 * 64 * 64).fill(0.5), [1, 3, 64, 64]);
        parentPort.postMessage('go');
        (async () => { for (;;) { const y = model.forward(x); await y.data(); y.dispose(); } })();
      `)};
      const w = new Worker(code, { eval: true });
      w.on('message', () => setTimeout(() => w.terminate(), 30));
      w.on('exit', () => {
        const s = require(${JSON.stringify(resolve(root, 'dist/cjs/index.js'))});
        const model = s.SecViT.load(${JSON.stringify(MICRO)});
        const y = model.forward(s.tensor(new Float32Array(3 * 32 * 32).fill(0.5), [1, 3, 32, 32]));
        console.log('alive ' + y.shape.join('x'));
      });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).not.toMatch(/terminate called|Aborted|FATAL/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('alive 1x5');
  });

  it('a short soak: 150 forwards with random disposal patterns keep memory() at its baseline', async () => {
    const before = memory();
    const r = await soak({ forwards: 150, seed: 3 });
    expect(r.finalTensors).toBe(before.tensors);
    expect(r.finalHostBytes).toBe(before.hostBytes);
    // Between patterns nothing but the weights is alive (what a pattern made is released by its end).
    expect(r.maxLiveTensors).toBe(0);
  });
});

