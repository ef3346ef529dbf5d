// Loading progress: SecViT.load's (and loadStateDict's, pipeline's) onProgress(done, total)
// follows the bytes of weights read, for a .pth and a safetensors fixture, from a path and from
// bytes: first (0, total), last (total, total), done increasing, a bounded number of calls, total
// the stored size of the tensors the model takes (not the optimizer's that the training .pth
// holds). A throwing callback ends the load with nothing left allocated.
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CheckpointError, memory, pipeline, readCheckpoint, SecViT, type LoadProgress } from '../../lib/index.js';
import { STORED_DTYPE_SIZE } from '../../lib/io/source.js';

const FIX = resolve(__dirname, '../fixtures');
const FILES = ['micro_train.pth', 'micro.model.safetensors'];

/** What the loader should report: the stored bytes of the tensors the model takes, and their count. */
function expected(file: string): { total: number; tensors: number } {
  using model = SecViT.load(file);
  const ck = readCheckpoint(file);
  try {
    let total = 0;
    let tensors = 0;
    for (const [name] of model.namedSlots()) {
      const t = ck.tensors.get(name)!;
      expect(t, name).toBeDefined();
      total += t.numel * STORED_DTYPE_SIZE[t.dtype];
      tensors++;
    }
    return { total, tensors };
  } finally {
    ck.close();
  }
}

function recorder(): { calls: [number, number][]; onProgress: LoadProgress } {
  const calls: [number, number][] = [];
  return { calls, onProgress: (done, total) => void calls.push([done, total]) };
}

/** (0, total) first, (total, total) last, done strictly increasing, total fixed, at most 101 calls. */
function expectProgress(calls: [number, number][], total: number): void {
  expect(calls.length).toBeGreaterThanOrEqual(2);
  expect(calls.length).toBeLessThanOrEqual(101);
  expect(calls[0]).toEqual([0, total]);
  expect(calls.at(-1)).toEqual([total, total]);
  for (let i = 1; i < calls.length; i++) {
    expect(calls[i][1], 'total never changes').toBe(total);
    expect(calls[i][0], `call ${i}: done increases`).toBeGreaterThan(calls[i - 1][0]);
  }
}

describe('SecViT.load onProgress', () => {
  for (const name of FILES) {
    test(`${name}: from a path and from bytes, monotonic up to the bytes of the weights the model takes`, () => {
      const file = join(FIX, name);
      const want = expected(file);
      for (const input of [file, readFileSync(file)]) {
        const { calls, onProgress } = recorder();
        using model = SecViT.load(input, { onProgress });
        expectProgress(calls, want.total);
        // Bounded: fewer calls than tensors read (one per whole percent reached, not one per tensor).
        expect(calls.length).toBeLessThan(want.tensors);
        // The same weights as without a callback.
        using plain = SecViT.load(input);
        const a = model.stateDict();
        for (const [k, t] of plain.stateDict()) expect(Array.from(a.get(k)!.dataSync()), k).toEqual(Array.from(t.dataSync()));
      }
      // The training checkpoint holds more (the model's own weights, an optimizer): not counted.
      if (name.endsWith('.pth')) expect(want.total).toBeLessThan(statSync(file).size / 2);
    });
  }

  test('loadStateDict and pipeline take it too', async () => {
    using src = SecViT.load(join(FIX, 'micro.model.safetensors'));
    using model = SecViT.create(src.referenceConfig());
    const state = src.stateDict();
    const total = [...state.values()].reduce((s, t) => s + t.size * 4, 0);
    const a = recorder();
    model.loadStateDict(state, { onProgress: a.onProgress });
    expectProgress(a.calls, total);
    const b = recorder();
    await using classify = await pipeline('image-classification', join(FIX, 'micro_train.pth'), { device: 'cpu', onProgress: b.onProgress });
    expectProgress(b.calls, expected(join(FIX, 'micro_train.pth')).total);
    expect(classify.model.disposed).toBe(false);
  });

  test('a callback that throws ends the load, with nothing left allocated; not a function is a TypeError', () => {
    const before = memory();
    let seen = 0;
    const boom = new Error('cancelled');
    for (const name of FILES) {
      expect(() => SecViT.load(join(FIX, name), {
        onProgress: (done) => {
          if (done === 0) return;
          seen++;
          throw boom;
        },
      })).toThrow(boom);
    }
    expect(seen).toBe(2);
    expect(memory().tensors).toBe(before.tensors);
    expect(memory().hostBytes).toBe(before.hostBytes);
    // A model whose loadStateDict callback throws keeps its weights.
    using model = SecViT.load(join(FIX, 'micro.model.safetensors'));
    const w0 = Array.from(model.stateDict().values().next().value!.dataSync());
    using other = SecViT.create(model.referenceConfig(), { seed: 5 });
    expect(() => model.loadStateDict(other.stateDict(), { onProgress: () => { throw boom; } })).toThrow(boom);
    expect(Array.from(model.stateDict().values().next().value!.dataSync())).toEqual(w0);

    for (const bad of [42, 'yes', null]) {
      expect(() => SecViT.load(join(FIX, 'micro.model.safetensors'), { onProgress: bad as unknown as LoadProgress }))
        .toThrow(/^SecViT\.load: onProgress must be a function, got (number|string|null)$/);
    }
    expect(() => model.loadStateDict(other.stateDict(), { onProgress: {} as LoadProgress })).toThrow(TypeError);
  });

  test('a checkpoint that does not fit the model reports no progress', () => {
    const { calls, onProgress } = recorder();
    expect(() => SecViT.load(join(FIX, 'micro.model.safetensors'), { config: 'secvit-t', onProgress })).toThrow(CheckpointError);
    expect(calls).toEqual([]);
  });
});
