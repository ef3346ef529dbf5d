// Issue 10's findings that are fixed, each with the call that showed it: sizes bounded before
// they are multiplied (the error names the op that was called), no silent coercions, and tidy
// scopes that end when their function does, also for work their async context starts later.
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { decodeHalf, encodeHalf, keep, memory, setNumThreads, getNumThreads, tensor, tidy, zeros, type Tensor } from '../lib/index.js';

describe('sizes are bounded before they are multiplied', () => {
  it('shapes whose product passes 2^40 elements are RangeErrors naming the op, never 0-byte tensors', () => {
    expect(() => zeros([2 ** 32, 2 ** 32, 1])).toThrow(RangeError);
    expect(() => zeros([2 ** 32, 2 ** 32, 1])).toThrow(/^zeros: shape: .* is too large/);
    expect(() => zeros([2 ** 53])).toThrow(/^zeros: shape: \[9007199254740992\] is too large/);
    // Partial products are bounded too, also before a 0 (as the native side multiplies them).
    expect(() => tensor(new Float32Array(0), [2 ** 32, 2 ** 32, 0])).toThrow(RangeError);
    expect(() => tensor(new Float32Array(1), [65536, 65536, 65536])).toThrow(/^tensor: shape: .* is too large/);
    expect(() => zeros([2 ** 20, 2 ** 20, 2])).toThrow(RangeError);
    using ok = zeros([2 ** 10, 2 ** 10]);
    expect(ok.size).toBe(2 ** 20);
  });
});

describe('no silent coercions', () => {
  it('int32 data outside [-2^31, 2^31) is a RangeError, not a wrapped value', () => {
    expect(() => tensor([2 ** 31 + 5], [1], { dtype: 'int32' })).toThrow(/int32 needs integers in \[-2\^31, 2\^31\), got 2147483653/);
    expect(() => tensor([-(2 ** 31) - 1], [1], { dtype: 'int32' })).toThrow(RangeError);
    using edge = tensor([2 ** 31 - 1, -(2 ** 31)], [2], { dtype: 'int32' });
    expect(Array.from(edge.dataSync())).toEqual([2 ** 31 - 1, -(2 ** 31)]);
  });

  it('copy must be a boolean: { copy: "yes" } is a TypeError, not a shared tensor', () => {
    const a = new Float32Array([1, 2]);
    expect(() => tensor(a, [2], { copy: 'yes' as unknown as boolean })).toThrow(/tensor: copy must be a boolean, got string/);
    using copied = tensor(a, [2], { copy: true });
    a[0] = 9;
    expect(Array.from(copied.dataSync())).toEqual([1, 2]);
  });

  it('decodeHalf / encodeHalf refuse unknown dtypes; keep() refuses non-tensors; setNumThreads(1.5) is a RangeError', () => {
    expect(() => decodeHalf(new Uint16Array(2), 'foo' as 'float16')).toThrow(/decodeHalf: dtype must be 'bfloat16' or 'float16', got "foo"/);
    expect(() => decodeHalf([1, 2] as unknown as Uint16Array, 'float16')).toThrow(TypeError);
    expect(() => encodeHalf([1], 'float8' as 'float16')).toThrow(TypeError);
    expect(() => keep(5 as unknown as Tensor)).toThrow(/keep: expected a Tensor, got number/);
    expect(() => keep({ dispose() {}, disposed: false } as unknown as Tensor)).toThrow(/keep: expected a Tensor, got Object/);
    const n = getNumThreads();
    expect(() => setNumThreads(1.5)).toThrow(RangeError);
    expect(() => setNumThreads('2' as unknown as number)).toThrow(TypeError);
    expect(getNumThreads()).toBe(n);
  });
});

