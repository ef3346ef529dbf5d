// Window attention (SPEC section 2) on the fused kernel of group_attention.cuh: groups are the
// windows of the padded, cyclically shifted grid, computed from geometry in the Map (no index
// tables); padded slots are neither keys nor written; with a shift, Swin's region labels mask
// keys of other regions. Cost and traffic as SEC attention at the same group size, minus the
// scores and the sort.
#include "attention_launch.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

struct WindowMap {
  int height, width, hp, wp, wh, ww, sh, sw, nwx;
  // Relative position bias [heads, N, N] (N = wh * ww) by window slot, float32 whatever q's dtype
  // (both kernel families read it: fp32 and tensor-core), and its float32 gradient (accumulated
  // with atomics: every image and window adds to one [N, N] per head); null: none.
  const float* bias;
  float* dbias;
  int heads;
  static constexpr bool kMasked = true;
  static constexpr bool kBiased = true;
  __device__ __forceinline__ float bias_at(int bh, int qs, int ks) const {
    const int n = wh * ww;
    return bias == nullptr ? 0.0f : bias[(int64_t(bh % heads) * n + qs) * n + ks];
  }
  __device__ __forceinline__ void add_dbias(int bh, int qs, int ks, float v) const {
    const int n = wh * ww;
    if (dbias != nullptr) atomicAdd(dbias + (int64_t(bh % heads) * n + qs) * n + ks, v);
  }
  __device__ __forceinline__ int size(int, int) const { return wh * ww; }
  __device__ __forceinline__ int token(int, int g, int s) const {
    const int ys = (g / nwx) * wh + s / ww, xs = (g % nwx) * ww + s % ww;
    const int y = (ys + sh) % hp, x = (xs + sw) % wp;
    return (y < height && x < width) ? y * width + x : -1;
  }
  // Swin's regions of the rolled, padded grid per axis: [0, P-w), [P-w, P-s), [P-s, P).
  __device__ __forceinline__ static int region(int x, int p, int w, int s) {
    return s == 0 ? 0 : (x < p - w ? 0 : (x < p - s ? 1 : 2));
  }
  __device__ __forceinline__ int label(int g, int s) const {
    const int ys = (g / nwx) * wh + s / ww, xs = (g % nwx) * ww + s % ww;
    return region(ys, hp, wh, sh) * 3 + region(xs, wp, ww, sw);
  }
};

}  // namespace

WindowMap window_map(const CudaWindowArgs& w, int* windows, const float* bias = nullptr, float* dbias = nullptr,
                     int heads = 1) {
  const int hp = int((w.height + w.win_h - 1) / w.win_h * w.win_h);
  const int wp = int((w.width + w.win_w - 1) / w.win_w * w.win_w);
  const int nwx = wp / int(w.win_w);
  *windows = (hp / int(w.win_h)) * nwx;
  return WindowMap{int(w.height), int(w.width), hp, wp, int(w.win_h), int(w.win_w), int(w.shift_h), int(w.shift_w), nwx,
                   bias, dbias, heads};
}

void window_attention(const CudaAttentionArgs& a, const CudaWindowArgs& w, const float* bias, int heads) {
  if (a.bh * a.l == 0) return;
  int windows = 0;
  const WindowMap map = window_map(w, &windows, bias, nullptr, heads);
  launch_attention(a, map, windows, int(w.win_h * w.win_w), "window attention kernel");
}

namespace {
void window_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  window_attention(attention_args(a),
                   CudaWindowArgs{p.height, p.width, p.win_h, p.win_w, p.shift_h, p.shift_w},
                   p.has_bias ? a.in[3].ptr<float>() : nullptr, int(p.h));
}
void window_backward_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  float* dbias = p.has_bias ? const_cast<float*>(a.out[3].ptr<float>()) : nullptr;
  if (dbias != nullptr)
    SV_CUDA_CHECK(cudaMemsetAsync(dbias, 0, size_t(p.h * p.win_h * p.win_w * p.win_h * p.win_w) * sizeof(float), stream()));
  if (p.b * p.h * p.l == 0) return;
  int windows = 0;
  const WindowMap map = window_map(CudaWindowArgs{p.height, p.width, p.win_h, p.win_w, p.shift_h, p.shift_w}, &windows,
                                   p.has_bias ? a.in[6].ptr<float>() : nullptr, dbias, int(p.h));
  launch_attention_backward(a, map, windows, int(p.win_h * p.win_w), "window attention backward kernel");
}
}  // namespace

SECVIT_KERNEL(windowAttention, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, window_kernel, attention_supports, 0);
SECVIT_KERNEL(windowAttentionBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, window_backward_kernel, attention_supports, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
