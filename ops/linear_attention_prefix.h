// ops/linear_attention_prefix.h — internal to the CUDA training ops: the JRT prefix-state products of Taylor
// linear attention as batched GEMMs on TF32 tensor cores (ops/linear_attention_prefix.cu). The feature map
// phi (1 + fd + fd^2 features, ops/taylor.h) is written out per row in fp32 and every product with the state
// is one cuBLAS strided-batched GEMM over the B H (sequence, head) pairs:
//   S0x = Phi(K)^T [V | 1],  share = Phi(Q) S0x,  dS0x = Phi(Q)^T [R | dden],  dPhi(Q) = [R | dden] S0x^T,
//   d[V | 1] = Phi(K) dS0x,  dPhi(K) = [V | 1] dS0x^T
// where S0x = [S0 | z0] is the state with z0 as an extra column, so the denominator terms ride along in the
// same GEMMs. The fp32 CUDA-core loops these replace cost ~2 D d_v FLOPs per row on CUDA cores.
#pragma once
#ifdef JRT_HAVE_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace jrt::ops::cuda::la_prefix {

using bf16 = __nv_bfloat16;

// Scratch bytes of share_fwd / share_bwd for B H pairs of L rows (fd, dv as in LaTrainCuda).
size_t share_fwd_bytes(int64_t BH, int64_t L, int fd, int dv);
size_t share_bwd_bytes(int64_t BH, int64_t L, int fd, int dv);

// share fp32 [B H, L, ldshare] (=): columns c < dv hold phi(q_t) . S0[:, c], column dv holds phi(q_t) . z0.
// q bf16 [N, H fd] (head h at columns h fd); S0 fp32 [B H, D, dv], z0 [B H, D] (either may be null: zero).
// Returns ldshare. ws: share_fwd_bytes.
int64_t share_fwd(const bf16* q, int64_t ldq, int B, int64_t L, int H, int fd, int dv, const float* S0, const float* z0,
                  void* ws, const float** share, cudaStream_t stream);

// With R_t = rinv_t dy_t (rinv, dden fp32 [B H, L]):
//   dq (=, bf16 [N, H fd]) = dq_acc + J_phi(q_t)^T (S0 R_t + dden_t z0)   (dq_acc fp32 [N, H, fd] or null)
//   dS0 (=, fp32 [B H, D, dv]) = sum_t phi(q_t) R_t^T,  dz0 (=, [B H, D]) = sum_t phi(q_t) dden_t   (when non-null)
// dq is skipped when it is null. ws: share_bwd_bytes.
void share_bwd(const bf16* q, int64_t ldq, const bf16* dy, int64_t lddy, const float* rinv, const float* dden, int B,
               int64_t L, int H, int fd, int dv, const float* S0, const float* z0, const float* dq_acc, bf16* dq,
               int64_t lddq, float* dS0, float* dz0, void* ws, cudaStream_t stream);

}  // namespace jrt::ops::cuda::la_prefix
#endif
