#!/usr/bin/env python3
"""bench/torch_synth_train.py — training throughput of a plain PyTorch implementation of the SAME synthetic
model `jrt synth` trains (synth/model.h: embedding, pre-norm blocks, final norm, tied head, no MLP by default;
Zoology's hybrid pattern [BaseConv, mixer] alternating), on the same MQAR data, to compare tokens/s with
jrt's trainer on the same machine / GPU.

    python3 bench/torch_synth_train.py --mixer based --d-model 64 --seq-len 32 --kv-pairs 4 --vocab 128 \
        --batch 64 --steps 200 --device cuda [--bf16] [--compile] [--check-learning]

Prints one line: `torch tokens/s=<float> step_ms=<float> params=<int> ...`. Compare with the `tok/s` figures
of `jrt synth mqar` with the same flags (docs/results.md). Mixers: based, jrt, sliding, attention, mamba,
baseconv — the same math as jrt's (models-spec §4-§5): the gated BaseConv (in_proj d -> 2*di, causal depthwise
conv on the first half, SiLU, times the second half, out_proj), Taylor linear attention in its quadratic
form (phi(q).phi(k) = 1 + s + s^2/2, s = q.k / sqrt(feature_dim), eps 1e-12), JRT's prefix linear attention
(separate k_enc / v_enc over the first enc_length tokens, read non-causally), softmax attention with rotary
(full causal or a window of `window` keys back), Mamba with the reference's sequential selective scan.
Only torch is needed (no numpy).
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- data: Zoology's MQAR (synthetics-spec §4.1) --------------------------------------------------------------
def mqar(n, L, D, V, power_a=0.01, random_fill=False, gen=None):
    C = 2 * D
    space = (L - C) // 2
    p = power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (power_a - 1)
    p = p / p.sum()
    keys = torch.stack([torch.randperm(V // 2 - 1, generator=gen)[:D] + 1 for _ in range(n)])
    vals = torch.stack([torch.randperm(V - V // 2, generator=gen)[:D] + V // 2 for _ in range(n)])
    gaps = torch.stack([torch.multinomial(p, D, replacement=False, generator=gen) for _ in range(n)])
    seq = torch.zeros(n, L + 1, dtype=torch.long)
    seq[:, 0:C:2] = keys
    seq[:, 1:C:2] = vals
    lab = torch.full((n, L + 1), -100, dtype=torch.long)
    seq.scatter_(1, C + 2 * gaps, keys)
    lab.scatter_(1, C + 2 * gaps + 1, vals)
    inputs, labels = seq[:, :L].clone(), lab[:, 1:].clone()
    if random_fill:
        fill = torch.randint(V, inputs.shape, generator=gen)
        inputs = torch.where(inputs == 0, fill, inputs)
    return inputs, labels


# ---- mixers ---------------------------------------------------------------------------------------------------
class BaseConv(nn.Module):
    def __init__(self, d, expand=2, k=3):
        super().__init__()
        di = expand * d // 2
        self.in_proj = nn.Linear(d, 2 * di)
        self.conv = nn.Conv1d(di, di, k, groups=di, padding=k - 1, bias=False)
        self.out_proj = nn.Linear(di, d)

    def forward(self, x):
        u1, u2 = self.in_proj(x).chunk(2, dim=-1)
        c = self.conv(u1.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)
        return self.out_proj(F.silu(c) * u2)


def taylor_kernel(q, k, fd):
    s = q @ k.transpose(-1, -2) / math.sqrt(fd)
    return 1 + s + 0.5 * s * s


class TaylorLinearAttention(nn.Module):
    """Based LinearAttention (prefix=False) or JRT PrefixLinearAttention (prefix=True), quadratic form."""

    def __init__(self, d, fd, heads, prefix=False, enc_length=0, eps=1e-12):
        super().__init__()
        self.d, self.fd, self.h, self.hd, self.prefix, self.enc, self.eps = d, fd, heads, d // heads, prefix, enc_length, eps
        self.proj_q = nn.Linear(d, heads * fd, bias=False)
        self.proj_k = nn.Linear(d, heads * fd, bias=False)
        self.proj_v = nn.Linear(d, d, bias=False)
        if prefix:
            self.proj_k_enc = nn.Linear(d, heads * fd, bias=False)
            self.proj_v_enc = nn.Linear(d, d, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)

    def heads(self, t, w):
        B, L, _ = t.shape
        return t.view(B, L, self.h, w).transpose(1, 2)

    def forward(self, x):
        B, L, _ = x.shape
        q = self.heads(self.proj_q(x), self.fd)
        k = self.heads(self.proj_k(x), self.fd)
        v = self.heads(self.proj_v(x), self.hd)
        A = taylor_kernel(q, k, self.fd).tril()
        num, den = A @ v, A.sum(-1, keepdim=True)
        if self.prefix:
            M = min(self.enc, L)
            ke = self.heads(self.proj_k_enc(x[:, :M]), self.fd)
            ve = self.heads(self.proj_v_enc(x[:, :M]), self.hd)
            Ae = taylor_kernel(q, ke, self.fd)
            num, den = num + Ae @ ve, den + Ae.sum(-1, keepdim=True)
        y = num / (den + self.eps)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, self.d))


def rotary(x, base=10000.0):  # x [B, H, L, hd], GPT-NeoX halves, full head dim
    L, hd = x.shape[-2], x.shape[-1]
    inv = 1.0 / base ** (torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd)
    ang = torch.arange(L, device=x.device, dtype=torch.float32)[:, None] * inv[None]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SoftmaxAttention(nn.Module):
    def __init__(self, d, heads, window=-1):
        super().__init__()
        self.d, self.h, self.hd, self.window = d, heads, d // heads, window
        self.Wqkv = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        B, L, _ = x.shape
        q, k, v = self.Wqkv(x).view(B, L, 3, self.h, self.hd).permute(2, 0, 3, 1, 4)
        q, k = rotary(q), rotary(k)
        if self.window < 0:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            i = torch.arange(L, device=x.device)
            mask = (i[None, :] <= i[:, None]) & (i[None, :] >= i[:, None] - self.window)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(o.transpose(1, 2).reshape(B, L, self.d))


class Mamba(nn.Module):
    def __init__(self, d, d_state=16, d_conv=4, expand=2):
        super().__init__()
        di, self.r = expand * d, math.ceil(d / 16)
        self.di, self.n = di, d_state
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, self.r + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.r, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d, bias=False)

    def forward(self, x):
        B, L, _ = x.shape
        xc, z = self.in_proj(x).chunk(2, dim=-1)
        xc = F.silu(self.conv1d(xc.transpose(1, 2))[..., :L].transpose(1, 2))
        dt, Bm, Cm = self.x_proj(xc).split([self.r, self.n, self.n], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log.float())
        dA = torch.exp(delta.unsqueeze(-1) * A)  # [B, L, di, n]
        dBu = (delta * xc).unsqueeze(-1) * Bm.unsqueeze(2)
        h = torch.zeros(B, self.di, self.n, device=x.device, dtype=x.dtype)
        ys = []
        for t in range(L):  # selective_scan_ref's loop
            h = dA[:, t] * h + dBu[:, t]
            ys.append((h * Cm[:, t].unsqueeze(1)).sum(-1))
        y = torch.stack(ys, dim=1) + xc * self.D
        return self.out_proj(y * F.silu(z))


# ---- the model ------------------------------------------------------------------------------------------------
class SynthLM(nn.Module):
    def __init__(self, a):
        super().__init__()
        d = a.d_model
        self.emb = nn.Embedding(a.vocab, d)
        norm = (lambda: nn.RMSNorm(d, eps=1e-5)) if a.mixer == "mamba" or a.rms_norm else (lambda: nn.LayerNorm(d, eps=1e-5))
        self.norms = nn.ModuleList(norm() for _ in range(a.layers))
        self.mixers = nn.ModuleList()
        for i in range(a.layers):
            if a.mixer == "mamba":
                m = Mamba(d, a.d_state)
            elif a.mixer == "attention":
                m = SoftmaxAttention(d, a.heads)
            elif a.mixer == "baseconv" or i % 2 == 0:
                m = BaseConv(d)
            elif a.mixer == "based":
                m = TaylorLinearAttention(d, a.feature_dim, a.la_heads)
            elif a.mixer == "jrt":
                m = TaylorLinearAttention(d, a.feature_dim, a.la_heads, prefix=True, enc_length=a.enc_length or a.seq_len)
            elif a.mixer == "sliding":
                m = SoftmaxAttention(d, a.heads, window=a.window)
            else:
                raise SystemExit(f"unknown --mixer {a.mixer}")
            self.mixers.append(m)
        self.mlps = nn.ModuleList()
        self.norms2 = nn.ModuleList()
        if a.mlp > 0:
            for _ in range(a.layers):
                self.norms2.append(norm())
                self.mlps.append(nn.ModuleDict({"fc1": nn.Linear(d, 2 * a.mlp, bias=False), "fc2": nn.Linear(a.mlp, d, bias=False)}))
        self.ln_f = norm()
        self.apply(self._init)
        for n, p in self.named_parameters():  # Zoology's rescale of output projections
            if n.endswith("out_proj.weight") or n.endswith("fc2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * a.layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(self, ids):
        r = self.emb(ids)
        for i, (n, m) in enumerate(zip(self.norms, self.mixers)):
            r = r + m(n(r))
            if self.mlps:
                u = self.mlps[i]["fc1"](self.norms2[i](r))
                a, g = u.chunk(2, dim=-1)
                r = r + self.mlps[i]["fc2"](a * F.silu(g))
        return self.ln_f(r) @ self.emb.weight.t()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mixer", default="based")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--feature-dim", type=int, default=16)
    ap.add_argument("--la-heads", type=int, default=1)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--enc-length", type=int, default=0)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--mlp", type=int, default=0)
    ap.add_argument("--rms-norm", action="store_true")
    ap.add_argument("--vocab", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--kv-pairs", type=int, default=4)
    ap.add_argument("--random-fill", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=100, help="timed optimizer steps")
    ap.add_argument("--warmup-steps", type=int, default=10, help="untimed steps first")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (fp32 master weights)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--check-learning", action="store_true", help="also report accuracy on 500 held-out examples")
    ap.add_argument("--seed", type=int, default=123)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    dev = torch.device(a.device)
    n_train = a.batch * (a.steps + a.warmup_steps)
    x, y = mqar(n_train, a.seq_len, a.kv_pairs, a.vocab, random_fill=a.random_fill, gen=gen)
    x, y = x.to(dev), y.to(dev)
    model = SynthLM(a).to(dev)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() >= 2 and "emb" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    fwd = torch.compile(model) if a.compile else model

    def step(i):
        ids, lab = x[i * a.batch : (i + 1) * a.batch], y[i * a.batch : (i + 1) * a.batch]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            logits = fwd(ids)
        loss = F.cross_entropy(logits.float().reshape(-1, a.vocab), lab.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup_steps):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(a.warmup_steps, a.warmup_steps + a.steps):
        loss = step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tps = a.steps * a.batch * a.seq_len / dt
    extra = ""
    if a.check_learning:
        tx, ty = mqar(500, a.seq_len, a.kv_pairs, a.vocab, random_fill=a.random_fill, gen=gen)
        with torch.no_grad():
            pred = model(tx.to(dev)).argmax(-1).cpu()
        m = ty != -100
        extra = f" accuracy={((pred == ty) & m).sum().item() / m.sum().item():.4f}"
    print(f"torch tokens/s={tps:.0f} step_ms={dt / a.steps * 1e3:.2f} params={params} mixer={a.mixer} "
          f"d_model={a.d_model} batch={a.batch} seq_len={a.seq_len} device={a.device} bf16={a.bf16} "
          f"loss={loss.item():.4f}{extra}")


if __name__ == "__main__":
    main()
