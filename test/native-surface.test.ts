// The native surface validates everything itself: garbage from JS (wrong types, wrong handles,
// disposed handles, absurd numbers) gets a JS exception, never a crash. Every exported
// function is called with a grid of bad arguments.
import { describe, expect, it } from 'vitest';
import { native } from '../lib/native.js';

const garbage: unknown[] = [
  undefined, null, 0, -1, 1.5, NaN, Infinity, 2 ** 53, 'cpu', '', {}, [], [-1], [1e12, 1e12],
  new Float32Array(3), new Int8Array(2), () => 1, Symbol('x'), 10n, { type: 'float32', data: [], dims: [] },
];

describe('native surface', () => {
  it('rejects garbage arguments to every function with a JS error', async () => {
    const live = native.createTensor(new Float32Array([1, 2, 3, 4]), [1, 1, 2, 2], 'float32', 'cpu', true);
    const dead = native.createTensor(new Float32Array([1]), [1], 'float32', 'cpu', true);
    dead.dispose();
    const values = [...garbage, live, dead, new native.TensorHandle()];
    const fns = Object.entries(native).filter(([, v]) => typeof v === 'function' && v !== native.TensorHandle) as Array<[string, (...a: unknown[]) => unknown]>;
    let calls = 0;
    const pending: Promise<unknown>[] = [];
    for (const [name, fn] of fns) {
      for (const a of values) {
        for (const b of [values[0], values[4], live, dead, values[8]]) {
          const args = [a, b, b, 2, true, 2, 2, 1, 1];
          try {
            const r = fn.apply(native, args);
            // A call that happened to be valid: clean up what it made.
            if (r instanceof Promise) pending.push(r.then((x) => disposeResult(x), (e) => expect(e).toBeInstanceOf(Error)));
            else disposeResult(r);
          } catch (e) {
            expect(e, `${name} threw a non-Error`).toBeInstanceOf(Error);
          }
          calls++;
        }
      }
    }
    expect(calls).toBeGreaterThan(1000);
    await Promise.all(pending);
    // Handle methods on a disposed handle and on a bare handle.
    for (const h of [dead, new native.TensorHandle()]) {
      expect(() => h.readSync()).toThrow(/was disposed/);
      expect(() => h.toSync('cpu')).toThrow(/was disposed/);
      expect(() => h.info()).toThrow(/was disposed/);
    }
    live.dispose();
    native.setNumThreads(native.availableCores());
  });

  it('run and view check arrays element by element', () => {
    const live = native.createTensor(new Float32Array([1, 2, 3, 4]), [2, 2], 'float32', 'cpu', true);
    const add = native.opNames().indexOf('add');
    try {
      // Views must stay inside the storage (4 elements), with one stride per dim, none negative.
      expect(() => native.view(live, [10], [1], 0)).toThrow(RangeError);
      expect(() => native.view(live, [2, 2], [2, 1], 1)).toThrow(/reaches element 4 of a storage of 4/);
      expect(() => native.view(live, [2], [-1], 3)).toThrow(RangeError);
      expect(() => native.view(live, [2], [1, 1], 0)).toThrow(/1 sizes but 2 strides/);
      expect(() => native.view(live, [2, 2], [1, 2], -1)).toThrow(RangeError);
      expect(() => native.view(live, Array(9).fill(1), Array(9).fill(1), 0)).toThrow(/at most 8 dimensions/);
      expect(() => native.view(live, [2, 'x' as never], [2, 1], 0)).toThrow(TypeError);
      const t = native.view(live, [2, 2], [1, 2], 0); // the transpose: a valid view
      t.dispose();
      // run: the op id, the inputs and the attributes are checked before anything is queued.
      expect(() => native.run(-1, [live, live], [0], false)).toThrow(RangeError);
      expect(() => native.run(native.opNames().length, [live, live], [0], false)).toThrow(RangeError);
      expect(() => native.run(add, [live], [0], false)).toThrow(/add: expected 2 inputs, got 1/);
      expect(() => native.run(add, live as never, [0], false)).toThrow(/add: inputs must be an array/);
      expect(() => native.run(add, ['x' as never, live], [0], false)).toThrow(TypeError);
      expect(() => native.run(add, [live, live], ['1' as never], false)).toThrow(/add: attribute 0 must be a number/);
      expect(() => native.run(add, [live, live], Array(100).fill(0), false)).toThrow(/add: too many attributes/);
      expect(() => native.run(add, [live, live], [], false)).toThrow(/add: expected 1 attributes, got 0/);
      expect(() => native.run(add, [live, live], [0], 1 as never)).toThrow(/^add: sync: expected a boolean, got number$/);
      const y = native.run(add, [live, live], [0], true) as { dispose(): void };
      y.dispose();
    } finally {
      live.dispose();
    }
  });
});

function disposeResult(r: unknown) {
  if (r instanceof native.TensorHandle) (r as { dispose(): void }).dispose();
  else if (r && typeof r === 'object' && 'out' in r) {
    const pair = r as unknown as { out: { dispose(): void }; order: { dispose(): void } };
    pair.out.dispose();
    pair.order.dispose();
  }
}
