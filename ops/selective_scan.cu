// ops/selective_scan.cu — the GPU Mamba selective scan (cuda_ops.h: selective_scan_cuda): the direct loop of
// ops/selective_scan.cpp over a packed varlen batch, with delta = softplus(dt + dt_bias), the D skip and
// the silu(z) gate fused. One kernel serves prefill and decode (length-1 segments).
// Shapes: x, z, y [T, di] bf16; dt [T, di] fp32; Bm, Cm [T, ns] bf16; A [di, ns], D [di] fp32;
// h [B, di, ns] fp32 (updated in place).
//
// scan_kernel<NS, Pass>: grid (ceil(di / 128), B, S), 128 threads; one thread = one (sequence b, channel c,
// time segment s), its ns states and A[c, :] in registers (NS = ns rounded up to 4, 8, 16, 32 or 64; the
// padding states have A = B = C = h = 0, so they stay exactly 0 and add exactly 0 to y). Time is sequential
// per thread, x / dt / z loaded 8 steps ahead; the B / C rows of a step are the same for every channel of a
// sequence, so the CTA stages them in shared memory 32 steps at a time. Arithmetic follows the CPU op term
// by term (expf / log1pf, not the fast intrinsics) so prefill and decode stay close to it.
// Chunked over time when the (channel block, sequence) grid is too small to fill the GPU (small batches of
// long prompts: Mamba-1B at B = 1 has 32 channel blocks): S segments per sequence, three launches:
// kLocal scans each segment from h = 0 (its end state and the product of its decays), the combine walks
// the segments in order (h_s+1 = P_s h_s + local_s, exact in real arithmetic as the recurrence is linear
// with diagonal decay), kOutput rescans each segment from its true initial state and writes y.
//
// Training form (cuda_train_ops.h), B sequences of L rows from h = 0; hsave is [B, S, ns, di] fp32
// (S = ceil(L / ckpt); the state before steps 0, ckpt, 2 ckpt, ...; channels innermost so that a warp's
// loads and stores of one state are coalesced):
//   train_fwd_kernel<NS>  scan_kernel's thread layout (one thread = one (b, c), ns states in registers,
//                         B / C staged in shared memory), writing y and the checkpoints.
//   train_bwd_kernel<NS>  grid (ceil(di / (128 / P)), B); P = ns > 16 ? NS / 16 : 1 adjacent lanes per
//                         channel, each holding NS / P states (<= 16: state, its gradient, A and dA in
//                         registers). Checkpoint intervals are walked from the end; each is recomputed
//                         from its checkpoint in passes of up to kSub steps whose h_{t-1} are kept in a
//                         per-thread (local-memory) array, then swept backwards carrying dL/dh. dx and
//                         ddelta sum over the P lanes by shuffles; dB / dC (sums over channels) are
//                         reduce-scattered across the warp's channels by shuffles and summed over the
//                         CTA's warps in shared memory (in warp order): the CTAs of channel block 0 store
//                         them to dBC (=), the others to their own slab of partials, which
//                         column_sum_add_cuda then adds in channel-block order. dA / dD are summed in
//                         registers over the sequence's rows; sequence 0 adds them to dA / dD, the others
//                         store per-sequence partials, added in sequence order the same way.
//   Elementwise kernels for delta = softplus(pre + bias) and A = -exp(A_log) with their backwards; the
//   softplus backward sums dbias over its rows per CTA in shared memory into one partial row per row
//   slice, added in slice order by column_sum_add_cuda.
#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "core/cuda_util.h"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"
#include "ops/dispatch.h"

