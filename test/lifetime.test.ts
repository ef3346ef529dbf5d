// dispose / using / tidy / keep, exact memory counters, the GC backstop, and pending calls
// keeping their inputs alive.
import { describe, expect, it } from 'vitest';
import { DisposedError, keep, matmul, memory, resetPeakMemory, tensor, tidy, zeros, type Tensor } from '../lib/index.js';
import { relError, Rng } from './helpers/random.js';
import { matmulRef } from './reference/matmul.js';
import { runOp1 } from '../lib/ops/run.js';

describe('dispose and using', () => {
  it('dispose() frees at once and is idempotent', () => {
    const before = memory();
    const t = zeros([100, 10]);
    expect(memory().hostBytes).toBe(before.hostBytes + 4000);
    expect(t.disposed).toBe(false);
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(memory().hostBytes).toBe(before.hostBytes);
    expect(memory().tensors).toBe(before.tensors);
    t.dispose();
    expect(memory().tensors).toBe(before.tensors);
  });

  it('`using` disposes at the end of the block', () => {
    const before = memory().tensors;
    let escaped: Tensor;
    {
      using t = zeros([4]);
      escaped = t;
      expect(memory().tensors).toBe(before + 1);
    }
    expect(escaped.disposed).toBe(true);
    expect(memory().tensors).toBe(before);
  });

  it('`await using` disposes at the end of the block', async () => {
    const before = memory().tensors;
    let escaped: Tensor;
    {
      await using t = zeros([4]);
      escaped = t;
      expect(memory().tensors).toBe(before + 1);
    }
    expect(escaped.disposed).toBe(true);
    expect(memory().tensors).toBe(before);
  });
});

