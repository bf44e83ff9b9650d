// ops/selective_scan.cu — the GPU Mamba selective scan (cuda_ops.h: selective_scan_cuda): the direct loop of
// ops/selective_scan.cpp over a packed varlen batch, with delta = softplus(dt + dt_bias), the D skip and
// the silu(z) gate fused. One kernel serves prefill and decode (length-1 segments).
// Shapes: x, z, y [T, di] bf16; dt [T, di] fp32; Bm, Cm [T, ns] bf16; A [di, ns], D [di] fp32;
// h [B, di, ns] fp32 (updated in place).
//
// scan_kernel<NS>: grid (ceil(di / 128), B), 128 threads; one thread = one (sequence b, channel c), its ns
// states and A[c, :] in registers (NS = ns rounded up to 4, 8, 16, 32 or 64; the padding states have
// A = B = C = h = 0, so they stay exactly 0 and add exactly 0 to y). Time is sequential per thread; the
// B / C rows of a step are the same for every channel of a sequence, so the CTA stages them in shared
// memory 32 steps at a time. Arithmetic follows the CPU op term by term (expf / log1pf, not the fast
// intrinsics) so prefill and decode stay close to it.
#include <cuda_bf16.h>

#include "core/cuda_util.h"
#include "ops/cuda_ops.h"

namespace jrt::ops::cuda {
namespace {

constexpr int kThreads = 128;  // channels per CTA
constexpr int kSteps = 32;     // time steps of B / C staged per shared-memory round
constexpr int kMaxNs = 64;

// x, z, y [T, di] (strides ldx, ldz, ldy); dt [T, di] (lddt); Bm, Cm [T, ns] (ldbc); h [B, di, ns].
// Thread: channel c of sequence b over its whole segment.
template <int NS>
__global__ void __launch_bounds__(kThreads) scan_kernel(const ScanCudaArgs a) {
  __shared__ __align__(16) float sB[kSteps][NS];
  __shared__ __align__(16) float sC[kSteps][NS];
  const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.y;
  const int64_t start = a.cu_seqlens[b];
  const int len = a.cu_seqlens[b + 1] - a.cu_seqlens[b];
  if (len <= 0) return;  // uniform over the CTA (same sequence): no barrier is skipped by part of it
  const int ns = a.ns;
  const bool active = c < a.di;  // inactive threads still help stage B / C and reach every barrier

  float h[NS], A[NS];
  float dtb = 0.0f, Dc = 0.0f;
  float* hc = a.h + (int64_t(b) * a.di + c) * ns;
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    h[n] = active && n < ns ? hc[n] : 0.0f;
    A[n] = active && n < ns ? a.A[c * ns + n] : 0.0f;
  }
  if (active) {
    dtb = a.dt_bias[c];
    if (a.D) Dc = a.D[c];
  }

  for (int t0 = 0; t0 < len; t0 += kSteps) {
    const int nt = min(kSteps, len - t0);
    __syncthreads();  // the previous round's B / C are consumed
    for (int i = threadIdx.x; i < kSteps * NS; i += kThreads) {
      const int tt = i / NS, n = i % NS;
      float bv = 0.0f, cv = 0.0f;
      if (tt < nt && n < ns) {
        const int64_t off = (start + t0 + tt) * a.ldbc + n;
        bv = __bfloat162float(a.Bm[off]);
        cv = __bfloat162float(a.Cm[off]);
      }
      sB[tt][n] = bv;
      sC[tt][n] = cv;
    }
    __syncthreads();
    if (!active) continue;
    for (int tt = 0; tt < nt; ++tt) {
      const int64_t row = start + t0 + tt;
      const float u = __bfloat162float(a.x[row * a.ldx + c]);
      const float v = a.dt[row * a.lddt + c] + dtb;
      const float d = v > 20.0f ? v : log1pf(expf(v));  // softplus, torch threshold 20
      float acc = 0.0f;
#pragma unroll
      for (int n = 0; n < NS; ++n) {
        const float hn = expf(d * A[n]) * h[n] + (d * sB[tt][n]) * u;
        h[n] = hn;
        acc += hn * sC[tt][n];
      }
      float out = a.D ? acc + u * Dc : acc;
      const float zv = __bfloat162float(a.z[row * a.ldz + c]);
      out *= zv / (1.0f + expf(-zv));
      a.y[row * a.ldy + c] = __float2bfloat16(out);
    }
  }
  if (!active) return;
#pragma unroll
  for (int n = 0; n < NS; ++n)
    if (n < ns) hc[n] = h[n];
}

}  // namespace

void selective_scan_cuda(const ScanCudaArgs& a, cudaStream_t stream) {
  JRT_CHECK(a.ns >= 1 && a.ns <= kMaxNs, "selective_scan_cuda: d_state {} outside [1, {}]", a.ns, kMaxNs);
  JRT_CHECK(a.B >= 0 && a.B <= 65535, "selective_scan_cuda: batch of {} sequences (at most 65535)", a.B);
  JRT_CHECK(a.di >= 0, "selective_scan_cuda: bad d_inner {}", a.di);
  if (a.B == 0 || a.max_len == 0 || a.di == 0) return;
  JRT_CHECK(a.x && a.dt && a.dt_bias && a.Bm && a.Cm && a.z && a.A && a.y && a.h && a.cu_seqlens,
            "selective_scan_cuda: missing operand");
  const int64_t ctiles = (a.di + kThreads - 1) / kThreads;
  JRT_CHECK(ctiles <= 0x7fffffff, "selective_scan_cuda: d_inner {} too large for the grid", a.di);
  const dim3 grid{unsigned(ctiles), unsigned(a.B)};
  if (a.ns <= 4)
    scan_kernel<4><<<grid, kThreads, 0, stream>>>(a);
  else if (a.ns <= 8)
    scan_kernel<8><<<grid, kThreads, 0, stream>>>(a);
  else if (a.ns <= 16)
    scan_kernel<16><<<grid, kThreads, 0, stream>>>(a);
  else if (a.ns <= 32)
    scan_kernel<32><<<grid, kThreads, 0, stream>>>(a);
  else
    scan_kernel<64><<<grid, kThreads, 0, stream>>>(a);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