namespace jrt::ops::cuda {
namespace {

constexpr int kThreads = 128;  // channels per CTA

// The kernels' state width: the smallest of 4, 8, 16, 32, 64 that holds ns (ns <= 64 is checked by the callers).
template <class F>
void with_ns(int64_t ns, F&& f) {
  dispatch_ge<4, 8, 16, 32, 64>(ns, std::forward<F>(f));
}
constexpr int kSteps = 32;  // time steps of B / C staged per shared-memory round
constexpr int kMaxNs = 64;

// What a pass over a range of time steps does (scan_kernel's template argument):
enum class Pass {
  kWhole,   // from h [B, di, ns], writing y and the final h: the one-pass scan (decode, large batches)
  kLocal,   // segment s from h = 0: its final state and the product of its decays (for the combine)
  kOutput,  // segment s from its true initial state (written by the combine): y only
};

// Time steps whose x / dt / z a thread loads before computing them: the loads of one step would otherwise
// wait on the previous step's stores (the compiler cannot prove y apart from x, dt and z), one memory latency
// per step on the recurrence's critical path.
constexpr int kPrefetch = 8;

// x, z, y [T, di] (strides ldx, ldz, ldy); dt [T, di] (lddt); Bm, Cm [T, ns] (ldbc); h [B, di, ns].
// grid (ceil(di / 128), B, S): thread = channel c of sequence b over time steps [s Ls, (s + 1) Ls) of its
// segment (S = 1, Ls >= max_len for kWhole). kLocal / kOutput: hl, P [B, S, ns, di] fp32 scratch (channels
// innermost: coalesced); kLocal writes the segment's state from 0 to hl and the product of its decays
// exp(d_t A) to P; kOutput starts from hl (which the combine has overwritten with the segment's initial
// state).
template <int NS, Pass kPass>
__global__ void __launch_bounds__(kThreads) scan_kernel(const ScanCudaArgs a, int Ls, float* hl, float* P) {
  __shared__ __align__(16) float sB[kSteps][NS];
  __shared__ __align__(16) float sC[kSteps][NS];
  const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.y, seg = blockIdx.z, S = gridDim.z;
  const int64_t start = a.cu_seqlens[b];
  const int len = a.cu_seqlens[b + 1] - a.cu_seqlens[b];
  const int t_begin = seg * Ls, t_end = min(len, t_begin + Ls);
  const int ns = a.ns;
  const int64_t di = a.di;
  const bool active = c < di;  // inactive threads still help stage B / C and reach every barrier
  // The segment's slot in hl / P: [b, seg, n, c].
  const int64_t slot = (int64_t(b) * S + seg) * ns * di + c;
  if (t_begin >= t_end) {  // uniform over the CTA (same sequence and segment): no barrier is skipped
    if (kPass == Pass::kLocal && active)
      for (int n = 0; n < ns; ++n) hl[slot + n * di] = 0.0f, P[slot + n * di] = 1.0f;
    return;
  }

  float h[NS], A[NS], pr[NS];
  float dtb = 0.0f, Dc = 0.0f;
  float* hc = a.h + (int64_t(b) * di + c) * ns;
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    const bool real = active && n < ns;
    h[n] = 0.0f;
    if (kPass == Pass::kWhole && real) h[n] = hc[n];
    if (kPass == Pass::kOutput && real) h[n] = hl[slot + n * di];
    A[n] = real ? a.A[c * ns + n] : 0.0f;
    pr[n] = 1.0f;
  }
  if (active) {
    dtb = a.dt_bias[c];
    if (a.D) Dc = a.D[c];
  }