describe('tidy scopes end with their function', () => {
  it('a timer started inside tidy does not add its tensors to the closed scope (they are neither disposed nor held)', async () => {
    const before = memory().tensors;
    let late: Tensor | undefined;
    let timerDone!: () => void;
    const fired = new Promise<void>((r) => (timerDone = r));
    tidy(() => {
      zeros([3]);
      setTimeout(() => {
        late = zeros([5]); // created after the scope closed, in its async context
        timerDone();
      }, 5);
    });
    await fired;
    expect(late!.disposed).toBe(false);
    expect(memory().tensors).toBe(before + 1);
    late!.dispose();
    expect(memory().tensors).toBe(before);
  });

  it('a late tensor goes to the innermost scope still open', async () => {
    const before = memory().tensors;
    let late: Tensor | undefined;
    await tidy(async () => {
      let fire!: () => void;
      const fired = new Promise<void>((r) => (fire = r));
      tidy(() => {
        setTimeout(() => {
          late = zeros([2]);
          fire();
        }, 5);
      });
      await fired;
      expect(late!.disposed).toBe(false); // the outer scope is still open: it owns it now
    });
    expect(late!.disposed).toBe(true);
    expect(memory().tensors).toBe(before);
  });
});

describe('zero-copy sources that could change under a tensor', () => {
  it('a resizable ArrayBuffer is copied: shrinking it later cannot leave the tensor past its end', () => {
    // (ES2024 resizable buffers; the test's TypeScript lib is ES2023.)
    const rb = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(16, { maxByteLength: 64 });
    new Float32Array(rb).set([1, 2, 3, 4]);
    using t = tensor(new Float32Array(rb), [4]);
    rb.resize(0);
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4]);
  });

  it('a SharedArrayBuffer-backed array is copied (another thread may write it), not refused', () => {
    const sab = new SharedArrayBuffer(16);
    const view = new Float32Array(sab);
    view.set([1, 2, 3, 4]);
    using t = tensor(view, [4]);
    view[0] = 42;
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4]);
  });

  it('a shared buffer cannot be transferred away: postMessage copies it and the tensor stays valid', async () => {
    const a = new Float32Array([1, 2, 3]);
    using t = tensor(a, [3]);
    a[0] = 5; // shared: the tensor sees the write
    const { port1, port2 } = new MessageChannel();
    const got = new Promise<ArrayBuffer>((r) => port2.once('message', r));
    port1.postMessage(a.buffer, [a.buffer]);
    const received = await got;
    port1.close();
    expect(a.byteLength).toBe(12); // not detached
    expect(Array.from(new Float32Array(received))).toEqual([5, 2, 3]);
    expect(Array.from(t.dataSync())).toEqual([5, 2, 3]);
  });
});

describe('memory the counters do not see', () => {
  it('per-thread scratch is counted and given back after one large call (no longer kept at its largest)', async () => {
    const { backends, setNumThreads, getNumThreads, secAttentionUnfusedSync } = await import('../lib/index.js');
    const { Rng } = await import('./helpers/random.js');
    const scratch = () => backends().find((b) => b.name === 'cpu')!.scratchBytes!;
    const n = getNumThreads();
    setNumThreads(1); // one thread: both calls use the same thread's buffers
    try {
      const rng = new Rng(3);
      const big = (l: number) => [0, 1, 2].map(() => tensor(rng.normals(l * 8), [1, 1, l, 8]));
      const [q, k, v] = big(2304); // one cluster of 2304 tokens: a 2304 x 2304 score matrix (20 MiB)
      secAttentionUnfusedSync(q, k, v, { clusters: 1 }).dispose();
      const afterBig = scratch();
      expect(afterBig).toBeGreaterThanOrEqual(2304 * 2304 * 4);
      const [qs, ks, vs] = big(64);
      secAttentionUnfusedSync(qs, ks, vs, { clusters: 1 }).dispose();
      expect(scratch()).toBeLessThan(afterBig - 2304 * 2304 * 4 + (1 << 20));
      [q, k, v, qs, ks, vs].forEach((t) => t.dispose());
    } finally {
      setNumThreads(n);
    }
  });
});
