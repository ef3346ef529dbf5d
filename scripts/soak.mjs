// Soak: many forwards of a small model with random disposal patterns, checking that memory()
// returns to its baseline and RSS stays flat. `npm test` runs 150 forwards
// (test/concurrency.test.ts); the long run is
//   node --expose-gc scripts/soak.mjs [--forwards 10000] [--seed 1] [--weights FILE]
// and exits 1 if memory() ends above its baseline or RSS grows by more than 32 MB after warm-up.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** Runs the soak; returns what it saw. */
export async function soak({ forwards = 10000, seed = 1, weights = path.join(root, 'test', 'fixtures', 'micro.model.safetensors'), log = () => {} } = {}) {
  const s = await import(pathToFileURL(path.join(root, 'dist', 'esm', 'index.js')).href);
  const rng = new s.Rng(seed);
  const base = s.memory();
  const model = s.SecViT.load(weights);
  let loaded = 0; // the weights and what the model derives from them on first use (set below)
  const input = (b = 1) => s.tensor(rng.normals(b * 3 * 40 * 40), [b, 3, 40, 40]);
  let maxLiveTensors = 0; // above the model's weights, after each pattern
  const rss = [];
  const patterns = [
    async () => { // forward, read, dispose
      const x = input(); const y = model.forward(x); await y.data(); y.dispose(); x.dispose();
    },
    async () => { // the input disposed while its forward is queued; the output read later
      const x = input(2); const y = model.forward(x); x.dispose(); await y.data(); y.dispose();
    },
    async () => { // the output never read
      const x = input(); model.forward(x).dispose(); x.dispose();
    },
    async () => { // a scope owns everything but the kept result
      const y = s.tidy(() => model.forward(input())); await y.data(); y.dispose();
    },
    async () => { // several in flight, disposed in random order
      const xs = [input(), input(), input()];
      const ys = xs.map((x) => model.forward(x));
      const all = [...xs, ...ys];
      while (all.length) all.splice(rng.int(0, all.length), 1)[0].dispose();
    },
    async () => { // features, all four released
      const x = input(); const f = model.features(x); await f[3].data(); f.forEach((t) => t.dispose()); x.dispose();
    },
    async () => { // cluster orders and logits
      const x = input(); const r = model.clusters(x); await r.logits.data(); r.logits.dispose(); r.blocks.forEach((b) => b.order.dispose()); x.dispose();
    },
    async () => { // async scope
      await s.tidy(async () => { const y = model.forward(input()); await y.data(); });
    },
  ];
  for (const p of patterns) await p(); // warm-up: the model's derived tensors exist from here on
  loaded = s.memory().tensors;
  for (let i = 1; i <= forwards; i++) {
    await patterns[rng.int(0, patterns.length)]();
    maxLiveTensors = Math.max(maxLiveTensors, s.memory().tensors - loaded);
    if (i % 500 === 0 || i === forwards) {
      globalThis.gc?.();
      rss.push({ forward: i, rssMB: +(process.memoryUsage().rss / 2 ** 20).toFixed(1), tensors: s.memory().tensors });
      log(rss[rss.length - 1]);
    }
  }
  model.dispose();
  const end = s.memory();
  return { forwards, baseTensors: base.tensors, finalTensors: end.tensors, finalHostBytes: end.hostBytes, baseHostBytes: base.hostBytes, maxLiveTensors, rss };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { forwards: { type: 'string', default: '10000' }, seed: { type: 'string', default: '1' }, weights: { type: 'string' } } });
  const r = await soak({ forwards: Number(values.forwards), seed: Number(values.seed), weights: values.weights, log: (x) => console.log(JSON.stringify(x)) });
  const warm = r.rss.find((x) => x.forward >= 1000) ?? r.rss[0];
  const growth = r.rss[r.rss.length - 1].rssMB - warm.rssMB;
  console.log(JSON.stringify({ ...r, rss: undefined, rssGrowthAfterWarmupMB: +growth.toFixed(1) }));
  if (r.finalTensors !== r.baseTensors || r.finalHostBytes !== r.baseHostBytes || growth > 32) process.exitCode = 1;
}