  for (int t0 = t_begin; t0 < t_end; t0 += kSteps) {
    const int nt = min(kSteps, t_end - t0);
    __syncthreads();  // the previous round's B / C are consumed
    for (int i = threadIdx.x; i < kSteps * NS; i += kThreads) {
      const int tt = i / NS, n = i % NS;
      float bv = 0.0f, cv = 0.0f;
      if (tt < nt && n < ns) {
        const int64_t off = (start + t0 + tt) * a.ldbc + n;
        bv = __bfloat162float(a.Bm[off]);
        if (kPass != Pass::kLocal) cv = __bfloat162float(a.Cm[off]);
      }
      sB[tt][n] = bv;
      sC[tt][n] = cv;
    }
    __syncthreads();
    if (!active) continue;
    for (int g0 = 0; g0 < nt; g0 += kPrefetch) {
      const int ng = min(kPrefetch, nt - g0);
      float u[kPrefetch], dv[kPrefetch], zv[kPrefetch];
#pragma unroll
      for (int j = 0; j < kPrefetch; ++j) {
        u[j] = dv[j] = zv[j] = 0.0f;
        if (j < ng) {
          const int64_t row = start + t0 + g0 + j;
          u[j] = __bfloat162float(a.x[row * a.ldx + c]);
          dv[j] = a.dt[row * a.lddt + c];
          if (kPass != Pass::kLocal) zv[j] = __bfloat162float(a.z[row * a.ldz + c]);
        }
      }
#pragma unroll
      for (int j = 0; j < kPrefetch; ++j) {
        if (j >= ng) break;
        const int tt = g0 + j;
        const float v = dv[j] + dtb;
        const float d = v > 20.0f ? v : log1pf(expf(v));  // softplus, torch threshold 20
        float acc = 0.0f;
#pragma unroll
        for (int n = 0; n < NS; ++n) {
          const float e = expf(d * A[n]);
          const float hn = e * h[n] + (d * sB[tt][n]) * u[j];
          h[n] = hn;
          if (kPass == Pass::kLocal) pr[n] *= e;
          acc += hn * sC[tt][n];
        }
        if (kPass == Pass::kLocal) continue;
        float out = a.D ? acc + u[j] * Dc : acc;
        out *= zv[j] / (1.0f + expf(-zv[j]));
        a.y[(start + t0 + tt) * a.ldy + c] = __float2bfloat16(out);
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    if (n >= ns) continue;
    if (kPass == Pass::kWhole) hc[n] = h[n];
    if (kPass == Pass::kLocal) hl[slot + n * di] = h[n], P[slot + n * di] = pr[n];
  }
}

// grid (ceil(di / 128), B): thread = channel c of sequence b. Walks its S segments in order from h [B, di, ns]:
// segment s starts from h (written over hl[s], which kOutput then reads) and ends at h = P[s] h + hl[s], the
// local scan continued from h (the recurrence is linear in h with the diagonal decay P[s]); the last h is the
// sequence's new state.
__global__ void __launch_bounds__(kThreads)
    scan_combine_kernel(const ScanCudaArgs a, int S, float* hl, const float* P) {
  const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.y;
  if (c >= a.di || a.cu_seqlens[b + 1] == a.cu_seqlens[b]) return;  // an empty sequence keeps its state
  const int ns = a.ns;
  const int64_t di = a.di;
  float* hc = a.h + (int64_t(b) * di + c) * ns;
  for (int n = 0; n < ns; ++n) {
    float h = hc[n];
    for (int seg = 0; seg < S; ++seg) {
      const int64_t i = (int64_t(b) * S + seg) * ns * di + int64_t(n) * di + c;
      const float local = hl[i];
      hl[i] = h;
      h = fmaf(P[i], h, local);
    }
    hc[n] = h;
  }
}

// Segments per sequence: 1 while the one-pass grid has >= kSegTargetCtas CTAs (about 4 per SM of an H200);
// otherwise enough segments of >= kMinSeg steps to reach it (a function of the shape only). Chunking costs a
// second pass over every step, so it pays only where the one-pass grid leaves SMs idle. Measured on the H200
// (Mamba-1B prefill of 512 tokens, docs/perf.md): B = 1 (32 CTAs -> 16 segments) 22.7 -> 10.4 ms; B = 16 (512
// CTAs) with a target of 2048 (4 segments) 67.8 -> 94.2 ms, hence 512.
constexpr int64_t kSegTargetCtas = 512, kMinSeg = 32, kMaxSegs = 1024;

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
  const int64_t base = ctiles * a.B;
  const int64_t S = std::clamp<int64_t>(std::min((kSegTargetCtas + base - 1) / base, a.max_len / kMinSeg), 1,
                                        std::min<int64_t>(kMaxSegs, 65535));
  const int Ls = int((a.max_len + S - 1) / S);
  with_ns(a.ns, [&](auto w) {
    constexpr int NS = decltype(w)::value;
    if (S == 1) {
      scan_kernel<NS, Pass::kWhole>
          <<<dim3(unsigned(ctiles), unsigned(a.B), 1u), kThreads, 0, stream>>>(a, Ls, nullptr, nullptr);
      return;
    }
    // Segment states and decay products [B, S, ns, di] each.
    const size_t n = size_t(a.B) * size_t(S) * size_t(a.ns) * size_t(a.di);
    jrt::cuda::StreamScratch<float> hl(n, stream), P(n, stream);
    const dim3 grid(unsigned(ctiles), unsigned(a.B), unsigned(S));
    scan_kernel<NS, Pass::kLocal><<<grid, kThreads, 0, stream>>>(a, Ls, hl.get(), P.get());
    JRT_CUDA_CHECK(cudaGetLastError());
    scan_combine_kernel<<<dim3(unsigned(ctiles), unsigned(a.B)), kThreads, 0, stream>>>(a, int(S), hl.get(), P.get());
    JRT_CUDA_CHECK(cudaGetLastError());
    scan_kernel<NS, Pass::kOutput><<<grid, kThreads, 0, stream>>>(a, Ls, hl.get(), P.get());
  });
  JRT_CUDA_CHECK(cudaGetLastError());
}

// ---- training form ----------------------------------------------------------------------------------
namespace {

constexpr int kWarps = kThreads / 32;
constexpr int kSub = 16;  // backward: steps recomputed per pass (their h_{t-1} held per thread)

__device__ __forceinline__ float softplus_f(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

// Rows [t0, t0 + nt) of B / C (zero past nt and past ns) into sB / sC [R][NS]; the barriers around it
// keep the previous round's readers and this round's writers apart. Called by every thread of the CTA.
template <int NS, int R>
__device__ __forceinline__ void stage_bc(float (&sB)[R][NS], float (&sC)[R][NS], const bf16* __restrict__ Bm,
                                         const bf16* __restrict__ Cm, int64_t ldbc, int64_t row0, int nt, int ns) {
  __syncthreads();
  for (int i = threadIdx.x; i < R * NS; i += kThreads) {
    const int tt = i / NS, n = i % NS;
    float bv = 0.0f, cv = 0.0f;
    if (tt < nt && n < ns) {
      const int64_t off = (row0 + tt) * ldbc + n;
      bv = __bfloat162float(Bm[off]);
      cv = __bfloat162float(Cm[off]);
    }
    sB[tt][n] = bv;
    sC[tt][n] = cv;
  }
  __syncthreads();
}

// x [B*L, di] (ldx), delta [B*L, di], y (ldy), Bm / Cm (ldbc), A [di, ns], hsave [B, S, ns, di].
// Thread: channel c of sequence b over the whole sequence.
template <int NS>
__global__ void __launch_bounds__(kThreads) train_fwd_kernel(const ScanTrainCuda s) {
  __shared__ __align__(16) float sB[kSteps][NS];
  __shared__ __align__(16) float sC[kSteps][NS];
  const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int b = blockIdx.y;
  const int64_t L = s.L, di = s.di, row0 = int64_t(b) * L;
  const int ns = s.ns;
  const bool active = c < di;  // inactive threads still stage B / C and reach every barrier
  const int64_t nck = (L + s.ckpt - 1) / s.ckpt;

  float h[NS], A[NS];
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    h[n] = 0.0f;
    A[n] = active && n < ns ? s.A[c * ns + n] : 0.0f;
  }
  const float Dc = active && s.D ? s.D[c] : 0.0f;
  float* hk = s.hsave + int64_t(b) * nck * ns * di + c;  // checkpoint k, state n at hk[(k ns + n) di]
  int64_t next = 0;                                      // the next checkpointed step

  for (int64_t t0 = 0; t0 < L; t0 += kSteps) {
    const int nt = int(min(int64_t(kSteps), L - t0));
    stage_bc<NS, kSteps>(sB, sC, s.Bm, s.Cm, s.ldbc, row0 + t0, nt, ns);
    if (!active) continue;
    for (int tt = 0; tt < nt; ++tt) {
      const int64_t t = t0 + tt, row = row0 + t;
      if (t == next) {
#pragma unroll
        for (int n = 0; n < NS; ++n)
          if (n < ns) hk[int64_t(n) * di] = h[n];
        hk += int64_t(ns) * di;
        next += s.ckpt;
      }
      const float u = __bfloat162float(s.x[row * s.ldx + c]);
      const float d = s.delta[row * di + c];
      float acc = 0.0f;
      // Same operations, same order as selective_scan_fwd_t.
#pragma unroll
      for (int n = 0; n < NS; ++n) {
        const float hn = expf(d * A[n]) * h[n] + (d * sB[tt][n]) * u;
        h[n] = hn;
        acc += hn * sC[tt][n];
      }
      s.y[row * s.ldy + c] = __float2bfloat16(s.D ? acc + u * Dc : acc);
    }
  }
}

constexpr int ilog2(int x) { return x <= 1 ? 0 : 1 + ilog2(x / 2); }

// Lanes per channel in the backward: at most 16 states per lane keep its registers bounded.
template <int NS>
struct BwdLanes {
  static constexpr int P = NS > 16 ? NS / 16 : 1;
  static constexpr int SP = NS / P;  // states per lane
  static constexpr int M = 2 * SP;   // dB and dC values per lane and step
  // Values per lane left by warp_reduce_scatter (halvings over the warp's 32 / P channels).
  static constexpr int MOUT = M >> (ilog2(M) < ilog2(32 / P) ? ilog2(M) : ilog2(32 / P));
};

// Sums v[M] over the lanes of the warp that differ only in bits >= P (the same states of different
// channels), scattering the result: this lane ends with the sums of values base .. base + MOUT - 1 in
// v[0, MOUT). Each halving level (lane bit O, m values left) sends half of them to the partner lane;
// once one value is left, levels add it whole and lanes with any of the bits in `dup` set hold
// duplicates. A template recursion so that every index into v is a constant (v stays in registers).
template <int M, int P, int O = 16, int m = M>
__device__ __forceinline__ void warp_reduce_scatter(float (&v)[M], int lane, int& base, int& dup) {
  if constexpr (O >= P) {
    if constexpr (m > 1) {
      constexpr int half = m / 2;
      const bool up = lane & O;
#pragma unroll
      for (int i = 0; i < half; ++i) {
        const float send = up ? v[i] : v[i + half];
        const float keep = up ? v[i + half] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, O);
      }
      if (up) base += half;
      warp_reduce_scatter<M, P, O / 2, half>(v, lane, base, dup);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], O);
      dup |= O;
      warp_reduce_scatter<M, P, O / 2, 1>(v, lane, base, dup);
    }
  }
}

