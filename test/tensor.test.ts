// Construction, validation, reading back and moving tensors.
import { describe, expect, it } from 'vitest';
import { decodeHalf, DisposedError, encodeHalf, memory, rand, randn, Tensor, tensor, zeros } from '../lib/index.js';
import { Rng } from './helpers/random.js';

describe('randn and rand', () => {
  it('a seed gives the same values everywhere; the distributions are the stated ones; options are checked', () => {
    const a = randn([100, 100], { seed: 7 }), b = randn([100, 100], { seed: 7 }), c = randn([100, 100], { seed: 8 });
    const va = Array.from(a.dataSync() as Float32Array);
    expect(Array.from(b.dataSync() as Float32Array)).toEqual(va);
    expect(Array.from(c.dataSync() as Float32Array)).not.toEqual(va);
    const mean = va.reduce((x, y) => x + y, 0) / va.length;
    const sd = Math.sqrt(va.reduce((x, y) => x + (y - mean) ** 2, 0) / va.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);      // 4 standard errors of the mean of 10,000
    expect(Math.abs(sd - 1)).toBeLessThan(0.03);
    const u = rand([10000], { seed: 1, low: -2, high: 3 });
    const vu = Array.from(u.dataSync() as Float32Array);
    expect(Math.min(...vu)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...vu)).toBeLessThan(3);
    expect(Math.abs(vu.reduce((x, y) => x + y, 0) / vu.length - 0.5)).toBeLessThan(0.06);
    // Unseeded calls continue one generator: two calls differ.
    const d = randn([8]), e = randn([8]);
    expect(Array.from(d.dataSync())).not.toEqual(Array.from(e.dataSync()));
    const h = randn([3, 5], { seed: 7, dtype: 'bfloat16', requiresGrad: true });
    expect(h.dtype).toBe('bfloat16');
    expect(h.shape).toEqual([3, 5]);
    expect(h.requiresGrad).toBe(true);
    expect(() => randn([2], { seed: 1.5 })).toThrow(TypeError);
    expect(() => randn([2], { dtype: 'int32' as never })).toThrow(TypeError);
    expect(() => randn([-1])).toThrow(RangeError);
    expect(() => rand([2], { low: 1, high: 1 })).toThrow(RangeError);
    for (const t of [a, b, c, u, d, e, h]) t.dispose();
  });
});