describe('tidy and keep', () => {
  it('disposes what it made and did not return', () => {
    const before = memory().tensors;
    let inner: Tensor | undefined;
    const out = tidy(() => {
      inner = zeros([3]);
      zeros([5]);
      return zeros([2]);
    });
    expect(inner!.disposed).toBe(true);
    expect(out.disposed).toBe(false);
    expect(memory().tensors).toBe(before + 1);
    out.dispose();
  });

  it('returns tensors nested in arrays and objects', () => {
    const r = tidy(() => ({ a: zeros([1]), list: [zeros([2]), zeros([3])], other: zeros([4]).size }));
    expect(r.a.disposed).toBe(false);
    expect(r.list.every((t) => !t.disposed)).toBe(true);
    r.a.dispose();
    r.list.forEach((t) => t.dispose());
  });

  it('disposes everything when fn throws, and rethrows', () => {
    const before = memory().tensors;
    let made: Tensor | undefined;
    expect(() =>
      tidy(() => {
        made = zeros([8]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(made!.disposed).toBe(true);
    expect(memory().tensors).toBe(before);
  });

  it('keep() lets a tensor outlive its scope', () => {
    let kept: Tensor | undefined;
    let dropped: Tensor | undefined;
    tidy(() => {
      kept = keep(zeros([2]));
      dropped = zeros([2]);
    });
    expect(kept!.disposed).toBe(false);
    expect(dropped!.disposed).toBe(true);
    kept!.dispose();
  });

  it('nested scopes hand returned tensors to the enclosing scope', () => {
    let fromInner: Tensor | undefined;
    tidy(() => {
      fromInner = tidy(() => zeros([3]));
      expect(fromInner.disposed).toBe(false);
    });
    expect(fromInner!.disposed).toBe(true);
  });

  it('tracks async work awaited inside the scope, not unrelated work', async () => {
    const rng = new Rng(4);
    using a = tensor(rng.normals(16), [4, 4]);
    let intermediate: Tensor | undefined;
    let outsider: Tensor | undefined;
    const outside = (async () => {
      await new Promise((r) => setTimeout(r, 1));
      outsider = zeros([1]);
    })();
    const result = await tidy(async () => {
      intermediate = matmul(a, a);
      await intermediate.data();
      return matmul(intermediate, a);
    });
    await outside;
    expect(intermediate!.disposed).toBe(true);
    expect(result.disposed).toBe(false);
    expect(outsider!.disposed).toBe(false);
    result.dispose();
    outsider!.dispose();
  });

  it('an async scope that rejects still disposes', async () => {
    const before = memory().tensors;
    await expect(
      tidy(async () => {
        zeros([3]);
        await Promise.resolve();
        throw new RangeError('late');
      }),
    ).rejects.toThrow('late');
    expect(memory().tensors).toBe(before);
  });

  it('rejects a non-function', () => {
    expect(() => tidy(42 as unknown as () => void)).toThrow(TypeError);
  });
});

describe('memory()', () => {
  it('counts bytes exactly per dtype and tracks peaks', () => {
    const before = memory();
    resetPeakMemory();
    const a = zeros([10, 10]);
    const b = zeros([7], { dtype: 'int32' });
    const c = tensor(new Uint16Array(9), [9], { dtype: 'bfloat16' });
    expect(memory().hostBytes - before.hostBytes).toBe(400 + 28 + 18);
    expect(memory().tensors - before.tensors).toBe(3);
    a.dispose();
    b.dispose();
    c.dispose();
    const after = memory();
    expect(after.hostBytes).toBe(before.hostBytes);
    expect(after.peakHostBytes).toBe(before.hostBytes + 446);
  });

  it('counts device bytes for device tensors', () => {
    const before = memory();
    const d = zeros([33], { device: 'cuda-emu' });
    expect(memory().deviceBytes).toBe(before.deviceBytes + 132);
    expect(memory().peakDeviceBytes).toBeGreaterThanOrEqual(before.deviceBytes + 132);
    d.dispose();
    expect(memory().deviceBytes).toBe(before.deviceBytes);
  });
});

describe('the GC backstop', () => {
  it('releases tensors that were never disposed', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'tests run with --expose-gc').toBeTypeOf('function');
    const before = memory();
    (() => {
      for (let i = 0; i < 10; i++) zeros([1000]);
    })();
    expect(memory().tensors).toBe(before.tensors + 10);
    for (let i = 0; i < 20 && memory().tensors > before.tensors; i++) {
      gc!();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(memory().tensors).toBe(before.tensors);
    expect(memory().hostBytes).toBe(before.hostBytes);
    expect(memory().gcReleasedTensors).toBeGreaterThanOrEqual(before.gcReleasedTensors + 10);
  });
});

describe('queued work keeps its inputs alive', () => {
  it('disposing inputs while queued work still reads them is safe', async () => {
    const rng = new Rng(5);
    const n = 256;
    const aData = rng.normals(n * n);
    const bData = rng.normals(n * n);
    const a = tensor(aData, [n, n]); // borrows aData
    const b = tensor(bData, [n, n], { copy: true });
    const before = memory();
    // Hold the CPU queue so the product cannot have run when its inputs are disposed.
    const hold = runOp1('_debug', { x: a }, { sleepMs: 50 });
    const pending = matmul(a, b);
    a.dispose();
    b.dispose();
    hold.dispose();
    // The inputs are gone for memory() (the product's output is the one new tensor): their
    // blocks return to the pool for later work at once.
    expect(memory().tensors).toBe(before.tensors - 1);
    expect(memory().hostBytes).toBe(before.hostBytes - 2 * n * n * 4 + n * n * 4);
    // Later work may reuse b's block; it is queued after the product, so cannot disturb it.
    const later = tensor(rng.normals(n * n), [n, n], { copy: true });
    const out = await pending.data();
    expect(relError(out, matmulRef(aData, bData, 1, n, n, n, false))).toBeLessThan(1e-5);
    pending.dispose();
    later.dispose();
    expect(() => a.dataSync()).toThrow(DisposedError);
  });
});