// dy [B*L, di] (lddy); dx, ddelta [B*L, di]; dBC [B*L, 2 ns]; dA [di, ns]; dD [di] (null: skipped).
// Partials: pBC [gridDim.x - 1, B*L, 2 ns] (the dB / dC sums of channel blocks x >= 1; channel block 0 writes
// dBC itself, =), pA [B - 1, di, ns] and pD [B - 1, di] (the dA / dD sums of sequences b >= 1; sequence 0
// adds into dA / dD, +=); every element of them is written (=). Thread: lane p of channel c of sequence b,
// states nb .. nb + SP - 1.
// Reverse sweep (selective_scan_bwd_t), with gh = dL/dh_t:  gn = gh + dy_t C_t;  dC_t += dy_t h_t;
//   ddelta_t = sum_n gn (A e_t h_{t-1} + B_t x_t);  dA += gn e_t h_{t-1} d_t;  dB_t += gn d_t x_t;
//   dx_t = dy_t D + sum_n gn d_t B_t;  gh <- gn e_t.
template <int NS>
__global__ void __launch_bounds__(kThreads)
    train_bwd_kernel(const ScanTrainCuda s, const bf16* __restrict__ dy, int64_t lddy, float* __restrict__ dx,
                     float* __restrict__ ddelta, float* __restrict__ dBC, float* __restrict__ dA,
                     float* __restrict__ dD, float* __restrict__ pBC, float* __restrict__ pA, float* __restrict__ pD) {
  using Ln = BwdLanes<NS>;
  constexpr int P = Ln::P, SP = Ln::SP, M = Ln::M, MOUT = Ln::MOUT;
  __shared__ __align__(16) float sB[kSub][NS];
  __shared__ __align__(16) float sC[kSub][NS];
  __shared__ float red[kWarps][kSub][2 * NS];  // per warp: dB (columns < NS) and dC (NS + n) of each step
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, p = tid % P;
  const int64_t c = int64_t(blockIdx.x) * (kThreads / P) + tid / P;
  const int b = blockIdx.y;
  const int64_t L = s.L, di = s.di, ckpt = s.ckpt, row0 = int64_t(b) * L;
  const int ns = s.ns, nb = p * SP;
  // Inactive threads run the same steps on zeros (everything they add is 0): every barrier and shuffle
  // sees the whole CTA.
  const bool active = c < di;
  const int64_t nck = (L + ckpt - 1) / ckpt;
  // dB / dC sums: channel block 0 into dBC, block x into partial slab x - 1.
  float* gbc = blockIdx.x == 0 ? dBC : pBC + (int64_t(blockIdx.x) - 1) * s.B * L * 2 * ns;

  float a[SP], gh[SP], ga[SP], h[SP];
#pragma unroll
  for (int j = 0; j < SP; ++j) {
    a[j] = active && nb + j < ns ? s.A[c * ns + nb + j] : 0.0f;
    gh[j] = ga[j] = 0.0f;
  }
  const float Dc = active && s.D ? s.D[c] : 0.0f;
  float gD = 0.0f;
  float hs[kSub][SP];  // h_{t-1} of the pass's steps (indexed by time: local memory)

  for (int64_t k = nck - 1; k >= 0; --k) {
    const int64_t k0 = k * ckpt, k1 = min(L, k0 + ckpt);
    const float* hk = s.hsave + (int64_t(b) * nck + k) * ns * di + c;
    for (int64_t j0 = k0 + (k1 - 1 - k0) / kSub * kSub; j0 >= k0; j0 -= kSub) {
      const int nt = int(min(int64_t(kSub), k1 - j0));
#pragma unroll
      for (int j = 0; j < SP; ++j) h[j] = active && nb + j < ns ? hk[int64_t(nb + j) * di] : 0.0f;
      // Intervals longer than kSub: advance from the checkpoint to this pass's first step.
      for (int64_t r = k0; r < j0; r += kSub) {
        const int m = int(min(int64_t(kSub), j0 - r));
        stage_bc<NS, kSub>(sB, sC, s.Bm, s.Cm, s.ldbc, row0 + r, m, ns);
        for (int tt = 0; tt < m; ++tt) {
          const int64_t row = row0 + r + tt;
          const float u = active ? __bfloat162float(s.x[row * s.ldx + c]) : 0.0f;
          const float d = active ? s.delta[row * di + c] : 0.0f;
#pragma unroll
          for (int j = 0; j < SP; ++j) h[j] = expf(d * a[j]) * h[j] + (d * sB[tt][nb + j]) * u;
        }
      }
      stage_bc<NS, kSub>(sB, sC, s.Bm, s.Cm, s.ldbc, row0 + j0, nt, ns);
      for (int tt = 0; tt < nt; ++tt) {
        const int64_t row = row0 + j0 + tt;
        const float u = active ? __bfloat162float(s.x[row * s.ldx + c]) : 0.0f;
        const float d = active ? s.delta[row * di + c] : 0.0f;
#pragma unroll
        for (int j = 0; j < SP; ++j) {
          hs[tt][j] = h[j];
          h[j] = expf(d * a[j]) * h[j] + (d * sB[tt][nb + j]) * u;
        }
      }
      // h = h_t of the last step; walk the pass backwards.
      for (int tt = nt - 1; tt >= 0; --tt) {
        const int64_t row = row0 + j0 + tt;
        const float u = active ? __bfloat162float(s.x[row * s.ldx + c]) : 0.0f;
        const float d = active ? s.delta[row * di + c] : 0.0f;
        const float gy = active ? __bfloat162float(dy[row * lddy + c]) : 0.0f;
        float gx = 0.0f, gd = 0.0f, v[M];
#pragma unroll
        for (int j = 0; j < SP; ++j) {
          const float hp = hs[tt][j], bn = sB[tt][nb + j];
          const float e = expf(d * a[j]);
          const float gn = gh[j] + gy * sC[tt][nb + j];
          v[SP + j] = gy * h[j];
          const float ge = gn * e * hp;  // dL/d(d a) through e
          gd += ge * a[j] + gn * bn * u;
          ga[j] += ge * d;
          v[j] = gn * d * u;
          gx += gn * d * bn;
          gh[j] = gn * e;
          h[j] = hp;
        }
#pragma unroll
        for (int o = 1; o < P; o <<= 1) {
          gx += __shfl_xor_sync(0xffffffffu, gx, o);
          gd += __shfl_xor_sync(0xffffffffu, gd, o);
        }
        if (active && p == 0) {
          dx[row * di + c] = s.D ? gx + gy * Dc : gx;
          ddelta[row * di + c] = gd;
        }
        if (s.D) gD += gy * u;  // as the CPU form: no D, no dD terms
        int base = 0, dup = 0;
        warp_reduce_scatter<M, P>(v, lane, base, dup);
        if ((lane & dup) == 0)
#pragma unroll
          for (int i = 0; i < MOUT; ++i) {
            const int idx = base + i;
            red[warp][tt][idx < SP ? nb + idx : NS + nb + idx - SP] = v[i];
          }
      }
      __syncthreads();
      // Every (row, column) of the pass, once per CTA.
      for (int i = tid; i < nt * 2 * ns; i += kThreads) {
        const int tt = i / (2 * ns), col = i % (2 * ns);
        const int sc = col < ns ? col : NS + col - ns;
        float acc = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) acc += red[w][tt][sc];
        gbc[(row0 + j0 + tt) * 2 * ns + col] = acc;
      }
    }
  }
  if (!active) return;
  // Sequence 0 adds to the gradients (their only writer), sequence b >= 1 stores row b - 1 of the partials.
  if (dA) {
    float* out = (b == 0 ? dA : pA + (int64_t(b) - 1) * di * ns) + c * ns + nb;
#pragma unroll
    for (int j = 0; j < SP; ++j)
      if (nb + j < ns) out[j] = b == 0 ? out[j] + ga[j] : ga[j];
  }
  if (dD && p == 0) {
    if (b == 0)
      dD[c] += gD;
    else
      pD[(int64_t(b) - 1) * di + c] = gD;
  }
}

