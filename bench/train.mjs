// Training steps on the CPU (`secvit bench --groups train`): one step = train-mode forward,
// cross-entropy with label smoothing 0.1, backward, AdamW (timm's weight-decay grouping), gradients
// set to none. Two models (issue 18): SecViT-T at 224 x 224 batch 8, and a 6.9M-parameter
// SecViT at 64 x 64 batch 64 ('secvit-64': [48, 96, 192, 384] x [2, 2, 6, 2], clusters 8/2/1/-1,
// 100 classes). Random weights and inputs (seeded; time does not depend on the values).
//
// Reported per model: step medians with min-max, images/s, memory (the step's peak above the
// parameters, gradients and optimizer state; and what the forward keeps for the backward), and
// where the kernel time goes, by layer kind, for the forward, the backward and the optimizer
// (profileOps). With --torch (or when /usr/bin/python3 has torch), PyTorch runs the same model
// (bench/torch_train.py, written from SPEC.md) on the same threads, its steps interleaved with
// secvit's one by one, and the ratio of medians is reported.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { kindOf, median, seeded } from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

export const TRAIN_MODELS = {
  'secvit-t': { config: 'secvit-t', size: 224, batch: 8 },
  'secvit-64': {
    config: {
      embed_dims: [48, 96, 192, 384], depths: [2, 2, 6, 2], num_heads: [2, 3, 6, 12],
      num_clusterss: [[8, 8], [2, 2], [1, 1, 1, 1, 1, 1], [-1, -1]], num_classes: 100,
    },
    size: 64, batch: 64,
  },
  // The bundled Fashion-MNIST model's config, at the size and batch it was trained with.
  'secvit-fm': { config: 'secvit-fm', size: 32, batch: 128 },
};


/** PyTorch's side: bench/torch_train.py --serve, one JSON line per request. */
class TorchPeer {
  static available() {
    if (!existsSync('/usr/bin/python3')) return false;
    return true;
  }

