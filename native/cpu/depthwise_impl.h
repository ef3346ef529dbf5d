// The depthwise convolution loops of conv2d on the CPU, written once and compiled twice: by
// conv2d.cpp (portable) and conv2d_avx2.cpp (with -mavx2 -mfma, where the compiler vectorises
// the channel loops 8 wide). Included only by those two files, inside their own namespaces.
//
// Layout: x(b, c, y, x) at xs = {sb, sc, sy, sx}; the output is channels-last, y[b, oy, ox, c].
// Algorithm: per output pixel, acc[c] = bias[c] + sum over taps of x[b, iy, ix, c] * wt[tap][c]
// (wt: the weights transposed to [tap][C] so the channel loop is contiguous on both sides),
// then the activation and the residual. Rows (b, oy) are the unit of parallel work.
// Cost: 2 * B * OH * OW * C * kh * kw flops; x read ~once (rows reused across taps via L1/L2).

// Computes output rows [r0, r1) (row = b * oh + oy). `acc` has room for C floats.
template <bool kUnitChannelStride>
void depthwise_rows(const Conv2dOpParams& p, const float* x, const float* wt, const float* bias,
                    const float* residual, float* y, int64_t r0, int64_t r1, float* acc,
                    void (*act)(Act, float*, int64_t)) {
  const int64_t C = p.c;
  const int64_t sc = kUnitChannelStride ? 1 : p.xs[1];
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t b = row / p.oh, oy = row % p.oh;
    for (int64_t ox = 0; ox < p.ow; ++ox) {
      if (bias != nullptr)
        for (int64_t c = 0; c < C; ++c) acc[c] = bias[c];
      else
        for (int64_t c = 0; c < C; ++c) acc[c] = 0.0f;
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
        if (iy < 0 || iy >= p.h) continue;
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
          if (ix < 0 || ix >= p.w) continue;
          const float* __restrict__ src = x + b * p.xs[0] + iy * p.xs[2] + ix * p.xs[3];
          const float* __restrict__ wk = wt + (ky * p.kw + kx) * C;
          float* __restrict__ a = acc;
          for (int64_t c = 0; c < C; ++c) a[c] += src[c * sc] * wk[c];
        }
      }
      if (p.act != 0) act(Act(p.act), acc, C);
      float* __restrict__ dst = y + ((b * p.oh + oy) * p.ow + ox) * C;
      if (residual != nullptr) {
        const float* __restrict__ r = residual + b * p.rs[0] + oy * p.rs[2] + ox * p.rs[3];
        const int64_t rsc = p.rs[1];
        if (rsc == 1)
          for (int64_t c = 0; c < C; ++c) dst[c] = acc[c] + r[c];
        else
          for (int64_t c = 0; c < C; ++c) dst[c] = acc[c] + r[c * rsc];
      } else {
        for (int64_t c = 0; c < C; ++c) dst[c] = acc[c];
      }
    }
  }
}