// pre, delta [N, di]; bias [di].
__global__ void softplus_fwd_kernel(const float* __restrict__ pre, const float* __restrict__ bias, int64_t N,
                                    int64_t di, float* __restrict__ delta) {
  const int64_t n = N * di;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    delta[i] = softplus_f(pre[i] + bias[i % di]);
}

constexpr int kSpCh = 32, kSpGroups = 32;  // softplus backward CTA: 32 channels x 32 row groups
// About 1024 CTAs in all, at most 128 row slices (the dbias reduction's depth; scratch R x di floats).
constexpr int64_t kSpCtas = 1024, kSpMaxParts = 128;

// ddelta, pre [N, di]; dpre [N, di] (lddp); part [R, di] (R = gridDim.y; null: no dbias). Thread (tx, ty):
// channel c, rows y, y + 32 R, ... (y = blockIdx.y * 32 + ty) in order; the CTA adds its 32 row groups in
// group order into part[blockIdx.y, c] (=).
__global__ void __launch_bounds__(kSpCh* kSpGroups)
    softplus_bwd_kernel(const float* __restrict__ ddelta, const float* __restrict__ pre, const float* __restrict__ bias,
                        int64_t N, int64_t di, bf16* __restrict__ dpre, int64_t lddp, float* __restrict__ part) {
  __shared__ float red[kSpGroups][kSpCh + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * kSpCh + tx, stride = int64_t(gridDim.y) * kSpGroups;
  float acc = 0.0f;
  if (c < di) {
    const float bv = bias[c];
    for (int64_t r = int64_t(blockIdx.y) * kSpGroups + ty; r < N; r += stride) {
      const float v = pre[r * di + c] + bv;
      // dbias sums the fp32 dpre (the CPU form's), not its bf16 rounding.
      const float g = ddelta[r * di + c] * (v > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-v)));
      dpre[r * lddp + c] = __float2bfloat16(g);
      acc += g;
    }
  }
  if (!part) return;  // uniform over the CTA
  red[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < di) {
    float sum = 0.0f;
#pragma unroll
    for (int g = 0; g < kSpGroups; ++g) sum += red[g][tx];
    part[int64_t(blockIdx.y) * di + c] = sum;
  }
}