  constructor(python = '/usr/bin/python3') {
    this.proc = spawn(python, [path.join(here, 'torch_train.py'), '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  async ask(msg) {
    this.proc.stdin.write(`${JSON.stringify(msg)}\n`);
    const next = await Promise.race([this.lines.next(), this.exited.then((code) => ({ exit: code }))]);
    if (next.exit !== undefined || next.done) throw new Error(`bench: PyTorch peer exited (${next.exit ?? 'eof'}) on ${msg.cmd}`);
    const reply = JSON.parse(next.value);
    if (reply.error) throw new Error(`bench: PyTorch peer: ${reply.error}`);
    return reply;
  }

  async close() {
    this.proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    await this.exited;
  }
}

function referenceConfig(secvit, config) {
  const c = secvit.resolveConfig(config);
  return { ...secvit.toReferenceConfig(c), layer_init_values: c.layerScaleInit, drop_path_rate: c.dropPathRate };
}

export async function trainRows(secvit, { rounds = 5, torch = 'auto', threads = 1, models = Object.keys(TRAIN_MODELS) } = {}) {
  let peer = null;
  if (torch !== false && TorchPeer.available()) {
    try {
      peer = new TorchPeer();
      await peer.ask({ cmd: 'setup', config: referenceConfig(secvit, 'secvit-t'), batch: 2, size: 32, threads });
    } catch (e) {
      if (torch === true) throw e;
      console.log(`  (no PyTorch side: ${e.message.split('\n')[0]})`);
      peer = null;
    }
  }
  const rows = [];
  for (const name of models) {
    const spec = TRAIN_MODELS[name];
    const model = secvit.SecViT.create(spec.config, { seed: 0 }).train();
    const classes = model.config.numClasses;
    const params = model.parameters().reduce((s, p) => s + p.size, 0);
    const opt = new secvit.AdamW(model, { lr: 1e-3, weightDecay: 0.05 });
    const x = secvit.tensor(seeded(spec.batch * 3 * spec.size * spec.size, 7, 2), [spec.batch, 3, spec.size, spec.size]);
    const labels = Int32Array.from({ length: spec.batch }, (_, i) => (i * 7919) % classes);
    const forward = () => secvit.crossEntropy(model.forward(x), labels, { labelSmoothing: 0.1 });
    const step = async () => {
      const loss = forward();
      await loss.backward();
      loss.dispose();
      await opt.step();
      opt.zeroGrad();
    };
    await step();
    await step();
    // Memory: the steady state (parameters, optimizer state, input) is the baseline.
    const base = secvit.memory().hostBytes;
    secvit.resetPeakMemory();
    const loss = forward();
    await loss.ready();
    const savedBytes = secvit.memory().hostBytes - base;
    await loss.backward();
    loss.dispose();
    await opt.step();
    opt.zeroGrad();
    const peakBytes = secvit.memory().peakHostBytes - base;

    let torchSide = null;
    if (peer) {
      const s = await peer.ask({ cmd: 'setup', config: referenceConfig(secvit, spec.config), batch: spec.batch, size: spec.size, threads });
      await peer.ask({ cmd: 'step' });
      torchSide = { params: s.params, savedBytes: s.savedBytes, threads: s.threads, times: [] };
    }
    const times = [];
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      await step();
      times.push(performance.now() - t);
      if (torchSide) torchSide.times.push((await peer.ask({ cmd: 'step' })).ms);
    }
    // Where the time goes: one step profiled in three phases.
    const phases = {};
    const profile = async (phase, fn) => {
      const { result, ops } = await secvit.profileOps(fn);
      const kinds = (phases[phase] = {});
      for (const o of ops.filter((p) => p.label !== 'data' && p.label !== 'ready')) kinds[kindOf(o.label)] = (kinds[kindOf(o.label)] ?? 0) + o.ms;
      return result;
    };
    const l = await profile('forward', async () => {
      const t = forward();
      await t.ready();
      return t;
    });
    await profile('backward', () => l.backward());
    l.dispose();
    await profile('optimizer', () => opt.step());
    opt.zeroGrad();

    const m = median(times);
    const row = {
      model: name, size: spec.size, batch: spec.batch, params, medianMs: m, minMs: Math.min(...times), maxMs: Math.max(...times),
      samples: times.length, imagesPerS: (1000 * spec.batch) / m, peakMB: peakBytes / 2 ** 20, savedMB: savedBytes / 2 ** 20, phases,
    };
    if (torchSide) {
      const tm = median(torchSide.times);
      row.torch = {
        params: torchSide.params, medianMs: tm, minMs: Math.min(...torchSide.times), maxMs: Math.max(...torchSide.times),
        imagesPerS: (1000 * spec.batch) / tm, savedMB: torchSide.savedBytes / 2 ** 20, threads: torchSide.threads,
      };
      row.ratioOfMedians = m / tm;
      if (torchSide.params !== params) throw new Error(`bench: ${name} has ${params} parameters here and ${torchSide.params} in PyTorch`);
    }
    rows.push(row);
    opt.dispose();
    x.dispose();
    model.dispose();
  }
  if (peer) await peer.close();
  return rows;
}

export function printTrain(rows, threads) {
  console.log(`\ntraining step (forward, loss, backward, AdamW), ${threads} thread(s)`);
  console.table(rows.map((r) => ({
    model: `${r.model} ${r.size}x${r.size}`, batch: r.batch, 'params M': (r.params / 1e6).toFixed(2),
    'median ms': r.medianMs.toFixed(0), 'min-max': `${r.minMs.toFixed(0)}-${r.maxMs.toFixed(0)}`, 'img/s': r.imagesPerS.toFixed(1),
    'peak MiB': r.peakMB.toFixed(0), 'saved MiB': r.savedMB.toFixed(0),
    ...(r.torch ? {
      'torch ms': `${r.torch.medianMs.toFixed(0)} (${r.torch.minMs.toFixed(0)}-${r.torch.maxMs.toFixed(0)})`,
      'torch saved MiB': r.torch.savedMB.toFixed(0), 'secvit/torch': r.ratioOfMedians.toFixed(2),
    } : {}),
  })));
  for (const r of rows)
    for (const [phase, kinds] of Object.entries(r.phases)) {
      const total = Object.values(kinds).reduce((a, b) => a + b, 0);
      const parts = Object.entries(kinds).sort((a, b) => b[1] - a[1]).filter(([, ms]) => ms >= 0.05 * total)
        .map(([k, ms]) => `${k} ${ms.toFixed(0)} ms (${((100 * ms) / total).toFixed(0)}%)`);
      console.log(`  ${r.model} b${r.batch} ${phase} kernel time ${total.toFixed(0)} ms: ${parts.join(', ')}`);
    }
}
