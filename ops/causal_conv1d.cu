// ops/causal_conv1d.cu — the GPU short causal convolution (cuda_ops.h: causal_conv1d_cuda), the form of
// ops/causal_conv1d.cpp over a packed varlen batch, with BaseConv's / Mamba's SiLU and gate fused.
// Shapes: x [T, C] bf16 (row stride ldx), gate [T, C] bf16 (ldg), y [T, C] bf16 (ldy), w [C, K] fp32,
// bias [C] fp32, tail [B, K-1, C] fp32 (oldest first).
//
// Two launches on the stream (one, step_kernel, for a decode step: max_len 1):
//   conv_kernel   grid (C tiles of 128, time tiles of 16 rows, B); one thread = one channel x up to 16
//                 consecutive rows of one sequence, the K-input window sliding in registers; inputs
//                 before the segment start come from the (old) tail.
//   tail_kernel   grid (C tiles of 128, B); one thread = one (sequence, channel): tail <- the last K-1
//                 inputs of [old tail ; segment rows], shifted in place.
// The update is a second launch because every time tile of the first reads the old tail.
//
// Training form (cuda_train_ops.h: conv1d_fwd_train_cuda / conv1d_bwd_train_cuda), B sequences of L rows
// each from a zero history:
//   train_fwd_kernel  grid (C tiles of 128, time tiles of 16 rows, B); the conv_kernel thread without
//                     tail, SiLU or gate.
//   train_bwd_kernel  grid (C tiles of 64, R), 64 x 16 threads; the B x L rows of a channel are cut
//                     into runs of `rows` rows of one sequence, and a thread takes one channel x the
//                     runs q = y, y + 16 R, ... (y = its row group across the grid), sliding a dy window
//                     (dx) and an x window (dw) in registers; its dw / db sums are added over the CTA's
//                     16 row groups in shared memory (in group order) into one partial row per CTA,
//                     which column_sum_add_cuda adds up over the R CTAs of the tile in a fixed order.
#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"
#include "ops/dispatch.h"

