// Whole models on the CPU: SecViT-T (and -S with --full) forward at batch 1 and 8, random
// weights (seeded; time does not depend on the values), 224 x 224. Medians with min-max,
// images/s, the activation peak (memory() above the weights, folded copies and input; output
// included), and where the
// time goes: kernel time by layer kind from the op profiler (profileOps), which times every
// queued kernel on the CPU dispatcher.
import { kindOf, median, seeded } from './util.mjs';

export async function modelRows(secvit, { full = false, batches = [1, 8] } = {}) {
  const rows = [];
  for (const name of full ? ['secvit-t', 'secvit-s'] : ['secvit-t']) {
    const model = secvit.SecViT.create(name, { seed: 0 }).requiresGrad(false);  // inference: nothing recorded
    const weights = secvit.memory().hostBytes;
    for (const batch of batches) {
      const x = secvit.tensor(seeded(batch * 3 * 224 * 224, 5, 4), [batch, 3, 224, 224]);
      const once = async () => {
        const y = model.forward(x);
        await y.data();
        y.dispose();
      };
      await once();
      await once();
      const rounds = batch === 1 ? (full ? 30 : 12) : (full ? 8 : 4);
      const times = [];
      secvit.resetPeakMemory();
      const base = secvit.memory().hostBytes;
      for (let r = 0; r < rounds; r++) {
        const t = performance.now();
        await once();
        times.push(performance.now() - t);
      }
      const peak = secvit.memory().peakHostBytes - base;
      const profRounds = batch === 1 ? 5 : 2;
      const { ops } = await secvit.profileOps(async () => {
        for (let r = 0; r < profRounds; r++) await once();
      });
      const kinds = {};
      for (const o of ops.filter((p) => p.label !== 'data')) kinds[kindOf(o.label)] = (kinds[kindOf(o.label)] ?? 0) + o.ms / profRounds;
      const m = median(times);
      rows.push({
        model: name, batch, medianMs: m, minMs: Math.min(...times), maxMs: Math.max(...times), samples: times.length,
        imagesPerS: (1000 * batch) / m, activationPeakMB: peak / 2 ** 20, weightsMB: weights / 2 ** 20, kindsMs: kinds,
      });
      x.dispose();
    }
    model.dispose();
  }
  return rows;
}

export function printModel(rows, threads) {
  console.log(`\nwhole model forward, 224 x 224, ${threads} thread(s)`);
  console.table(rows.map((r) => ({
    model: r.model, batch: r.batch, 'median ms': r.medianMs.toFixed(1), 'min-max': `${r.minMs.toFixed(1)}-${r.maxMs.toFixed(1)}`,
    'img/s': r.imagesPerS.toFixed(1), 'activation peak MiB': r.activationPeakMB.toFixed(1),
  })));
  for (const r of rows) {
    const total = Object.values(r.kindsMs).reduce((a, b) => a + b, 0);
    const parts = Object.entries(r.kindsMs).sort((a, b) => b[1] - a[1])
      .map(([k, ms]) => `${k} ${ms.toFixed(1)} ms (${((100 * ms) / total).toFixed(0)}%)`);
    console.log(`  ${r.model} b${r.batch} kernel time ${total.toFixed(1)} ms: ${parts.join(', ')}`);
  }
}