__global__ void mamba_a_fwd_kernel(const float* __restrict__ A_log, int64_t n, float* __restrict__ A) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    A[i] = -expf(A_log[i]);
}

__global__ void mamba_a_bwd_kernel(const float* __restrict__ dA, const float* __restrict__ A, int64_t n,
                                   float* __restrict__ dA_log) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dA_log[i] += dA[i] * A[i];
}

// Grid-stride launches: enough CTAs of 256 for any n, capped (each thread then loops).
unsigned flat_blocks(int64_t n) { return unsigned(std::min<int64_t>((n + 255) / 256, int64_t(1) << 16)); }

void check_scan_train(const ScanTrainCuda& s, const char* what) {
  JRT_CHECK(s.ns >= 1 && s.ns <= kMaxNs, "{}: d_state {} outside [1, {}]", what, s.ns, kMaxNs);
  JRT_CHECK(s.B >= 0 && s.B <= 65535, "{}: batch of {} sequences (at most 65535)", what, s.B);
  JRT_CHECK(s.L >= 0 && s.di >= 0 && s.ckpt >= 1, "{}: bad L {} / d_inner {} / ckpt {}", what, s.L, s.di, s.ckpt);
  JRT_CHECK((s.di + kThreads - 1) / kThreads <= 0x7fffffff, "{}: d_inner {} too large for the grid", what, s.di);
}

}  // namespace