describe('tensor() construction', () => {
  it('takes a Float32Array without copying it', () => {
    const data = new Rng(1).normals(6);
    const before = memory();
    using t = tensor(data, [2, 3]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.device).toBe('cpu');
    expect(t.size).toBe(6);
    expect(memory().tensors).toBe(before.tensors + 1);
    expect(memory().hostBytes).toBe(before.hostBytes + 24);
    data[4] = 42.5; // shared memory: the tensor sees the write
    expect(t.dataSync()[4]).toBe(42.5);
  });

  it('copies when asked to', () => {
    const data = new Float32Array([1, 2, 3]);
    using t = tensor(data, [3], { copy: true });
    data[0] = 100;
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
  });

  it('takes an Int32Array as int32', () => {
    using t = tensor(new Int32Array([5, -7, 9, 11]), [2, 2]);
    expect(t.dtype).toBe('int32');
    expect(t.dataSync()).toBeInstanceOf(Int32Array);
    expect(Array.from(t.dataSync())).toEqual([5, -7, 9, 11]);
  });

  it('takes number[] (float32 by default, int32 on request)', () => {
    using f = tensor([0.5, 1.5, -2.25], [3]);
    expect(f.dtype).toBe('float32');
    expect(Array.from(f.dataSync())).toEqual([0.5, 1.5, -2.25]);
    using i = tensor([1, 2, 3, 4, 5, 6], [3, 2], { dtype: 'int32' });
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('defaults to a 1-D shape', () => {
    using t = tensor(new Float32Array(7).fill(0.25));
    expect(t.shape).toEqual([7]);
  });

  it('converts other numeric TypedArrays', () => {
    using t = tensor(new Float64Array([1.25, -3.5]), [2]);
    expect(t.dtype).toBe('float32');
    expect(Array.from(t.dataSync())).toEqual([1.25, -3.5]);
    using u = tensor(new Uint8Array([1, 2, 250]), [3], { dtype: 'int32' });
    expect(Array.from(u.dataSync())).toEqual([1, 2, 250]);
  });

  it('takes onnxruntime-style tensors and gives them back', () => {
    const ort = { type: 'float32', data: new Float32Array([1, 2, 3, 4, 5, 6]), dims: [1, 2, 3] };
    using t = tensor(ort);
    expect(t.shape).toEqual([1, 2, 3]);
    const back = t.toOrt();
    expect(back.type).toBe('float32');
    expect(back.dims).toEqual([1, 2, 3]);
    expect(Array.from(back.data)).toEqual([1, 2, 3, 4, 5, 6]);
    using i = tensor({ type: 'int32', data: new Int32Array([3, 4]), dims: [2] });
    expect(i.dtype).toBe('int32');
  });

  it('keeps float16/bfloat16 bits in Uint16Arrays', () => {
    const bits = new Uint16Array([0x3c00, 0xc000, 0x7bff]);
    using h = tensor(bits, [3], { dtype: 'float16' });
    expect(h.dtype).toBe('float16');
    expect(Array.from(h.dataSync())).toEqual([0x3c00, 0xc000, 0x7bff]);
    using b = tensor(new Uint16Array([0x3f80]), [1], { dtype: 'bfloat16' });
    expect(b.dtype).toBe('bfloat16');
  });

  it('rounds numbers to bfloat16/float16 (nearest even) and decodes them back', () => {
    const values = [1, -2.5, 0.1, 65504, 3.140625, 1e-7, -0];
    using b = tensor(values, [7], { dtype: 'bfloat16' });
    using h = tensor(new Float32Array(values), [7], { dtype: 'float16' });
    // bfloat16 keeps 8 significant bits, float16 11: compare with those roundings of the values.
    const bf = decodeHalf(b.dataSync() as Uint16Array, 'bfloat16');
    const hf = decodeHalf(h.dataSync() as Uint16Array, 'float16');
    values.forEach((v, i) => {
      expect(Math.abs(bf[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
      expect(Math.abs(hf[i] - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -25));
    });
    expect(Array.from(b.dataSync().slice(0, 2))).toEqual([0x3f80, 0xc020]);
    expect(Array.from(h.dataSync().slice(0, 4))).toEqual([0x3c00, 0xc100, 0x2e66, 0x7bff]);
    expect(Array.from(encodeHalf([1.00390625], 'bfloat16'))).toEqual([0x3f80]); // tie -> even
  });

  it('makes zero-filled tensors, including empty ones', () => {
    using z = zeros([3, 5]);
    expect(Array.from(z.dataSync())).toEqual(new Array(15).fill(0));
    using e = zeros([0, 4]);
    expect(e.size).toBe(0);
    expect(e.dataSync().length).toBe(0);
  });
});

describe('tensor() validation', () => {
  it('rejects a shape that does not fit the data with a RangeError that says both', () => {
    expect(() => tensor(new Float32Array(5), [2, 3])).toThrow(new RangeError('tensor: shape [2,3] needs 6 elements, got 5'));
    expect(() => tensor([1, 2, 3], [4])).toThrow(RangeError);
  });

  it('rejects bad shapes', () => {
    expect(() => tensor(new Float32Array(2), [2, -1] as number[])).toThrow(/tensor: shape\[1\]: expected an integer >= 0, got -1/);
    expect(() => tensor(new Float32Array(2), [1.5] as number[])).toThrow(RangeError);
    expect(() => tensor(new Float32Array(2), 'x' as unknown as number[])).toThrow(TypeError);
    expect(() => tensor(new Float32Array(1), [1, 1, 1, 1, 1, 1, 1, 1, 1])).toThrow(/at most 8 dimensions/);
  });

  it('rejects wrong types with TypeErrors naming the argument', () => {
    expect(() => tensor('abc' as unknown as number[])).toThrow(/tensor: data: expected a TypedArray/);
    expect(() => tensor([1, 'a'] as unknown as number[], [2])).toThrow(/tensor: data\[1\]: expected a number, got string/);
    expect(() => tensor(new Float32Array(2), [2], { dtype: 'float64' as 'float32' })).toThrow(TypeError);
    expect(() => tensor(new Int8Array(2), [2], { dtype: 'float16' })).toThrow(/float16 needs a Uint16Array of raw bits, a Float32Array or numbers/);
    expect(() => tensor(new BigInt64Array(2) as unknown as Float32Array, [2])).toThrow(TypeError);
    expect(() => tensor({ type: 'string', data: ['a'], dims: [1] })).toThrow(/type 'string' is not supported/);
  });

  it('rejects non-integer int32 data', () => {
    expect(() => tensor([1, 2.5], [2], { dtype: 'int32' })).toThrow(/int32 needs integers in \[-2\^31, 2\^31\), got 2.5/);
  });

  it('rejects unknown devices and names the one that is missing', () => {
    expect(() => tensor([1], [1], { device: 'tpu' as 'cpu' })).toThrow(RangeError);
  });

  it('cannot be constructed with new', () => {
    expect(() => new Tensor({} as never)).toThrow(TypeError);
  });
});

describe('reading and moving', () => {
  it('data() resolves to a copy off the JS thread', async () => {
    const src = new Rng(2).normals(1000);
    using t = tensor(src, [10, 100]);
    const out = await t.data();
    expect(out).toBeInstanceOf(Float32Array);
    expect(out).not.toBe(src);
    expect(Array.from(out)).toEqual(Array.from(src));
  });

  it('round-trips through the cuda-emu device with exact device byte counts', async () => {
    const src = new Rng(3).normals(37 * 3);
    using host = tensor(src, [37, 3]);
    const before = memory();
    using dev = host.toSync('cuda-emu');
    expect(dev.device).toBe('cuda-emu');
    expect(memory().deviceBytes).toBe(before.deviceBytes + 37 * 3 * 4);
    using devAsync = await host.to('cuda-emu');
    using back = await devAsync.to('cpu');
    expect(back.device).toBe('cpu');
    expect(Array.from(back.dataSync())).toEqual(Array.from(src));
    expect(Array.from(await dev.data())).toEqual(Array.from(src));
    using direct = tensor(src, [37, 3], { device: 'cuda-emu' });
    expect(Array.from(direct.dataSync())).toEqual(Array.from(src));
    using devCopy = dev.toSync('cuda-emu');
    expect(Array.from(devCopy.dataSync())).toEqual(Array.from(src));
  });

  it('to() validates the device', () => {
    using t = tensor([1, 2], [2]);
    expect(() => t.toSync('gpu' as 'cpu')).toThrow(/to: device: expected 'cpu', 'cuda', 'cuda-emu' or 'auto', got 'gpu'/);
  });

  it('reading a disposed tensor throws DisposedError naming the operation', async () => {
    const t = tensor([1, 2, 3], [3]);
    t.dispose();
    expect(() => t.dataSync()).toThrow(DisposedError);
    expect(() => t.dataSync()).toThrow('dataSync: tensor was disposed');
    await expect(t.data()).rejects.toThrow('data: tensor was disposed');
    expect(() => t.toSync('cpu')).toThrow('to: tensor was disposed');
    expect(String(t)).toContain('disposed');
  });
});
