#!/usr/bin/env python3
"""bench/torch_baselines.py — the baselines jrt's GPU prefill is compared against, on the same GPU in the
same run: torch scaled_dot_product_attention (causal; flash and cuDNN backends) at head dim 64, and the
reference's pure-PyTorch Based form (LinearAttention.parallel_forward, 'quadratic': explicit 273-wide
Taylor features, L x L scores, tril, cumsum denominator). Same shapes as bench_cuda_prefill:
H = 16, d_k = 16 (Based), d_v = 64, bf16. CUDA events, 3 warm-ups, median of 20 (1 warm-up and 5 for
the reference form, which is slow). Prints a markdown table.

    python3 bench/torch_baselines.py [--batches 2,8,16] [--lens 2048,...] [--ref-max-gb 30]
"""
import argparse
import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def median_ms(fn, warm=3, reps=20):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def taylor(x):  # reference TaylorExp: [1, x/16^(1/4), vec(x x^T)/(sqrt2 * 4)]
    x2 = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(start_dim=-2) / (math.sqrt(2) * 4)
    return torch.cat([x[..., :1] ** 0, x / 2, x2], dim=-1)


def reference_based(q, k, v):  # [B, H, L, 16], [B, H, L, 16], [B, H, L, 64]
    fq, fk = taylor(q), taylor(k)
    A = torch.einsum("bhnd,bhmd->bhnm", fq, fk).tril()
    y = torch.einsum("bhnm,bhme->bhne", A, v)
    z = 1 / (torch.einsum("bhld,bhld->bhl", fq, fk.cumsum(2)) + 1e-12)
    return y * z[..., None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="2,8,16")
    ap.add_argument("--lens", default="2048,4096,8192,16384,32768")
    ap.add_argument("--ref-max-gb", type=float, default=30.0)
    args = ap.parse_args()
    dev = torch.device("cuda")
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print("| baseline | B | N | ms | TFLOP/s |\n|---|---:|---:|---:|---:|")
    H = 16
    for B in map(int, args.batches.split(",")):
        for N in map(int, args.lens.split(",")):
            q = torch.randn(B, H, N, 64, device=dev, dtype=torch.bfloat16)
            k, v = torch.randn_like(q), torch.randn_like(q)
            flop = 2 * B * H * N * N * 64  # causal half of 4*B*H*N^2*d
            for name, be in (("sdpa flash", SDPBackend.FLASH_ATTENTION), ("sdpa cudnn", SDPBackend.CUDNN_ATTENTION)):
                try:
                    with sdpa_kernel(be):
                        ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
                    print(f"| {name} | {B} | {N} | {ms:.3f} | {flop / ms / 1e9:.0f} |", flush=True)
                except RuntimeError as e:
                    print(f"| {name} | {B} | {N} | n/a ({str(e).splitlines()[0][:40]}) | |", flush=True)
            del q, k, v
            gb = B * H * N * N * 2 * 3 / 1e9
            if gb <= args.ref_max_gb:
                qb = torch.randn(B, H, N, 16, device=dev, dtype=torch.bfloat16) * 0.7
                kb = torch.randn_like(qb) * 0.7
                vb = torch.randn(B, H, N, 64, device=dev, dtype=torch.bfloat16)
                with torch.no_grad():
                    ms = median_ms(lambda: reference_based(qb, kb, vb), warm=1, reps=5)
                print(f"| reference pytorch Based (273 features) | {B} | {N} | {ms:.3f} | |", flush=True)
                del qb, kb, vb
            else:
                print(f"| reference pytorch Based (273 features) | {B} | {N} | skipped (~{gb:.0f} GB of scores) | |")
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
