// bfloat16 / float16 <-> float32 conversions for 16-bit tensors, whose data() is raw bits in a
// Uint16Array. Rounding is to nearest even, as on the GPU.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float32ToBfloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bfloat16BitsToFloat32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

export function float32ToFloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let v = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (v & 1))) v++;
    return sign | v;
  }
  let v = (abs >>> 13) - (112 << 10);
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (v & 1))) v++;
  return sign | v;
}

export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  if (exp === 0) return sign * man * 2 ** -24;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

function checkHalfDType(dtype: unknown, op: string): void {
  if (dtype !== 'bfloat16' && dtype !== 'float16') throw new TypeError(`${op}: dtype must be 'bfloat16' or 'float16', got ${JSON.stringify(dtype)}`);
}

/** Decodes the raw bits of a bfloat16 or float16 tensor's data into a Float32Array. */
export function decodeHalf(bits: Uint16Array, dtype: 'bfloat16' | 'float16'): Float32Array {
  checkHalfDType(dtype, 'decodeHalf');
  if (!(bits instanceof Uint16Array)) throw new TypeError('decodeHalf: bits must be a Uint16Array of raw 16-bit floats');
  const out = new Float32Array(bits.length);
  const f = dtype === 'bfloat16' ? bfloat16BitsToFloat32 : float16BitsToFloat32;
  for (let i = 0; i < bits.length; i++) out[i] = f(bits[i]);
  return out;
}

/** Rounds numbers to bfloat16 or float16 raw bits. */
export function encodeHalf(values: ArrayLike<number>, dtype: 'bfloat16' | 'float16'): Uint16Array {
  checkHalfDType(dtype, 'encodeHalf');
  const out = new Uint16Array(values.length);
  const f = dtype === 'bfloat16' ? float32ToBfloat16Bits : float32ToFloat16Bits;
  for (let i = 0; i < values.length; i++) out[i] = f(values[i]);
  return out;
}
