// Every fused op against the composition of the unfused ops it replaces, on every backend:
// the same numbers whether the model runs fused or layer by layer. fp32: both sides accumulate
// in fp32 with different orders and roundings of intermediates, ~1e-6; bound 1e-5.
import { describe, expect, it } from 'vitest';
import {
  add, conv2d, fusedConv2d, fusedLinear, gelu, layerNorm, linear, mul, rope2d, silu, tensor, tidy,
  type Device,
} from '../lib/index.js';
import { relError, Rng } from './helpers/random.js';
import { testDevices } from './helpers/backends.js';
import { numel } from './reference/layers.js';

const DEVICES: Device[] = testDevices();
const TOL = 1e-5;

describe.each(DEVICES)('fused ops equal their parts on %s', (device) => {
  const rng = new Rng(91);
  const t = (shape: number[], scale = 1) => tensor(rng.normals(numel(shape), scale), shape, { device });

  it('fusedLinear: LN prologue, GELU, layer scale and residual', () => {
    tidy(() => {
      const x = t([2, 37, 24]);
      const w = t([40, 24], 0.3);
      const b = t([40]);
      const lw = t([24]);
      const lb = t([24]);
      const g = t([40]);
      const r = t([2, 37, 40]);
      const fused = fusedLinear(x, w, b, { norm: { weight: lw, bias: lb, eps: 1e-6 }, activation: 'gelu', scale: g, residual: r });
      const parts = add(mul(gelu(linear(layerNorm(x, lw, lb, { eps: 1e-6 }), w, b)), g), r);
      expect(relError(fused.dataSync(), parts.dataSync())).toBeLessThan(TOL);
    });
  });

  it('fusedLinear: add prologue and SiLU', () => {
    tidy(() => {
      const x = t([50, 16]);
      const a = t([50, 16]);
      const w = t([20, 16], 0.3);
      const fused = fusedLinear(x, w, null, { add: a, activation: 'silu' });
      const parts = silu(linear(add(x, a), w));
      expect(relError(fused.dataSync(), parts.dataSync())).toBeLessThan(TOL);
    });
  });

  it('fusedLinear: qkv with RoPE and the key scale equals linear, then rope2d on the q and k views', () => {
    tidy(() => {
      const [bsz, hgt, wid, heads, d] = [2, 4, 5, 3, 8];
      const l = hgt * wid;
      const e = heads * d;
      const x = t([bsz, l, e]);
      const w = t([3 * e, e], 0.3);
      const b = t([3 * e]);
      const angle = tensor(Float32Array.from([1, 1, 0.01, 0.01]), [d / 2], { device });
      const kScale = d ** -0.5;
      const fused = fusedLinear(x, w, b, { rope: { angle, heads, height: hgt, width: wid, kScale } });
      const plain = linear(x, w, b);
      // [B, L, 3, heads, d] -> q, k, v as [B, heads, L, d] views.
      const split = plain.reshape([bsz, l, 3, heads, d]);
      const part = (i: number) => split.narrow(2, i, 1).reshape([bsz, l, heads, d]).permute([0, 2, 1, 3]);
      const q = rope2d(part(0), angle, { height: hgt, width: wid });
      const k = mul(rope2d(part(1), angle, { height: hgt, width: wid }), kScale);
      const fsplit = fused.reshape([bsz, l, 3, heads, d]);
      const fpart = (i: number) => fsplit.narrow(2, i, 1).reshape([bsz, l, heads, d]).permute([0, 2, 1, 3]).contiguous();
      expect(relError(fpart(0).dataSync(), q.dataSync())).toBeLessThan(TOL);
      expect(relError(fpart(1).dataSync(), k.dataSync())).toBeLessThan(TOL);
      expect(relError(fpart(2).dataSync(), part(2).contiguous().dataSync())).toBeLessThan(TOL);
    });
  });

  it('fusedConv2d: 3x3 stride 2 with GELU and residual; depthwise with residual', () => {
    tidy(() => {
      const x = t([2, 8, 9, 7]).contiguous('channelsLast');
      const w = t([12, 8, 3, 3], 0.3);
      const b = t([12]);
      const r = t([2, 12, 5, 4]);
      const fused = fusedConv2d(x, w, b, { stride: 2, padding: 1, activation: 'gelu', residual: r });
      const parts = add(gelu(conv2d(x, w, b, { stride: 2, padding: 1 })), r);
      expect(relError(fused.dataSync(), parts.dataSync())).toBeLessThan(TOL);
      const dw = t([8, 1, 3, 3]);
      const fdw = fusedConv2d(x, dw, null, { padding: 1, groups: 8, residual: x });
      const pdw = add(conv2d(x, dw, null, { padding: 1, groups: 8 }), x);
      expect(relError(fdw.dataSync(), pdw.dataSync())).toBeLessThan(TOL);
    });
  });

  it('fusedConv2d with scale: a batch norm after the conv, equal to conv * scale + bias; its rules', () => {
    tidy(() => {
      const x = t([1, 6, 8, 7]).contiguous('channelsLast');
      const w = t([10, 6, 3, 3], 0.3);
      const s = t([10]);
      const b = t([10]);
      const fused = fusedConv2d(x, w, b, { stride: 2, padding: 1, scale: s, activation: 'silu' });
      const parts = silu(add(mul(conv2d(x, w, null, { stride: 2, padding: 1 }), s.reshape([1, 10, 1, 1])), b.reshape([1, 10, 1, 1])));
      expect(relError(fused.dataSync(), parts.dataSync())).toBeLessThan(TOL);
      expect(() => fusedConv2d(x, t([6, 1, 3, 3]), null, { padding: 1, groups: 6, scale: t([6]) }))
        .toThrow(/conv2d: scale is supported for dense, grouped and 1x1 convolutions, not depthwise ones/);
      expect(() => fusedConv2d(x, w, b, { scale: t([9]) })).toThrow(RangeError);
      expect(() => fusedConv2d(x, w, b, { scale: t([9]) })).toThrow(/scale must be \[10\], got \[9\]/);
      expect(() => fusedConv2d(x, w, b, { scale: tensor(new Int32Array(10), [10], { device }) })).toThrow(TypeError);
    });
  });
});

