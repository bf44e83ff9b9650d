// ops/causal_conv1d.cu — the GPU short causal convolution (cuda_ops.h: causal_conv1d_cuda), the form of
// ops/causal_conv1d.cpp over a packed varlen batch, with BaseConv's / Mamba's SiLU and gate fused.
// Shapes: x [T, C] bf16 (row stride ldx), gate [T, C] bf16 (ldg), y [T, C] bf16 (ldy), w [C, K] fp32,
// bias [C] fp32, tail [B, K-1, C] fp32 (oldest first).
//
// Two launches on the stream:
//   conv_kernel   grid (C tiles of 128, time tiles of 16 rows, B); one thread = one channel x up to 16
//                 consecutive rows of one sequence, the K-input window sliding in registers; inputs
//                 before the segment start come from the (old) tail.
//   tail_kernel   grid (C tiles of 128, B); one thread = one (sequence, channel): tail <- the last K-1
//                 inputs of [old tail ; segment rows], shifted in place.
// The update is a second launch because every time tile of the first reads the old tail.
#include <cuda_bf16.h>

#include "core/cuda_util.h"
#include "ops/cuda_ops.h"

namespace jrt::ops::cuda {
namespace {

constexpr int kThreads = 128;  // channels per CTA (consecutive: coalesced row reads)
constexpr int kRows = 16;      // rows per thread: K-1 extra window loads amortised over 16 outputs
constexpr int kMaxK = 8;

// x, gate, y [T, C]; tail [B, K-1, C]. Thread: channel ch, rows [t0, t0 + kRows) of sequence b.
template <int K>
__global__ void __launch_bounds__(kThreads)
    conv_kernel(const bf16* __restrict__ x, int64_t ldx, const int32_t* __restrict__ cu, int64_t C,
                const float* __restrict__ w, const float* __restrict__ bias, bool silu, const bf16* gate, int64_t ldg,
                const float* __restrict__ tail, bf16* y, int64_t ldy) {
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
  const float* tl = tail + int64_t(b) * (K - 1) * C + ch;

  // win[i] = input at time t - (K-1) + i for the row t being computed (time relative to the segment;
  // negative times are tail rows K-1+s).
  float win[K];
#pragma unroll
  for (int i = 0; i < K - 1; ++i) {
    const int s = t0 - (K - 1) + i;
    win[i] = s >= 0 ? __bfloat162float(x[(start + s) * ldx + ch]) : tl[int64_t(K - 1 + s) * C];
  }
  for (int t = t0; t < t1; ++t) {
    const int64_t row = start + t;
    win[K - 1] = __bfloat162float(x[row * ldx + ch]);
    float acc = bv;  // bias first, then taps oldest to newest: the CPU op's order
#pragma unroll
    for (int i = 0; i < K; ++i) acc += wk[i] * win[i];
    if (silu) acc = acc / (1.0f + expf(-acc));
    // gate[row, ch] is read only by this thread, before it writes y[row, ch]: y may alias gate.
    if (gate) acc *= __bfloat162float(gate[row * ldg + ch]);
    y[row * ldy + ch] = __float2bfloat16(acc);
#pragma unroll
    for (int i = 0; i < K - 1; ++i) win[i] = win[i + 1];
  }
}

// x [T, C]; tail [B, K-1, C]. Thread: (sequence b, channel ch). new_tail[i] = input at segment time
// len - (K-1) + i; for a negative time that is old_tail[i + len], i + len > i, so iterating i upward
// reads every old row before it is overwritten.
__global__ void __launch_bounds__(kThreads)
    tail_kernel(const bf16* __restrict__ x, int64_t ldx, const int32_t* __restrict__ cu, int64_t C, int K,
                float* __restrict__ tail) {
  const int64_t ch = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.y;
  const int64_t start = cu[b];
  const int len = cu[b + 1] - cu[b];
  if (ch >= C || len <= 0) return;
  float* tl = tail + int64_t(b) * (K - 1) * C + ch;
  for (int i = 0; i < K - 1; ++i) {
    const int s = len - (K - 1) + i;
    tl[int64_t(i) * C] = s >= 0 ? __bfloat162float(x[(start + s) * ldx + ch]) : tl[int64_t(i + len) * C];
  }
}

template <int K>
void launch_conv(dim3 grid, const bf16* x, int64_t ldx, const int32_t* cu, int64_t C, const float* w,
                 const float* bias, bool silu, const bf16* gate, int64_t ldg, const float* tail, bf16* y, int64_t ldy,
                 cudaStream_t stream) {
  conv_kernel<K><<<grid, kThreads, 0, stream>>>(x, ldx, cu, C, w, bias, silu, gate, ldg, tail, y, ldy);
}

}  // namespace

void causal_conv1d_cuda(const bf16* x, int64_t ldx, const int32_t* cu_seqlens, int B, int max_len, int64_t C,
                        const float* w, int K, const float* bias, bool silu, const bf16* gate, int64_t ldg,
                        float* tail, bf16* y, int64_t ldy, cudaStream_t stream) {
  JRT_CHECK(K >= 1 && K <= kMaxK, "causal_conv1d_cuda: kernel size {} outside [1, {}]", K, kMaxK);
  JRT_CHECK(B >= 0 && B <= 65535, "causal_conv1d_cuda: batch of {} sequences (at most 65535)", B);
  JRT_CHECK(max_len >= 0 && C >= 0, "causal_conv1d_cuda: bad max_len {} / C {}", max_len, C);
  if (B == 0 || max_len == 0 || C == 0) return;
  const int64_t ctiles = (C + kThreads - 1) / kThreads, ttiles = (max_len + kRows - 1) / kRows;
  JRT_CHECK(ttiles <= 65535 && ctiles <= 0x7fffffff, "causal_conv1d_cuda: max_len {} / C {} too large for the grid",
            max_len, C);
  const dim3 grid{unsigned(ctiles), unsigned(ttiles), unsigned(B)};
  switch (K) {
    case 1: launch_conv<1>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
    case 2: launch_conv<2>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
    case 3: launch_conv<3>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
    case 4: launch_conv<4>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
    case 5: launch_conv<5>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
    case 6: launch_conv<6>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
    case 7: launch_conv<7>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
    default: launch_conv<8>(grid, x, ldx, cu_seqlens, C, w, bias, silu, gate, ldg, tail, y, ldy, stream); break;
  }
  JRT_CUDA_CHECK(cudaGetLastError());
  if (K == 1) return;  // no tail
  tail_kernel<<<dim3(unsigned(ctiles), unsigned(B)), kThreads, 0, stream>>>(x, ldx, cu_seqlens, C, K, tail);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