void delta_softplus_fwd_cuda(const float* pre, const float* bias, int64_t N, int64_t di, float* delta,
                             cudaStream_t stream) {
  JRT_CHECK(N >= 0 && di >= 0, "delta_softplus_fwd_cuda: bad shape N {} d_inner {}", N, di);
  if (N == 0 || di == 0) return;
  softplus_fwd_kernel<<<flat_blocks(N * di), 256, 0, stream>>>(pre, bias, N, di, delta);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void delta_softplus_bwd_cuda(const float* ddelta, const float* pre, const float* bias, int64_t N, int64_t di,
                             bf16* dpre, int64_t lddp, float* dbias, cudaStream_t stream) {
  JRT_CHECK(N >= 0 && di >= 0, "delta_softplus_bwd_cuda: bad shape N {} d_inner {}", N, di);
  if (N == 0 || di == 0) return;
  const int64_t ctiles = (di + kSpCh - 1) / kSpCh;
  JRT_CHECK(ctiles <= 0x7fffffff, "delta_softplus_bwd_cuda: d_inner {} too large for the grid", di);
  // Row slices: fixed by the shape; no more than one per 32 rows (a row per row group).
  const int64_t R =
      std::min(std::clamp<int64_t>((kSpCtas + ctiles - 1) / ctiles, 1, kSpMaxParts), (N + kSpGroups - 1) / kSpGroups);
  jrt::cuda::StreamScratch<float> part(dbias ? size_t(R * di) : 0, stream);  // [R, di]
  softplus_bwd_kernel<<<dim3(unsigned(ctiles), unsigned(R)), dim3(kSpCh, kSpGroups), 0, stream>>>(
      ddelta, pre, bias, N, di, dpre, lddp, part.get());
  JRT_CUDA_CHECK(cudaGetLastError());
  if (dbias) column_sum_add_cuda(part.get(), R, di, dbias, stream);
}

void mamba_a_fwd_cuda(const float* A_log, int64_t n, float* A, cudaStream_t stream) {
  if (n <= 0) return;
  mamba_a_fwd_kernel<<<flat_blocks(n), 256, 0, stream>>>(A_log, n, A);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void mamba_a_bwd_cuda(const float* dA, const float* A, int64_t n, float* dA_log, cudaStream_t stream) {
  if (n <= 0) return;
  mamba_a_bwd_kernel<<<flat_blocks(n), 256, 0, stream>>>(dA, A, n, dA_log);
  JRT_CUDA_CHECK(cudaGetLastError());
}

int64_t scan_train_saved_floats(int B, int64_t L, int64_t di, int ns, int ckpt) {
  if (B <= 0 || L <= 0 || di <= 0 || ns <= 0) return 0;
  JRT_CHECK(ckpt >= 1, "scan_train_saved_floats: checkpoint interval must be >= 1, got {}", ckpt);
  return int64_t(B) * ((L + ckpt - 1) / ckpt) * di * ns;
}

void selective_scan_fwd_train_cuda(const ScanTrainCuda& s, cudaStream_t stream) {
  check_scan_train(s, "selective_scan_fwd_train_cuda");
  if (s.B == 0 || s.L == 0 || s.di == 0) return;
  JRT_CHECK(s.x && s.delta && s.A && s.Bm && s.Cm && s.y && s.hsave, "selective_scan_fwd_train_cuda: missing operand");
  const dim3 grid{unsigned((s.di + kThreads - 1) / kThreads), unsigned(s.B)};
  with_ns(s.ns, [&](auto w) { train_fwd_kernel<decltype(w)::value><<<grid, kThreads, 0, stream>>>(s); });
  JRT_CUDA_CHECK(cudaGetLastError());
}

void selective_scan_bwd_train_cuda(const ScanTrainCuda& s, const bf16* dy, int64_t lddy, float* dx, float* ddelta,
                                   float* dBC, float* dA, float* dD, cudaStream_t stream) {
  check_scan_train(s, "selective_scan_bwd_train_cuda");
  if (s.B == 0 || s.L == 0 || s.di == 0) return;
  JRT_CHECK(s.x && s.delta && s.A && s.Bm && s.Cm && s.hsave && dy && dx && ddelta && dBC,
            "selective_scan_bwd_train_cuda: missing operand");
  with_ns(s.ns, [&](auto w) {
    constexpr int NS = decltype(w)::value;
    constexpr int cb = kThreads / BwdLanes<NS>::P;  // channels per CTA
    const int64_t gx = (s.di + cb - 1) / cb;
    const int64_t nbc = int64_t(s.B) * s.L * 2 * s.ns;
    // Partials of channel blocks 1 .. gx-1 ([gx - 1, B*L, 2 ns]: (gx - 1) x dBC's size) and of sequences
    // 1 .. B-1 ([B - 1, di, ns] and [B - 1, di]); none when there is one channel block / one sequence.
    jrt::cuda::StreamScratch<float> pBC(size_t((gx - 1) * nbc), stream);
    jrt::cuda::StreamScratch<float> pA(dA ? size_t((s.B - 1) * s.di * s.ns) : 0, stream);
    jrt::cuda::StreamScratch<float> pD(dD ? size_t((s.B - 1) * s.di) : 0, stream);
    const dim3 grid{unsigned(gx), unsigned(s.B)};
    train_bwd_kernel<NS>
        <<<grid, kThreads, 0, stream>>>(s, dy, lddy, dx, ddelta, dBC, dA, dD, pBC.get(), pA.get(), pD.get());
    JRT_CUDA_CHECK(cudaGetLastError());
    column_sum_add_cuda(pBC.get(), gx - 1, nbc, dBC, stream);
    if (dA) column_sum_add_cuda(pA.get(), s.B - 1, s.di * s.ns, dA, stream);
    if (dD) column_sum_add_cuda(pD.get(), s.B - 1, s.di, dD, stream);
  });
}

}  // namespace jrt::ops::cuda