namespace jrt::ops::cuda {
namespace {

constexpr int kThreads = 128;  // channels per CTA (consecutive: coalesced row reads)
constexpr int kRows = 16;      // rows per thread: K-1 extra window loads amortised over 16 outputs
constexpr int kMaxK = 8;

// The kernel size K in [1, kMaxK] (checked by the callers) as a compile-time constant.
template <class F>
void with_k(int K, F&& f) {
  dispatch_ge<1, 2, 3, 4, 5, 6, 7, 8>(K, std::forward<F>(f));
}

// One output of the conv from its window win (oldest first): the bias, then the taps oldest to newest (the
// CPU op's order), SiLU, the gate (g: the gate element or null, gb: its bias).
template <int K>
__device__ __forceinline__ float conv_point(const float (&wk)[K], const float (&win)[K], float bv, bool silu,
                                            const bf16* g, float gb) {
  float acc = bv;
#pragma unroll
  for (int i = 0; i < K; ++i) acc += wk[i] * win[i];
  if (silu) acc = acc / (1.0f + expf(-acc));
  if (g) acc *= __bfloat162float(*g) + gb;
  return acc;
}

// x, gate, y [T, C]; tail [B, K-1, C]. Thread: channel ch, rows [t0, t0 + kRows) of sequence b.
template <int K>
__global__ void __launch_bounds__(kThreads)
    conv_kernel(const bf16* __restrict__ x, int64_t ldx, const int32_t* __restrict__ cu, int64_t C,
                const float* __restrict__ w, const float* __restrict__ bias, bool silu, const bf16* gate, int64_t ldg,
                const float* __restrict__ tail, bf16* y, int64_t ldy, const float* __restrict__ xbias,
                const float* __restrict__ gbias) {
  const int64_t ch = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.z;
  const int64_t start = cu[b];
  const int len = cu[b + 1] - cu[b];
  const int t0 = int(blockIdx.y) * kRows;
  if (ch >= C || t0 >= len) return;
  const int t1 = min(len, t0 + kRows);

  float wk[K];
#pragma unroll
  for (int i = 0; i < K; ++i) wk[i] = w[ch * K + i];
  const float bv = bias ? bias[ch] : 0.0f;
  const float xb = xbias ? xbias[ch] : 0.0f, gb = gbias ? gbias[ch] : 0.0f;
  const float* tl = tail + int64_t(b) * (K - 1) * C + ch;

  // win[i] = input at time t - (K-1) + i for the row t being computed (time relative to the segment;
  // negative times are tail rows K-1+s).
  float win[K];
#pragma unroll
  for (int i = 0; i < K - 1; ++i) {
    const int s = t0 - (K - 1) + i;
    win[i] = s >= 0 ? __bfloat162float(x[(start + s) * ldx + ch]) + xb : tl[int64_t(K - 1 + s) * C];
  }
  for (int t = t0; t < t1; ++t) {
    const int64_t row = start + t;
    win[K - 1] = __bfloat162float(x[row * ldx + ch]) + xb;
    // gate[row, ch] is read only by this thread, before it writes y[row, ch]: y may alias gate.
    y[row * ldy + ch] = __float2bfloat16(conv_point(wk, win, bv, silu, gate ? gate + row * ldg + ch : nullptr, gb));
#pragma unroll
    for (int i = 0; i < K - 1; ++i) win[i] = win[i + 1];
  }
}

// x [T, C]; tail [B, K-1, C]. Thread: (sequence b, channel ch). new_tail[i] = input at segment time
// len - (K-1) + i; for a negative time that is old_tail[i + len], i + len > i, so iterating i upward
// reads every old row before it is overwritten.
__global__ void __launch_bounds__(kThreads)
    tail_kernel(const bf16* __restrict__ x, int64_t ldx, const int32_t* __restrict__ cu, int64_t C, int K,
                float* __restrict__ tail, const float* __restrict__ xbias) {
  const int64_t ch = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.y;
  const int64_t start = cu[b];
  const int len = cu[b + 1] - cu[b];
  if (ch >= C || len <= 0) return;
  float* tl = tail + int64_t(b) * (K - 1) * C + ch;
  const float xb = xbias ? xbias[ch] : 0.0f;
  for (int i = 0; i < K - 1; ++i) {
    const int s = len - (K - 1) + i;
    tl[int64_t(i) * C] = s >= 0 ? __bfloat162float(x[(start + s) * ldx + ch]) + xb : tl[int64_t(i + len) * C];
  }
}

// The decode form (max_len <= 1: every sequence has at most one row): conv_kernel and tail_kernel in one
// launch. Thread (sequence b, channel ch): the window is the old tail plus the row; y from it (the same
// sums in the same order as conv_kernel), then the tail shifted by one. It reads its own tail entries
// before writing them and x / gate before y, so y may alias gate as in conv_kernel.
template <int K>
__global__ void __launch_bounds__(kThreads)
    step_kernel(const bf16* __restrict__ x, int64_t ldx, const int32_t* __restrict__ cu, int64_t C,
                const float* __restrict__ w, const float* __restrict__ bias, bool silu, const bf16* gate, int64_t ldg,
                float* __restrict__ tail, bf16* y, int64_t ldy, const float* __restrict__ xbias,
                const float* __restrict__ gbias) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t ch = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.y;
  const int64_t row = cu[b];
  if (ch >= C || cu[b + 1] == row) return;
  float* tl = tail + int64_t(b) * (K - 1) * C + ch;
  float wk[K], win[K];
#pragma unroll
  for (int i = 0; i < K; ++i) wk[i] = w[ch * K + i];
#pragma unroll
  for (int i = 0; i < K - 1; ++i) win[i] = tl[int64_t(i) * C];
  win[K - 1] = __bfloat162float(x[row * ldx + ch]) + (xbias ? xbias[ch] : 0.0f);
  const float acc = conv_point(wk, win, bias ? bias[ch] : 0.0f, silu, gate ? gate + row * ldg + ch : nullptr,
                               gbias ? gbias[ch] : 0.0f);
  y[row * ldy + ch] = __float2bfloat16(acc);
#pragma unroll
  for (int i = 0; i < K - 1; ++i) tl[int64_t(i) * C] = win[i + 1];
}

}  // namespace

