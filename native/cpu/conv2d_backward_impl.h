// The loops of conv2d's gradient ops on the CPU (native/ops/conv2d.h: im2col, col2im,
// depthwiseConv2dBackward), written once and compiled twice: by conv2d_backward.cpp (portable)
// and conv2d_backward_avx2.cpp (with -mavx2 -mfma, where the compiler vectorises the channel
// loops 8 wide). Included only by those two files, inside their own namespaces.
//
// Layouts: x(b, c, y, x) and dy(b, c, y, x) through their strides (xs, ds); channel loops are
// innermost (contiguous in the channels-last layout of every activation); cols rows are
// (b, oy, ox), columns (ky, kx, c); dx is written channels-last [B, H, W, C].
// Gathers instead of scatters: an input pixel collects the (output pixel, tap) pairs that read
// it, oy = (iy + pad - ky * dil) / stride when that divides, so rows are independent (no
// atomics) and every output element is written once.
// Cost: im2col/col2im move B * OH * OW * kh * kw * C floats; the depthwise gradients do
// 2 * B * OH * OW * C * kh * kw flops each.

// Rows [m0, m1) of the im2col matrix.
void im2col_rows(const Conv2dOpParams& p, const float* x, float* cols, int64_t m0, int64_t m1) {
  const int64_t C = p.c, kk = p.kh * p.kw * C, hw = p.oh * p.ow;
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t b = m / hw, oy = (m % hw) / p.ow, ox = m % p.ow;
    float* row = cols + m * kk;
    for (int64_t ky = 0; ky < p.kh; ++ky) {
      const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        float* __restrict__ dst = row + (ky * p.kw + kx) * C;
        const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
        if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) {
          for (int64_t c = 0; c < C; ++c) dst[c] = 0.0f;
          continue;
        }
        const float* __restrict__ src = x + b * p.xs[0] + iy * p.xs[2] + ix * p.xs[3];
        if (p.xs[1] == 1)
          for (int64_t c = 0; c < C; ++c) dst[c] = src[c];
        else
          for (int64_t c = 0; c < C; ++c) dst[c] = src[c * p.xs[1]];
      }
    }
  }
}

// The output pixels (oy) that tap ky reads input row iy from, or -1.
inline int64_t source_row(int64_t i, int64_t pad, int64_t k, int64_t dil, int64_t stride, int64_t out) {
  const int64_t num = i + pad - k * dil;
  if (num < 0 || num % stride != 0) return -1;
  const int64_t o = num / stride;
  return o < out ? o : -1;
}

// Calls fn(oy, ox, tap) for every (output pixel, kernel tap) pair that reads input pixel (iy, ix).
template <class F>
inline void for_each_reader(const Conv2dOpParams& p, int64_t iy, int64_t ix, F&& fn) {
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const int64_t oy = source_row(iy, p.pad_h, ky, p.dil_h, p.stride_h, p.oh);
    if (oy < 0) continue;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const int64_t ox = source_row(ix, p.pad_w, kx, p.dil_w, p.stride_w, p.ow);
      if (ox >= 0) fn(oy, ox, ky * p.kw + kx);
    }
  }
}

// Input rows [r0, r1) (row = b * h + iy) of col2im: dx[b, iy, ix, :] = sum of the cols entries
// that read (iy, ix). acc has room for C floats.
void col2im_rows(const Conv2dOpParams& p, const float* cols, float* dx, int64_t r0, int64_t r1, float* acc) {
  const int64_t C = p.c, kk = p.kh * p.kw * C;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / p.h, iy = r % p.h;
    for (int64_t ix = 0; ix < p.w; ++ix) {
      for (int64_t c = 0; c < C; ++c) acc[c] = 0.0f;
      for_each_reader(p, iy, ix, [&](int64_t oy, int64_t ox, int64_t tap) {
        const float* __restrict__ src = cols + ((b * p.oh + oy) * p.ow + ox) * kk + tap * C;
        float* __restrict__ a = acc;
        for (int64_t c = 0; c < C; ++c) a[c] += src[c];
      });
      float* __restrict__ dst = dx + ((b * p.h + iy) * p.w + ix) * C;
      for (int64_t c = 0; c < C; ++c) dst[c] = acc[c];
    }
  }
}

// Depthwise, input rows [r0, r1) of dx: dx[b, iy, ix, c] = sum over taps of dy[b, c, oy, ox] *
// wt[tap][c] (wt: the weights as [tap][C]). dy's channel stride ds[1]; acc has room for C floats.
void depthwise_dx_rows(const ConvBackwardParams& q, const float* dy, const float* wt, float* dx, int64_t r0, int64_t r1,
                              float* acc) {
  const Conv2dOpParams& p = q.g;
  const int64_t C = p.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / p.h, iy = r % p.h;
    for (int64_t ix = 0; ix < p.w; ++ix) {
      for (int64_t c = 0; c < C; ++c) acc[c] = 0.0f;
      for_each_reader(p, iy, ix, [&](int64_t oy, int64_t ox, int64_t tap) {
        const float* __restrict__ g = dy + b * q.ds[0] + oy * q.ds[2] + ox * q.ds[3];
        const float* __restrict__ wk = wt + tap * C;
        float* __restrict__ a = acc;
        if (q.ds[1] == 1)
          for (int64_t c = 0; c < C; ++c) a[c] += g[c] * wk[c];
        else
          for (int64_t c = 0; c < C; ++c) a[c] += g[c * q.ds[1]] * wk[c];
      });
      float* __restrict__ dst = dx + ((b * p.h + iy) * p.w + ix) * C;
      for (int64_t c = 0; c < C; ++c) dst[c] = acc[c];
    }
  }
}

// Depthwise, output rows [r0, r1) (row = b * oh + oy): adds dy[b, c, oy, ox] * x[b, c, iy, ix] of
// every pixel and tap into dw[tap][c]. g and xr have room for C floats each.
void depthwise_dw_rows(const ConvBackwardParams& q, const float* dy, const float* x, float* dw, int64_t r0, int64_t r1,
                              float* g, float* xr) {
  const Conv2dOpParams& p = q.g;
  const int64_t C = p.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / p.oh, oy = r % p.oh;
    for (int64_t ox = 0; ox < p.ow; ++ox) {
      const float* gp = dy + b * q.ds[0] + oy * q.ds[2] + ox * q.ds[3];
      if (q.ds[1] == 1)
        for (int64_t c = 0; c < C; ++c) g[c] = gp[c];
      else
        for (int64_t c = 0; c < C; ++c) g[c] = gp[c * q.ds[1]];
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
        if (iy < 0 || iy >= p.h) continue;
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
          if (ix < 0 || ix >= p.w) continue;
          const float* __restrict__ src = x + b * p.xs[0] + iy * p.xs[2] + ix * p.xs[3];
          const float* __restrict__ xv = src;
          if (p.xs[1] != 1) {
            for (int64_t c = 0; c < C; ++c) xr[c] = src[c * p.xs[1]];
            xv = xr;
          }
          float* __restrict__ w = dw + (ky * p.kw + kx) * C;
          const float* __restrict__ gv = g;
          for (int64_t c = 0; c < C; ++c) w[c] += gv[c] * xv[c];
        }
      }
    }
  }
}
