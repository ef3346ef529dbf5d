// Self-test of the CUDA emulator (native/emu) and of the tensor-core wrapper (native/cuda/mma.cuh).
// Written with the SV_* macros so that the same file compiles under nvcc (run_emu_selftest.sh
// compiles it there to keep it honest) and, with SECVIT_CUDA_EMU, under g++, where it runs.
// Every check compares with a plain host computation and prints PASS or FAIL; the exit code is
// non-zero if anything failed. Checks of emulator-only behaviour (poisoned shared memory, error
// reports for broken barriers, exceptions) are compiled only for the emulator.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../../native/cuda/cuda_compat.h"
#include "../../native/cuda/mma.cuh"

#if defined(SECVIT_CUDA_EMU) && defined(__SANITIZE_ADDRESS__)
#include <sys/wait.h>
#include <unistd.h>
#define SELFTEST_ASAN 1
#else
#define SELFTEST_ASAN 0
#endif

namespace {

int g_failures = 0;

void report(bool ok, const char* name, const std::string& detail = std::string()) {
  if (ok) {
    std::printf("PASS  %s%s%s\n", name, detail.empty() ? "" : ": ", detail.c_str());
  } else {
    ++g_failures;
    std::printf("FAIL  %s%s%s\n", name, detail.empty() ? "" : ": ", detail.c_str());
  }
  std::fflush(stdout);
}

// Device buffer with host staging, freed on scope exit.
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceBuffer(size_t n) : count(n) { SV_CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T))); }
  DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { (void)cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& host) {
    SV_CUDA_CHECK(cudaMemcpy(ptr, host.data(), count * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count);
    SV_CUDA_CHECK(cudaMemcpy(host.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  void fill(int byte) { SV_CUDA_CHECK(cudaMemset(ptr, byte, count * sizeof(T))); }
};

std::string launch_error_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + ": " + secvit::cuda_launch_detail(err);
}

// ---- kernels ------------------------------------------------------------------------------------

// One partial sum per block: a strided loop over the block's chunk, then a tree reduction in
// static shared memory that works for any block size (2-D blocks, odd thread counts).
__global__ void block_sum_kernel(const float* in, float* out, int n, int chunk) {
  SV_SHARED(float[1024], partial);
  const int tid = threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y;
  const int nthreads = blockDim.x * blockDim.y * blockDim.z;
  const int begin = blockIdx.x * chunk;
  const int end = min(begin + chunk, n);
  float acc = 0.0f;
  for (int i = begin + tid; i < end; i += nthreads) acc += in[i];
  partial[tid] = acc;
  __syncthreads();
  int span = 1;
  while (span < nthreads) span <<= 1;
  for (int s = span >> 1; s > 0; s >>= 1) {
    if (tid < s && tid + s < nthreads) partial[tid] += partial[tid + s];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = partial[0];
}

// Per warp: xor-butterfly sum (every lane ends with the total), down-shift sum (lane 0), ballot,
// an inclusive scan with __shfl_up_sync and a segmented (width 8) broadcast.
__global__ void warp_ops_kernel(const int* in, int* xor_sum, int* down_sum, unsigned* ballots,
                                int* scan, int* seg_bcast, int* lanes_agree) {
  const int gid = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32;
  const int warp = gid / 32;
  const int v = in[gid];

  int x = v;
  for (int m = 16; m > 0; m >>= 1) x += __shfl_xor_sync(0xffffffffu, x, m);
  int d = v;
  for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(0xffffffffu, d, o);
  const unsigned ballot = __ballot_sync(0xffffffffu, v > 50);
  int s = v;
  for (int o = 1; o < 32; o <<= 1) {
    const int up = __shfl_up_sync(0xffffffffu, s, o);
    if (lane >= o) s += up;
  }
  const int seg = __shfl_sync(0xffffffffu, v, 3, 8);  // lane 3 of each group of 8

  const int total0 = __shfl_sync(0xffffffffu, x, 0);
  if (x != total0) atomicExch(&lanes_agree[warp], 0);
  if (lane == 0) {
    xor_sum[warp] = x;
    down_sum[warp] = d;
    ballots[warp] = ballot;
  }
  scan[gid] = s;
  seg_bcast[gid] = seg;
}

// Warp shuffles of 8-byte values and of a float, through the template.
__global__ void shfl_types_kernel(double* dout, unsigned long long* uout, float* fout) {
  const int lane = threadIdx.x;
  const double dv = 0.5 * lane;
  const unsigned long long uv = (1ull << 40) + lane;
  const float fv = 1.25f * lane;
  dout[lane] = __shfl_xor_sync(0xffffffffu, dv, 1);
  uout[lane] = __shfl_down_sync(0xffffffffu, uv, 2);
  fout[lane] = __shfl_sync(0xffffffffu, fv, 31 - lane);
}

// Reverses each block's segment through dynamic shared memory.
__global__ void reverse_kernel(const int* in, int* out, int n) {
  SV_DYNAMIC_SHARED(int, tile);
  const int t = threadIdx.x;
  const int base = blockIdx.x * blockDim.x;
  if (base + t < n) tile[t] = in[base + t];
  __syncthreads();
  const int len = min(int(blockDim.x), n - base);
  if (t < len) out[base + t] = tile[len - 1 - t];
}

__global__ void atomics_kernel(float* fsum, int* isum, unsigned* umax, int* cas_counter,
                               unsigned long long* ull_sum) {
  const unsigned gid = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(fsum, 0.5f);
  atomicAdd(isum, 1);
  atomicMax(umax, gid);
  atomicAdd(ull_sum, 3ull);
  int old = *cas_counter;
  for (;;) {
    const int seen = atomicCAS(cas_counter, old, old + 2);
    if (seen == old) break;
    old = seen;
  }
}

__global__ void syncthreads_variants_kernel(int* out) {
  const int t = threadIdx.x;
  const int count = __syncthreads_count(t % 3 == 0);
  const int all = __syncthreads_and(t < 1000);
  const int any = __syncthreads_or(t == 77);
  const int none = __syncthreads_or(0);
  if (t == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = any;
    out[3] = none;
  }
}

// Fragments packed with the documented layout (written out per register, independently of the
// emulator's index formulas), one 16x8 tile per warp; tile w uses rows [16w, 16w+16) of A.
template <bool kBf16>
__global__ void mma_kernel(const uint16_t* A, const uint16_t* Bt, const float* C, float* D) {
  const int lane = threadIdx.x % 32;
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const uint16_t* a_tile = A + warp * 16 * 16;  // 16x16 row-major
  const uint16_t* b_tile = Bt + warp * 8 * 16;  // B stored column-major: Bt[n][k]
  const float* c_tile = C + warp * 16 * 8;      // 16x8 row-major
  float* d_tile = D + warp * 16 * 8;
  const int g = lane / 4, t = lane % 4;
  auto pack = [](uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); };
  uint32_t a[4], b[2];
  a[0] = pack(a_tile[g * 16 + 2 * t], a_tile[g * 16 + 2 * t + 1]);
  a[1] = pack(a_tile[(g + 8) * 16 + 2 * t], a_tile[(g + 8) * 16 + 2 * t + 1]);
  a[2] = pack(a_tile[g * 16 + 2 * t + 8], a_tile[g * 16 + 2 * t + 9]);
  a[3] = pack(a_tile[(g + 8) * 16 + 2 * t + 8], a_tile[(g + 8) * 16 + 2 * t + 9]);
  b[0] = pack(b_tile[g * 16 + 2 * t], b_tile[g * 16 + 2 * t + 1]);
  b[1] = pack(b_tile[g * 16 + 2 * t + 8], b_tile[g * 16 + 2 * t + 9]);
  float c[4] = {c_tile[g * 8 + 2 * t], c_tile[g * 8 + 2 * t + 1], c_tile[(g + 8) * 8 + 2 * t],
                c_tile[(g + 8) * 8 + 2 * t + 1]};
  float d[4];
  if (kBf16) {
    sv_mma_m16n8k16_bf16(d, a, b, c);
  } else {
    sv_mma_m16n8k16_f16(d, a, b, c);
  }
  d_tile[g * 8 + 2 * t] = d[0];
  d_tile[g * 8 + 2 * t + 1] = d[1];
  d_tile[(g + 8) * 8 + 2 * t] = d[2];
  d_tile[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// Per lane of one warp: results of the less common warp, bit and atomic intrinsics.
__global__ void misc_intrinsics_kernel(const unsigned* in, unsigned* out, unsigned* counter) {
  const int lane = threadIdx.x;
  const unsigned v = in[lane];
  unsigned* o = out + lane * 12;
  o[0] = __reduce_add_sync(0xffffffffu, v);
  o[1] = unsigned(__reduce_min_sync(0xffffffffu, int(v) - 50));
  o[2] = __reduce_max_sync(0xffffffffu, v);
  o[3] = __match_any_sync(0xffffffffu, v % 4);
  o[4] = unsigned(__any_sync(0xffffffffu, v == 7u)) |
         (unsigned(__all_sync(0xffffffffu, v < 1000u)) << 1);
  __syncwarp();
  o[5] = __activemask();
  o[6] = __brev(v);
  o[7] = unsigned(__popc(v)) | (unsigned(__clz(int(v))) << 8) | (unsigned(__ffs(int(v))) << 16);
  o[8] = __byte_perm(v, 0x89abcdefu, 0x7351u);
  o[9] = __funnelshift_l(v, 0x12345678u, 12);
  o[10] = atomicInc(counter, 15u);  // wraps to 0 after 15: 32 increments end at 32 % 16
  o[11] = __reduce_xor_sync(0x0000ffffu << (lane < 16 ? 0 : 16), v);
}

__global__ void no_args_kernel() {}

__global__ void barrier_bench_kernel(float* out) {
  SV_SHARED(float[128], buf);
  const int t = threadIdx.x;
  buf[t] = float(t);
  __syncthreads();
  float v = buf[(t + 1) % 128];
  __syncthreads();
  buf[t] = v * 2.0f;
  __syncthreads();
  v += buf[(t + 5) % 128];
  __syncthreads();
  if (t == 0) out[blockIdx.x] = v;
}

// Deliberately racy: after the barrier, each warp overwrites its half of `buf` and then reads
// the other warp's half, with warp collectives but no barrier in between. Correct only if the
// other warp has not got that far yet, which depends on the order warps run in.
__global__ void racy_halves_kernel(int* out) {
  SV_SHARED(int[64], buf);
  const int t = threadIdx.x;
  buf[t] = t;
  __syncthreads();
  int v = __shfl_xor_sync(0xffffffffu, t, 1);
  buf[t] = -1;  // missing __syncthreads() before this write
  v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[t] = buf[t ^ 32] + 0 * v;
}

// 40 KiB of static shared memory, plus whatever dynamic memory the launch asks for.
__global__ void big_static_kernel(int* out) {
  SV_SHARED(int[10240], big);
  SV_DYNAMIC_SHARED(int, dyn);
  big[threadIdx.x] = int(threadIdx.x);
  dyn[threadIdx.x] = 1;
  __syncthreads();
  out[threadIdx.x] = big[threadIdx.x] + dyn[threadIdx.x];
}

__global__ void copy_kernel(const float* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i] * 2.0f;
}

#if defined(SECVIT_CUDA_EMU)
// Reads shared memory before anything wrote it; the emulator fills it with 0xFF bytes.
__global__ void poison_kernel(unsigned* static_seen, unsigned* dynamic_seen, float* nan_seen) {
  SV_SHARED(unsigned[64], s);
  SV_DYNAMIC_SHARED(unsigned, dyn);
  const int t = threadIdx.x;
  const int o = blockIdx.x * 64 + t;
  static_seen[o] = s[t];
  dynamic_seen[o] = dyn[t];
  nan_seen[o] = reinterpret_cast<float*>(s)[t];
  __syncthreads();
  s[t] = 0;  // the next block must see poison again, not these zeros
  dyn[t] = 0;
}

__global__ void partial_barrier_kernel(int* out) {
  if (threadIdx.x >= 64) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void partial_shuffle_kernel(int* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void mask_mismatch_kernel(int* out) {
  // Lanes 0-15 name the whole warp and wait for 16-31, which arrive naming only themselves.
  const unsigned mask = threadIdx.x < 16 ? 0xffffffffu : 0xffff0000u;
  out[threadIdx.x] = __shfl_xor_sync(mask, int(threadIdx.x), 1);
}

// Divergent halves with their own disjoint masks: legal, must not deadlock.
__global__ void split_warp_kernel(int* out) {
  const int lane = threadIdx.x;
  int v = lane;
  if (lane < 16) {
    for (int m = 8; m > 0; m >>= 1) v += __shfl_xor_sync(0x0000ffffu, v, m);
  } else {
    for (int m = 8; m > 0; m >>= 1) v += __shfl_xor_sync(0xffff0000u, v, m);
  }
  out[lane] = v;
}

__global__ void big_static_shared_kernel(float* out) {
  SV_SHARED(float[8192], a);
  SV_SHARED(float[8192], b);  // 64 KiB in all: more than the 48 KiB of static shared memory
  a[threadIdx.x] = b[threadIdx.x] = 1.0f;
  out[threadIdx.x] = a[threadIdx.x] + b[threadIdx.x];
}

__global__ void inconsistent_shared_kernel(float* out) {
  if (threadIdx.x < 32) {
    SV_SHARED(float[32], a);
    a[threadIdx.x] = 1.0f;
    out[threadIdx.x] = a[threadIdx.x];
  } else {
    SV_SHARED(double[32], a);
    a[threadIdx.x - 32] = 1.0;
    out[threadIdx.x] = float(a[threadIdx.x - 32]);
  }
}

__global__ void trap_kernel(float* out) {
  if (threadIdx.x == 5) __trap();
  out[threadIdx.x] = 1.0f;
}

__global__ void throwing_kernel(int* out) {
  if (blockIdx.x == 1 && threadIdx.x == 77) {
    throw std::runtime_error("deliberate failure in thread 77");
  }
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

#endif

#if SELFTEST_ASAN
__global__ void oob_read_kernel(const float* in, float* out, int n) {
  const int i = threadIdx.x;
  out[i] = in[i + n - 31];  // thread 31 reads in[n]: one past the end of the allocation
}

__global__ void static_shared_oob_kernel(float* out) {
  SV_SHARED(float[33], a);
  SV_SHARED(float[8], b);
  const int t = threadIdx.x;
  a[t] = 1.0f;  // thread 33 writes a[33], one past the end, into the padding before b
  b[t % 8] = 2.0f;
  __syncthreads();
  out[t] = a[t] + b[t % 8];
}

__global__ void dynamic_shared_oob_kernel(float* out) {
  SV_DYNAMIC_SHARED(float, s);
  const int t = threadIdx.x;
  s[t] = float(t);  // the launch provides 32 floats; thread 32 writes one past them
  __syncthreads();
  out[t] = s[t];
}
#endif

// ---- host-side helpers -----------------------------------------------------------------------

uint16_t f32_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
float bf16_bits_to_f32(uint16_t h) {
  const uint32_t x = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---- tests -------------------------------------------------------------------------------------

void test_block_sum(std::mt19937& rng, dim3 block, int nblocks, int n, const char* name) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> h(n);
  for (float& v : h) v = dist(rng);
  const int chunk = (n + nblocks - 1) / nblocks;
  DeviceBuffer<float> din(h);
  DeviceBuffer<float> dout(nblocks);
  SV_LAUNCH(block_sum_kernel, nblocks, block, 0, nullptr, din.ptr, dout.ptr, n, chunk);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return report(false, name, launch_error_text(err));
  const std::vector<float> got = dout.download();
  double worst = 0.0;
  for (int b = 0; b < nblocks; ++b) {
    double ref = 0.0;
    for (int i = b * chunk; i < std::min(n, (b + 1) * chunk); ++i) ref += h[i];
    worst = std::max(worst, std::fabs(ref - got[b]));
  }
  char buf[128];
  std::snprintf(buf, sizeof(buf), "block (%u,%u,%u), %d blocks, n=%d, max abs err %.2e", block.x,
                block.y, block.z, nblocks, n, worst);
  report(worst < 1e-3, name, buf);
}

void test_warp_ops(std::mt19937& rng) {
  const int nwarps = 6, n = nwarps * 32;
  std::uniform_int_distribution<int> dist(0, 100);
  std::vector<int> h(n);
  for (int& v : h) v = dist(rng);
  DeviceBuffer<int> din(h), xs(nwarps), ds(nwarps), scan(n), seg(n), agree(nwarps);
  DeviceBuffer<unsigned> ballots(nwarps);
  agree.upload(std::vector<int>(nwarps, 1));
  SV_LAUNCH(warp_ops_kernel, 3, 64, 0, nullptr, din.ptr, xs.ptr, ds.ptr, ballots.ptr, scan.ptr,
            seg.ptr, agree.ptr);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return report(false, "warp shuffles", launch_error_text(err));
  const auto gx = xs.download(), gd = ds.download(), gs = scan.download(), gseg = seg.download(),
             gag = agree.download();
  const auto gb = ballots.download();
  bool xor_ok = true, down_ok = true, ballot_ok = true, scan_ok = true, seg_ok = true;
  for (int w = 0; w < nwarps; ++w) {
    int sum = 0, run = 0;
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) {
      const int v = h[w * 32 + l];
      sum += v;
      run += v;
      if (v > 50) ballot |= 1u << l;
      if (gs[w * 32 + l] != run) scan_ok = false;
      if (gseg[w * 32 + l] != h[w * 32 + (l / 8) * 8 + 3]) seg_ok = false;
    }
    if (gx[w] != sum || gag[w] != 1) xor_ok = false;
    if (gd[w] != sum) down_ok = false;
    if (gb[w] != ballot) ballot_ok = false;
  }
  report(xor_ok, "warp reduction with __shfl_xor_sync (all lanes agree)");
  report(down_ok, "warp reduction with __shfl_down_sync");
  report(ballot_ok, "__ballot_sync");
  report(scan_ok, "inclusive scan with __shfl_up_sync");
  report(seg_ok, "__shfl_sync with width 8");

  DeviceBuffer<double> dd(32);
  DeviceBuffer<unsigned long long> du(32);
  DeviceBuffer<float> df(32);
  SV_LAUNCH(shfl_types_kernel, 1, 32, 0, nullptr, dd.ptr, du.ptr, df.ptr);
  const cudaError_t err2 = cudaGetLastError();
  if (err2 != cudaSuccess) {
    return report(false, "shuffles of double/u64/float", launch_error_text(err2));
  }
  const auto hd = dd.download();
  const auto hu = du.download();
  const auto hf = df.download();
  bool types_ok = true;
  for (int l = 0; l < 32; ++l) {
    if (hd[l] != 0.5 * (l ^ 1)) types_ok = false;
    const int src = l + 2 < 32 ? l + 2 : l;
    if (hu[l] != (1ull << 40) + unsigned(src)) types_ok = false;
    if (hf[l] != 1.25f * float(31 - l)) types_ok = false;
  }
  report(types_ok, "shuffles of double, unsigned long long and float");
}

void test_dynamic_shared() {
  const int n = 1000, threads = 96;
  const int blocks = (n + threads - 1) / threads;
  std::vector<int> h(n);
  for (int i = 0; i < n; ++i) h[i] = i * 7 + 3;
  DeviceBuffer<int> din(h), dout(n);
  SV_LAUNCH(reverse_kernel, blocks, threads, threads * sizeof(int), nullptr, din.ptr, dout.ptr, n);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return report(false, "dynamic shared memory", launch_error_text(err));
  const auto got = dout.download();
  bool ok = true;
  for (int b = 0; b < blocks; ++b) {
    const int base = b * threads, len = std::min(threads, n - base);
    for (int t = 0; t < len; ++t) ok = ok && got[base + t] == h[base + len - 1 - t];
  }
  report(ok, "dynamic shared memory (reverse within blocks, partial last block)");
}

void test_atomics() {
  const int blocks = 300, threads = 128, total = blocks * threads;
  DeviceBuffer<float> fsum(1);
  DeviceBuffer<int> isum(1), cas(1);
  DeviceBuffer<unsigned> umax(1);
  DeviceBuffer<unsigned long long> usum(1);
  fsum.fill(0);
  isum.fill(0);
  cas.fill(0);
  umax.fill(0);
  usum.fill(0);
  SV_LAUNCH(atomics_kernel, blocks, threads, 0, nullptr, fsum.ptr, isum.ptr, umax.ptr, cas.ptr,
            usum.ptr);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return report(false, "atomics", launch_error_text(err));
  const float f = fsum.download()[0];
  const int i = isum.download()[0];
  const unsigned m = umax.download()[0];
  const int c = cas.download()[0];
  const unsigned long long u = usum.download()[0];
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "%d blocks x %d threads: float %.1f, int %d, max %u, cas %d, u64 %llu", blocks,
                threads, f, i, m, c, u);
  report(f == 0.5f * total && i == total && m == unsigned(total - 1) && c == 2 * total &&
             u == 3ull * total,
         "atomicAdd float/int/u64, atomicMax, atomicCAS across blocks", buf);
}

uint32_t host_brev(uint32_t x) {
  uint32_t r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}

void test_misc_intrinsics(std::mt19937& rng) {
  std::uniform_int_distribution<unsigned> dist(1, 999);
  std::vector<unsigned> h(32);
  for (unsigned& v : h) v = dist(rng);
  h[9] = 7;
  DeviceBuffer<unsigned> din(h), dout(32 * 12), counter(1);
  counter.fill(0);
  SV_LAUNCH(misc_intrinsics_kernel, 1, 32, 0, nullptr, din.ptr, dout.ptr, counter.ptr);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return report(false, "misc intrinsics", launch_error_text(err));
  const auto o = dout.download();
  unsigned sum = 0, mx = 0, xlo = 0, xhi = 0;
  int mn = 1 << 30;
  for (int l = 0; l < 32; ++l) {
    sum += h[l];
    mx = std::max(mx, h[l]);
    mn = std::min(mn, int(h[l]) - 50);
    (l < 16 ? xlo : xhi) ^= h[l];
  }
  bool warp_ok = true, bits_ok = true;
  std::vector<int> inc_seen(16, 0);
  for (int l = 0; l < 32; ++l) {
    const unsigned* r = &o[l * 12];
    unsigned same = 0;
    for (int j = 0; j < 32; ++j) {
      if (h[j] % 4 == h[l] % 4) same |= 1u << j;
    }
    warp_ok = warp_ok && r[0] == sum && int(r[1]) == mn && r[2] == mx && r[3] == same &&
              r[4] == 3u && r[5] == 0xffffffffu && r[11] == (l < 16 ? xlo : xhi);
    const unsigned v = h[l];
    const uint64_t both = (uint64_t(0x89abcdefu) << 32) | v;
    // selector 0x7351: bytes 1, 5, 3, 7 of y:x, low to high
    const unsigned perm = unsigned((both >> 8) & 0xff) | unsigned(((both >> 40) & 0xff) << 8) |
                          unsigned(((both >> 24) & 0xff) << 16) |
                          unsigned(((both >> 56) & 0xff) << 24);
    const unsigned funnel = unsigned(((uint64_t(0x12345678u) << 32 | v) << 12) >> 32);
    bits_ok = bits_ok && r[6] == host_brev(v) &&
              r[7] == (unsigned(__builtin_popcount(v)) | (unsigned(__builtin_clz(v)) << 8) |
                       (unsigned(__builtin_ffs(int(v))) << 16)) &&
              r[8] == perm && r[9] == funnel;
    if (r[10] < 16) ++inc_seen[r[10]];
  }
  bool inc_ok = counter.download()[0] == 0;  // 32 increments modulo 16
  for (int c : inc_seen) inc_ok = inc_ok && c == 2;
  report(warp_ok, "__reduce_*_sync, __match_any_sync, __any/__all_sync, __syncwarp, __activemask");
  report(bits_ok, "__brev, __popc, __clz, __ffs, __byte_perm, __funnelshift_l");
  report(inc_ok, "atomicInc wraps");

  SV_LAUNCH(no_args_kernel, 3, 5, 0, nullptr);
  err = cudaGetLastError();
  report(err == cudaSuccess, "kernel without parameters", cudaGetErrorName(err));
}

void test_syncthreads_variants() {
  DeviceBuffer<int> out(4);
  SV_LAUNCH(syncthreads_variants_kernel, 1, 200, 0, nullptr, out.ptr);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    return report(false, "__syncthreads_count/and/or", launch_error_text(err));
  }
  const auto h = out.download();
  report(h[0] == 67 && h[1] != 0 && h[2] != 0 && h[3] == 0, "__syncthreads_count/and/or");
}

template <bool kBf16>
void test_mma(std::mt19937& rng, const char* name) {
  const int blocks = 2, warps_per_block = 3, tiles = blocks * warps_per_block;
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<uint16_t> A(tiles * 256), Bt(tiles * 128);
  std::vector<float> C(tiles * 128);
  std::vector<double> Af(A.size()), Bf(Bt.size());
  for (size_t i = 0; i < A.size(); ++i) {
    const float v = dist(rng);
    if (kBf16) {
      A[i] = f32_to_bf16_bits(v);
      Af[i] = bf16_bits_to_f32(A[i]);
    } else {
      const __half h = __float2half(v);
      A[i] = __half_as_ushort(h);
      Af[i] = __half2float(h);
    }
  }
  for (size_t i = 0; i < Bt.size(); ++i) {
    const float v = dist(rng);
    if (kBf16) {
      Bt[i] = f32_to_bf16_bits(v);
      Bf[i] = bf16_bits_to_f32(Bt[i]);
    } else {
      const __half h = __float2half(v);
      Bt[i] = __half_as_ushort(h);
      Bf[i] = __half2float(h);
    }
  }
  for (float& v : C) v = dist(rng);
  DeviceBuffer<uint16_t> dA(A), dB(Bt);
  DeviceBuffer<float> dC(C), dD(C.size());
  auto* kernel = &mma_kernel<kBf16>;
  SV_LAUNCH(kernel, blocks, warps_per_block * 32, 0, nullptr, dA.ptr, dB.ptr, dC.ptr, dD.ptr);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return report(false, name, launch_error_text(err));
  const auto D = dD.download();
  double worst = 0.0;
  for (int w = 0; w < tiles; ++w) {
    for (int r = 0; r < 16; ++r) {
      for (int c = 0; c < 8; ++c) {
        double ref = C[w * 128 + r * 8 + c];
        for (int k = 0; k < 16; ++k) ref += Af[w * 256 + r * 16 + k] * Bf[w * 128 + c * 16 + k];
        worst = std::max(worst, std::fabs(ref - double(D[w * 128 + r * 8 + c])));
      }
    }
  }
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%d tiles, max abs err vs double %.2e", tiles, worst);
  report(worst < 1e-4, name, buf);
}

// Several host threads launching at once share the emulator's worker pool.
void test_concurrent_launches() {
  const int nthreads = 3, launches = 15, n = 3000, nblocks = 9;
  const int chunk = (n + nblocks - 1) / nblocks;
  std::vector<float> h(n);
  for (int i = 0; i < n; ++i) h[i] = float(i % 17) * 0.25f;
  std::vector<double> ref(nblocks, 0.0);
  for (int i = 0; i < n; ++i) ref[i / chunk] += h[i];
  std::vector<int> bad(nthreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < nthreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        DeviceBuffer<float> din(h), dout(nblocks);
        for (int l = 0; l < launches; ++l) {
          dout.fill(0);
          SV_LAUNCH(block_sum_kernel, nblocks, dim3(16, 4 + t, 1), 0, nullptr, din.ptr, dout.ptr,
                    n, chunk);
          if (cudaGetLastError() != cudaSuccess) ++bad[t];
          const auto got = dout.download();
          for (int b = 0; b < nblocks; ++b) {
            if (std::fabs(got[b] - ref[b]) > 1e-3) ++bad[t];
          }
        }
      } catch (const std::exception&) {
        ++bad[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  int total_bad = 0;
  for (int b : bad) total_bad += b;
  report(total_bad == 0, "concurrent launches from 3 host threads",
         std::to_string(nthreads * launches) + " launches, " + std::to_string(total_bad) + " bad");
}

void test_invalid_config() {
  DeviceBuffer<float> in(2048), out(2048);
  in.fill(0);
  out.fill(0x7f);
  (void)cudaGetLastError();
  SV_LAUNCH(copy_kernel, 2, 1025, 0, nullptr, in.ptr, out.ptr, 2048);
  const cudaError_t err = cudaGetLastError();
  const auto h = out.download();
  bool untouched = true;
  for (float v : h) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    untouched = untouched && bits == 0x7f7f7f7fu;
  }
  report(err == cudaErrorInvalidConfiguration && untouched,
         "1025 threads per block rejected with cudaErrorInvalidConfiguration, kernel not run",
         launch_error_text(err));
  SV_LAUNCH(copy_kernel, 1, dim3(32, 33, 1), 0, nullptr, in.ptr, out.ptr, 2048);
  const cudaError_t err2 = cudaGetLastError();
  report(err2 == cudaErrorInvalidConfiguration, "block (32,33,1) = 1056 threads rejected",
         cudaGetErrorName(err2));
  SV_LAUNCH(copy_kernel, 1, dim3(4, 4, 65), 0, nullptr, in.ptr, out.ptr, 2048);
  const cudaError_t err3 = cudaGetLastError();
  report(err3 == cudaErrorInvalidConfiguration, "blockDim.z = 65 rejected", cudaGetErrorName(err3));
  SV_LAUNCH(copy_kernel, dim3(1, 0, 1), 32, 0, nullptr, in.ptr, out.ptr, 2048);
  const cudaError_t err4 = cudaGetLastError();
  SV_LAUNCH(copy_kernel, 1, 32, 228 * 1024, nullptr, in.ptr, out.ptr, 2048);
  const cudaError_t err5 = cudaGetLastError();
  report(err4 == cudaErrorInvalidConfiguration && err5 == cudaErrorInvalidConfiguration,
         "empty grid and 228 KiB of dynamic shared memory rejected",
         std::string(cudaGetErrorName(err4)) + ", " + cudaGetErrorName(err5));
}

void test_shared_limit() {
  const int n = 64;
  std::vector<int> h(n, 5);
  DeviceBuffer<int> din(h), dout(n);
  (void)cudaGetLastError();
  // 49 KiB of dynamic shared memory: refused by default, as on a GPU...
  SV_LAUNCH(reverse_kernel, 1, n, 49 * 1024, nullptr, din.ptr, dout.ptr, n);
  const cudaError_t e1 = cudaGetLastError();
  // ...allowed once the kernel opts in.
  cudaFuncSetAttribute(reverse_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
  SV_LAUNCH(reverse_kernel, 1, n, 49 * 1024, nullptr, din.ptr, dout.ptr, n);
  const cudaError_t e2 = cudaGetLastError();
  report(e1 == cudaErrorInvalidConfiguration && e2 == cudaSuccess,
         "more than 48 KiB of dynamic shared memory only after cudaFuncSetAttribute",
         std::string(cudaGetErrorName(e1)) + ", then " + cudaGetErrorName(e2));
  // 40 KiB static + 16 KiB dynamic exceeds the default 48 KiB per block.
  DeviceBuffer<int> o2(64);
  SV_LAUNCH(big_static_kernel, 1, 64, 16 * 1024, nullptr, o2.ptr);
  const cudaError_t e3 = cudaGetLastError();
  SV_LAUNCH(big_static_kernel, 1, 64, 4 * 1024, nullptr, o2.ptr);
  const cudaError_t e4 = cudaGetLastError();
  report(e3 == cudaErrorLaunchFailure && e4 == cudaSuccess,
         "static plus dynamic shared memory limited to 48 KiB",
         std::string(cudaGetErrorName(e3)) + ", then " + cudaGetErrorName(e4));
}

// Under SECVIT_EMU_SCHEDULE=lifo or random one warp runs ahead through its collectives, so the
// missing barrier in racy_halves_kernel must show. (Under fifo it may or may not; not checked.)
void test_schedule() {
  const char* mode = std::getenv("SECVIT_EMU_SCHEDULE");
  const bool warp_first = mode != nullptr && (std::strcmp(mode, "lifo") == 0 || std::strcmp(mode, "random") == 0);
  if (!warp_first) return;
  DeviceBuffer<int> out(64);
  int seen = 0;
  for (int rep = 0; rep < 8; ++rep) {
    SV_LAUNCH(racy_halves_kernel, 1, 64, 0, nullptr, out.ptr);
    const auto h = out.download();
    for (int t = 0; t < 64; ++t) seen += h[t] == -1 ? 1 : 0;
  }
  report(seen > 0, "a warp-first schedule exposes a missing __syncthreads()",
         std::string("schedule ") + mode + ": " + std::to_string(seen) + " racy reads");
}

#if defined(SECVIT_CUDA_EMU)
void test_poison() {
  const int blocks = 3;
  DeviceBuffer<unsigned> st(blocks * 64), dy(blocks * 64);
  DeviceBuffer<float> nan(blocks * 64);
  SV_LAUNCH(poison_kernel, blocks, 64, 64 * sizeof(unsigned), nullptr, st.ptr, dy.ptr, nan.ptr);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return report(false, "shared memory poisoned", launch_error_text(err));
  const auto hs = st.download();
  const auto hd = dy.download();
  const auto hn = nan.download();
  bool ok = true;
  for (int i = 0; i < blocks * 64; ++i) {
    ok = ok && hs[i] == 0xFFFFFFFFu && hd[i] == 0xFFFFFFFFu && std::isnan(hn[i]);
  }
  report(ok, "shared memory (static and dynamic) reads 0xFF/NaN before it is written, every block");
}

bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

void test_partial_barrier() {
  DeviceBuffer<int> out(128);
  const auto t0 = std::chrono::steady_clock::now();
  SV_LAUNCH(partial_barrier_kernel, dim3(4, 1, 1), 128, 0, nullptr, out.ptr);
  const cudaError_t err = cudaGetLastError();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const std::string msg = secvit::emu::last_launch_message();
  report(err == cudaErrorLaunchFailure && contains(msg, "reached by 64 of 128 threads") &&
             contains(msg, "partial_barrier_kernel") && contains(msg, "the rest exited"),
         "__syncthreads() reached by half the block reported, no hang",
         std::string(cudaGetErrorName(err)) + " after " + std::to_string(int(ms)) + " ms: " + msg);

  DeviceBuffer<int> out2(64);
  SV_LAUNCH(partial_shuffle_kernel, 1, 64, 0, nullptr, out2.ptr);
  const cudaError_t err2 = cudaGetLastError();
  const std::string msg2 = secvit::emu::last_launch_message();
  report(err2 == cudaErrorLaunchFailure && contains(msg2, "__shfl_xor_sync"),
         "__shfl_xor_sync with exited lanes in the mask reported",
         std::string(cudaGetErrorName(err2)) + ": " + msg2);

  SV_LAUNCH(mask_mismatch_kernel, 1, 32, 0, nullptr, out2.ptr);
  const cudaError_t err3 = cudaGetLastError();
  const std::string msg3 = secvit::emu::last_launch_message();
  report(err3 == cudaErrorLaunchFailure && contains(msg3, "same mask"),
         "lanes calling a shuffle with different masks reported",
         std::string(cudaGetErrorName(err3)) + ": " + msg3);

  // The emulator must be fully usable after those failures.
  SV_LAUNCH(split_warp_kernel, 1, 32, 0, nullptr, out2.ptr);
  const cudaError_t err4 = cudaGetLastError();
  const auto h = out2.download();
  bool ok = err4 == cudaSuccess;
  for (int l = 0; l < 32 && ok; ++l) ok = h[l] == (l < 16 ? 120 : 376);
  report(ok, "divergent half-warps with disjoint masks; launches work after failures",
         launch_error_text(err4));
}

void test_other_failures() {
  DeviceBuffer<float> out(64);
  SV_LAUNCH(big_static_shared_kernel, 1, 32, 0, nullptr, out.ptr);
  cudaError_t err = cudaGetLastError();
  std::string msg = secvit::emu::last_launch_message();
  report(err == cudaErrorLaunchFailure && contains(msg, "exceeds 48 KiB"),
         "more than 48 KiB of static shared memory reported", msg);
  SV_LAUNCH(inconsistent_shared_kernel, 1, 64, 0, nullptr, out.ptr);
  err = cudaGetLastError();
  msg = secvit::emu::last_launch_message();
  report(err == cudaErrorLaunchFailure && contains(msg, "same shared variables"),
         "threads declaring different SV_SHARED sequences reported", msg);
  SV_LAUNCH(trap_kernel, 1, 32, 0, nullptr, out.ptr);
  err = cudaGetLastError();
  msg = secvit::emu::last_launch_message();
  report(err == cudaErrorLaunchFailure && contains(msg, "__trap()") &&
             contains(msg, "thread (5,0,0)"),
         "__trap() reported", msg);
}

void test_exception() {
  DeviceBuffer<int> out(4 * 128);
  SV_LAUNCH(throwing_kernel, 4, 128, 0, nullptr, out.ptr);
  const cudaError_t err = cudaGetLastError();
  const std::string msg = secvit::emu::last_launch_message();
  report(err == cudaErrorLaunchFailure && contains(msg, "deliberate failure in thread 77") &&
             contains(msg, "block (1,0,0)"),
         "exception inside a kernel becomes a launch error",
         std::string(cudaGetErrorName(err)) + ": " + msg);
}
#endif

#if SELFTEST_ASAN
enum class OobCase { Global, StaticShared, DynamicShared };

// The bad access must kill a forked child with an ASan report; the parent reads its stderr.
void test_asan_oob(OobCase which, const char* name, const char* expected_kind,
                   const char* expected_kernel) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return report(false, name, "pipe failed");
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    dup2(pipefd[1], 2);
    const int n = 64;  // 256 bytes: cudaMalloc's 256-byte rounding leaves no slack to hide in
    float* in = nullptr;
    float* out = nullptr;
    if (cudaMalloc(&in, n * sizeof(float)) != cudaSuccess) _exit(3);
    if (cudaMalloc(&out, 64 * sizeof(float)) != cudaSuccess) _exit(3);
    switch (which) {
      case OobCase::Global:
        SV_LAUNCH(oob_read_kernel, 1, 32, 0, nullptr, in, out, n);
        break;
      case OobCase::StaticShared:
        SV_LAUNCH(static_shared_oob_kernel, 1, 34, 0, nullptr, out);
        break;
      case OobCase::DynamicShared:
        SV_LAUNCH(dynamic_shared_oob_kernel, 1, 33, 32 * sizeof(float), nullptr, out);
        break;
    }
    _exit(0);  // reaching this means ASan missed the access
  }
  close(pipefd[1]);
  std::string child_err;
  char buf[4096];
  ssize_t got;
  while ((got = read(pipefd[0], buf, sizeof(buf))) > 0) child_err.append(buf, size_t(got));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  const bool child_failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // expected_kind: "a|b" accepts either report (past the dynamic size, the arena may end
  // exactly there, which is an overflow of the heap block rather than of the poisoned tail).
  const std::string kinds = expected_kind;
  std::string found_kind;
  for (size_t start = 0;;) {
    const size_t bar = kinds.find('|', start);
    const std::string kind = kinds.substr(start, bar == std::string::npos ? bar : bar - start);
    if (found_kind.empty() && contains(child_err, kind.c_str())) found_kind = kind;
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  const bool reported = contains(child_err, "AddressSanitizer") && !found_kind.empty() &&
                        contains(child_err, expected_kernel);
  std::string detail = child_failed ? "child failed" : "child exited 0";
  detail += reported
                ? " with an ASan " + found_kind + " report in " + expected_kernel
                : std::string(" without the expected ASan report");
  if (!reported) detail += "; child stderr:\n" + child_err.substr(0, 2000);
  report(child_failed && reported, name, detail);
}
#endif

void benchmark() {
  const int blocks = 1000;
  DeviceBuffer<float> out(blocks);
  SV_LAUNCH(barrier_bench_kernel, blocks, 128, 0, nullptr, out.ptr);  // warm-up: fibers, pool
  (void)cudaGetLastError();
  const int reps = 3;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) SV_LAUNCH(barrier_bench_kernel, blocks, 128, 0, nullptr, out.ptr);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count() / reps;
  const cudaError_t err = cudaGetLastError();
  const auto h = out.download();
  bool ok = err == cudaSuccess;
  // thread 0: v = buf[1] = 1, then buf = 2*(t+1) so v += buf[5] = 12 -> 13
  for (float v : h) ok = ok && v == 13.0f;
  char buf[200];
  std::snprintf(buf, sizeof(buf),
                "%d blocks x 128 threads x 4 __syncthreads: %.1f ms per launch (%.2f us per block, "
                "%.0f ns per thread-barrier)",
                blocks, ms, ms * 1000.0 / blocks, ms * 1e6 / (blocks * 128.0 * 4));
  report(ok, "timing", buf);

  const int n = 1 << 20;
  DeviceBuffer<float> a(n), b(n);
  a.fill(0);
  SV_LAUNCH(copy_kernel, n / 256, 256, 0, nullptr, a.ptr, b.ptr, n);
  const auto t1 = std::chrono::steady_clock::now();
  SV_LAUNCH(copy_kernel, n / 256, 256, 0, nullptr, a.ptr, b.ptr, n);
  const double ms2 =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  const cudaError_t err2 = cudaGetLastError();
  std::snprintf(buf, sizeof(buf),
                "barrier-free elementwise kernel, %d blocks x 256 threads: %.1f ms", n / 256, ms2);
  report(err2 == cudaSuccess, "timing", buf);
}

}  // namespace

int main() {
  std::mt19937 rng(12345);
  try {
    test_block_sum(rng, dim3(13, 7, 1), 5, 10007,
                   "block sum, static shared + __syncthreads, 2-D odd block");
    test_block_sum(rng, dim3(32, 4, 1), 7, 4096, "block sum, 2-D block of 128");
    test_block_sum(rng, dim3(5, 3, 2), 3, 333, "block sum, 3-D block of 30");
    test_block_sum(rng, dim3(1024, 1, 1), 2, 5000, "block sum, 1024 threads");
    test_warp_ops(rng);
    test_dynamic_shared();
    test_atomics();
    test_syncthreads_variants();
    test_misc_intrinsics(rng);
    test_mma<true>(rng, "sv_mma_m16n8k16_bf16 vs double reference");
    test_mma<false>(rng, "sv_mma_m16n8k16_f16 vs double reference");
    test_concurrent_launches();
    test_invalid_config();
    test_shared_limit();
#if defined(SECVIT_CUDA_EMU)
    test_schedule();
    test_poison();
    test_partial_barrier();
    test_exception();
    test_other_failures();
#endif
    benchmark();
#if SELFTEST_ASAN
    // Last: the children are forked from a process whose worker pool is running.
    test_asan_oob(OobCase::Global, "ASan catches an out-of-bounds global read inside a kernel",
                  "heap-buffer-overflow", "oob_read_kernel");
    test_asan_oob(OobCase::StaticShared, "ASan catches a write between two SV_SHARED arrays",
                  "use-after-poison", "static_shared_oob_kernel");
    test_asan_oob(OobCase::DynamicShared, "ASan catches a write past the dynamic shared size",
                  "use-after-poison|heap-buffer-overflow", "dynamic_shared_oob_kernel");
#endif
  } catch (const std::exception& e) {
    report(false, "unexpected exception", e.what());
  }
  std::printf("%s: %d failure(s)\n", g_failures == 0 ? "OK" : "FAILED", g_failures);
  return g_failures == 0 ? 0 : 1;
}