void causal_conv1d_cuda(const bf16* x, int64_t ldx, const int32_t* cu_seqlens, int B, int max_len, int64_t C,
                        const float* w, int K, const float* bias, bool silu, const bf16* gate, int64_t ldg, float* tail,
                        bf16* y, int64_t ldy, cudaStream_t stream, const float* xbias, const float* gbias) {
  JRT_CHECK(K >= 1 && K <= kMaxK, "causal_conv1d_cuda: kernel size {} outside [1, {}]", K, kMaxK);
  JRT_CHECK(B >= 0 && B <= 65535, "causal_conv1d_cuda: batch of {} sequences (at most 65535)", B);
  JRT_CHECK(max_len >= 0 && C >= 0, "causal_conv1d_cuda: bad max_len {} / C {}", max_len, C);
  if (B == 0 || max_len == 0 || C == 0) return;
  const int64_t ctiles = (C + kThreads - 1) / kThreads, ttiles = (max_len + kRows - 1) / kRows;
  JRT_CHECK(ttiles <= 65535 && ctiles <= 0x7fffffff, "causal_conv1d_cuda: max_len {} / C {} too large for the grid",
            max_len, C);
  if (max_len == 1) {  // a decode step: one launch
    with_k(K, [&](auto k) {
      launch_pdl(step_kernel<decltype(k)::value>, dim3(unsigned(ctiles), unsigned(B)), kThreads, 0, stream, x, ldx,
                 cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, xbias, gbias);
    });
    JRT_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const dim3 grid{unsigned(ctiles), unsigned(ttiles), unsigned(B)};
  with_k(K, [&](auto k) {
    conv_kernel<decltype(k)::value>
        <<<grid, kThreads, 0, stream>>>(x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, xbias, gbias);
  });
  JRT_CUDA_CHECK(cudaGetLastError());
  if (K == 1) return;  // no tail
  tail_kernel<<<dim3(unsigned(ctiles), unsigned(B)), kThreads, 0, stream>>>(x, ldx, cu_seqlens, C, K, tail, xbias);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// ---- training form ----------------------------------------------------------------------------------
namespace {

constexpr int kBwdCh = 64;      // channels per backward CTA (threadIdx.x)
constexpr int kBwdGroups = 16;  // row groups per backward CTA (threadIdx.y): 1024 threads
// Backward CTAs per channel tile (R): about 256 CTAs in all (two waves of one per SM: <= 64 registers per
// thread), at most 128 per tile; R is also the depth of the fixed-order dw / db reduction, and its scratch
// is R x C x (K + 1) floats.
constexpr int64_t kBwdCtas = 256, kBwdMaxParts = 128;

// x [B*L, C] (ldx), y [B*L, C] (ldy), w [C, K]. Thread: channel ch, rows [t0, t0 + kRows) of sequence b.
template <int K>
__global__ void __launch_bounds__(kThreads)
    train_fwd_kernel(const bf16* __restrict__ x, int64_t ldx, int64_t L, int64_t C, const float* __restrict__ w,
                     const float* __restrict__ bias, bf16* __restrict__ y, int64_t ldy) {
  const int64_t ch = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t t0 = int64_t(blockIdx.y) * kRows;
  if (ch >= C || t0 >= L) return;
  const int64_t t1 = min(L, t0 + kRows);
  const int64_t base = int64_t(blockIdx.z) * L;
  float wk[K];
#pragma unroll
  for (int i = 0; i < K; ++i) wk[i] = w[ch * K + i];
  const float bv = bias ? bias[ch] : 0.0f;
  float win[K];  // win[i] = x at time t - (K-1) + i (zero before the sequence start)
#pragma unroll
  for (int i = 0; i < K - 1; ++i) {
    const int64_t s = t0 - (K - 1) + i;
    win[i] = s >= 0 ? __bfloat162float(x[(base + s) * ldx + ch]) : 0.0f;
  }
  for (int64_t t = t0; t < t1; ++t) {
    win[K - 1] = __bfloat162float(x[(base + t) * ldx + ch]);
    float acc = bv;  // bias first, then taps oldest to newest: causal_conv1d_fwd_t's order
#pragma unroll
    for (int i = 0; i < K; ++i) acc += wk[i] * win[i];
    y[(base + t) * ldy + ch] = __float2bfloat16(acc);
#pragma unroll
    for (int i = 0; i < K - 1; ++i) win[i] = win[i + 1];
  }
}

// dy [B*L, C] (lddy), x (ldx), dx (lddx), w [C, K]; pw [R, C, K], pb [R, C] the CTA partial rows (=, R =
// gridDim.y; dx, pw, pb may be null). Thread (tx, ty): channel ch; runs q = blockIdx.y * kBwdGroups + ty + i *
// (R * kBwdGroups) of `rows` rows (runs_per_seq per sequence: sequence q / runs_per_seq, rows from
// (q % runs_per_seq) * rows), in that order.
//   dx_s = sum_i w_i dy_{s+K-1-i} (dy zero past the sequence end);  dw_i += dy_s x_{s-K+1+i};  db += dy_s
template <int K>
__global__ void __launch_bounds__(kBwdCh* kBwdGroups)
    train_bwd_kernel(const bf16* __restrict__ dy, int64_t lddy, const bf16* __restrict__ x, int64_t ldx, int B,
                     int64_t L, int64_t C, const float* __restrict__ w, int64_t rows, int64_t runs_per_seq,
                     bf16* __restrict__ dx, int64_t lddx, float* __restrict__ pw, float* __restrict__ pb) {
  __shared__ float part[kBwdGroups][K + 1][kBwdCh];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t ch = int64_t(blockIdx.x) * kBwdCh + tx;
  // Run and row indices fit in int (B L < 2^31, checked by the host): fewer registers.
  const int nruns = B * int(runs_per_seq), qstride = int(gridDim.y) * kBwdGroups;
  float gw[K], gb = 0.0f;
#pragma unroll
  for (int i = 0; i < K; ++i) gw[i] = 0.0f;
  if (ch < C) {
    float wk[K];
#pragma unroll
    for (int i = 0; i < K; ++i) wk[i] = w[ch * K + i];
    for (int q = int(blockIdx.y) * kBwdGroups + ty; q < nruns; q += qstride) {
      const int b = q / int(runs_per_seq), r0 = (q - b * int(runs_per_seq)) * int(rows);
      const int r1 = min(int(L), r0 + int(rows));
      const int64_t base = int64_t(b) * L;
      float gwin[K], xwin[K];  // gwin[j] = dy_{s+j}, xwin[i] = x_{s-K+1+i} for the row s being computed
#pragma unroll
      for (int i = 0; i < K - 1; ++i) {
        const int sg = r0 + i, sx = r0 - (K - 1) + i;
        gwin[i] = sg < L ? __bfloat162float(dy[(base + sg) * lddy + ch]) : 0.0f;
        xwin[i] = sx >= 0 ? __bfloat162float(x[(base + sx) * ldx + ch]) : 0.0f;
      }
      for (int s = r0; s < r1; ++s) {
        gwin[K - 1] = s + K - 1 < L ? __bfloat162float(dy[(base + s + K - 1) * lddy + ch]) : 0.0f;
        xwin[K - 1] = __bfloat162float(x[(base + s) * ldx + ch]);
        float acc = 0.0f;
#pragma unroll
        for (int i = 0; i < K; ++i) acc += wk[i] * gwin[K - 1 - i];
        if (dx) dx[(base + s) * lddx + ch] = __float2bfloat16(acc);
        const float g = gwin[0];
#pragma unroll
        for (int i = 0; i < K; ++i) gw[i] += g * xwin[i];
        gb += g;
#pragma unroll
        for (int i = 0; i < K - 1; ++i) gwin[i] = gwin[i + 1], xwin[i] = xwin[i + 1];
      }
    }
  }
  if (!pw && !pb) return;  // uniform over the CTA
#pragma unroll
  for (int i = 0; i < K; ++i) part[ty][i][tx] = gw[i];
  part[ty][K][tx] = gb;
  __syncthreads();
  // The CTA's partial row: pw[y, ch, k] / pb[y, ch] (the dst layouts, so column_sum_add can add them up).
  for (int i = ty * kBwdCh + tx; i < (K + 1) * kBwdCh; i += kBwdCh * kBwdGroups) {
    const int k = i / kBwdCh, c = i % kBwdCh;
    const int64_t cc = int64_t(blockIdx.x) * kBwdCh + c;
    if (cc >= C || (k < K ? !pw : !pb)) continue;
    float v = 0.0f;
#pragma unroll
    for (int g = 0; g < kBwdGroups; ++g) v += part[g][k][c];
    if (k < K)
      pw[(int64_t(blockIdx.y) * C + cc) * K + k] = v;
    else
      pb[int64_t(blockIdx.y) * C + cc] = v;
  }
}

}  // namespace

void conv1d_fwd_train_cuda(const bf16* x, int64_t ldx, int B, int64_t L, int64_t C, const float* w, int K,
                           const float* bias, bf16* y, int64_t ldy, cudaStream_t stream) {
  JRT_CHECK(K >= 1 && K <= kMaxK, "conv1d_fwd_train_cuda: kernel size {} outside [1, {}]", K, kMaxK);
  JRT_CHECK(B >= 0 && B <= 65535 && L >= 0 && C >= 0, "conv1d_fwd_train_cuda: bad shape B {} L {} C {}", B, L, C);
  if (B == 0 || L == 0 || C == 0) return;
  const int64_t ctiles = (C + kThreads - 1) / kThreads, ttiles = (L + kRows - 1) / kRows;
  JRT_CHECK(ttiles <= 65535 && ctiles <= 0x7fffffff, "conv1d_fwd_train_cuda: L {} / C {} too large for the grid", L, C);
  const dim3 grid{unsigned(ctiles), unsigned(ttiles), unsigned(B)};
  with_k(K, [&](auto k) {
    train_fwd_kernel<decltype(k)::value><<<grid, kThreads, 0, stream>>>(x, ldx, L, C, w, bias, y, ldy);
  });
  JRT_CUDA_CHECK(cudaGetLastError());
}

void conv1d_bwd_train_cuda(const bf16* dy, int64_t lddy, const bf16* x, int64_t ldx, int B, int64_t L, int64_t C,
                           const float* w, int K, bf16* dx, int64_t lddx, float* dw, float* db, cudaStream_t stream) {
  JRT_CHECK(K >= 1 && K <= kMaxK, "conv1d_bwd_train_cuda: kernel size {} outside [1, {}]", K, kMaxK);
  JRT_CHECK(B >= 0 && B <= 65535 && L >= 0 && C >= 0, "conv1d_bwd_train_cuda: bad shape B {} L {} C {}", B, L, C);
  if (B == 0 || L == 0 || C == 0) return;
  const int64_t ctiles = (C + kBwdCh - 1) / kBwdCh;
  JRT_CHECK(ctiles <= 0x7fffffff && int64_t(B) * L <= 0x7fffffff, "conv1d_bwd_train_cuda: B {} x L {} / C {} too large",
            B, L, C);
  // CTAs per channel tile (R) and rows per run: runs of at least 16 rows (K-1 extra window loads amortised)
  // or the whole sequence, about one run per thread; the shape alone fixes the partition.
  int64_t R = std::clamp<int64_t>((kBwdCtas + ctiles - 1) / ctiles, 1, kBwdMaxParts);
  const int64_t threads = R * kBwdGroups;
  const int64_t rows = std::min<int64_t>(L, std::max<int64_t>(16, (int64_t(B) * L + threads - 1) / threads));
  const int64_t runs_per_seq = (L + rows - 1) / rows;
  R = std::min<int64_t>(R, (int64_t(B) * runs_per_seq + kBwdGroups - 1) / kBwdGroups);
  // Partial rows [R, C, K] and [R, C] (<= 128 x C x (K + 1) floats; about 256 x 64 x (K + 1) when C >= 128).
  jrt::cuda::StreamScratch<float> pw(dw ? size_t(R * C * K) : 0, stream), pb(db ? size_t(R * C) : 0, stream);
  const dim3 grid{unsigned(ctiles), unsigned(R)};
  with_k(K, [&](auto k) {
    train_bwd_kernel<decltype(k)::value><<<grid, dim3(kBwdCh, kBwdGroups), 0, stream>>>(
        dy, lddy, x, ldx, B, L, C, w, rows, runs_per_seq, dx, lddx, pw.get(), pb.get());
  });
  JRT_CUDA_CHECK(cudaGetLastError());
  if (dw) column_sum_add_cuda(pw.get(), R, C * K, dw, stream);
  if (db) column_sum_add_cuda(pb.get(), R, C, db, stream);
}

}  // namespace jrt::ops::cuda
