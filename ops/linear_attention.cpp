// ops/linear_attention.cpp — chunked / quadratic / one-step causal Taylor linear attention.
#include "ops/linear_attention.h"

#include <cblas.h>

#include <cmath>
#include <vector>

#include "ops/taylor.h"

namespace jrt::ops {

static void features_rows(const float* x, int64_t ldx, int64_t n, int64_t fd, float* F) {
  const int64_t D = taylor_dim(fd);
  for (int64_t i = 0; i < n; ++i) taylor_features(x + i * ldx, fd, F + i * D);
}

void la_accumulate_state(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t M, int64_t fd,
                         int64_t dv, float* S, float* z) {
  if (M <= 0) return;
  const int64_t D = taylor_dim(fd);
  std::vector<float> F(size_t(M * D));
  features_rows(k, ldk, M, fd, F.data());
  // S[D, dv] += F^T [D, M] @ V [M, dv]
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(D), int(dv), int(M), 1.0f, F.data(), int(D), v, int(ldv),
              1.0f, S, int(dv));
  for (int64_t j = 0; j < M; ++j)
    for (int64_t i = 0; i < D; ++i) z[i] += F[size_t(j * D + i)];
}

void la_chunked(const LaHead& h, float* S, float* z, int64_t chunk) {
  const int64_t fd = h.fd, dv = h.dv, D = taylor_dim(fd);
  if (chunk < 1) chunk = 1;
  const bool decay = h.gamma != 1.0;
  const double lg = decay ? std::log(h.gamma) : 0.0;
  std::vector<float> Fq(size_t(chunk * D)), Fk(size_t(chunk * D)), A(size_t(chunk * chunk)), num(size_t(chunk * dv)),
      den(static_cast<size_t>(chunk)), Vw(size_t(chunk * dv));
  for (int64_t t0 = 0; t0 < h.L; t0 += chunk) {
    const int64_t C = std::min(chunk, h.L - t0);
    const float* q = h.q + t0 * h.ldq;
    const float* k = h.k + t0 * h.ldk;
    const float* v = h.v + t0 * h.ldv;
    features_rows(q, h.ldq, C, fd, Fq.data());
    features_rows(k, h.ldk, C, fd, Fk.data());
    // Inter-chunk: num = diag(gamma^(i+1)) Fq S ; den = Fq z.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(C), int(dv), int(D), 1.0f, Fq.data(), int(D), S,
                int(dv), 0.0f, num.data(), int(dv));
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(C), int(D), 1.0f, Fq.data(), int(D), z, 1, 0.0f, den.data(), 1);
    if (decay)
      for (int64_t i = 0; i < C; ++i) {
        float g = float(std::exp(lg * double(i + 1)));
        for (int64_t e = 0; e < dv; ++e) num[size_t(i * dv + e)] *= g;
      }
    // Intra-chunk: A_ij = phi(q_i).phi(k_j) for j <= i, from the dot products.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(C), int(C), int(fd), 1.0f, q, int(h.ldq), k, int(h.ldk),
                0.0f, A.data(), int(C));
    for (int64_t i = 0; i < C; ++i) {
      float* Ai = A.data() + i * C;
      float rs = 0;
      for (int64_t j = 0; j <= i; ++j) {
        float w = taylor_kernel_from_dot(Ai[j], fd);
        rs += w;
        Ai[j] = decay ? w * float(std::exp(lg * double(i - j))) : w;
      }
      for (int64_t j = i + 1; j < C; ++j) Ai[j] = 0.0f;
      den[size_t(i)] += rs;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(C), int(dv), int(C), 1.0f, A.data(), int(C), v,
                int(h.ldv), 1.0f, num.data(), int(dv));
    for (int64_t i = 0; i < C; ++i) {
      float scale = h.dt ? h.dt[(t0 + i) * h.lddt] : 1.0f;
      float inv = scale / (den[size_t(i)] + h.eps);
      float* yr = h.y + (t0 + i) * h.ldy;
      for (int64_t e = 0; e < dv; ++e) yr[e] = num[size_t(i * dv + e)] * inv;
    }
    // State update: S = gamma^C S + Fk^T diag(gamma^(C-1-j)) V ; z += sum_j Fk_j.
    const float* vsrc = v;
    int64_t ldvs = h.ldv;
    if (decay) {
      float gC = float(std::exp(lg * double(C)));
      for (int64_t i = 0; i < D * dv; ++i) S[i] *= gC;
      for (int64_t j = 0; j < C; ++j) {
        float g = float(std::exp(lg * double(C - 1 - j)));
        for (int64_t e = 0; e < dv; ++e) Vw[size_t(j * dv + e)] = v[j * h.ldv + e] * g;
      }
      vsrc = Vw.data();
      ldvs = dv;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(D), int(dv), int(C), 1.0f, Fk.data(), int(D), vsrc,
                int(ldvs), 1.0f, S, int(dv));
    for (int64_t j = 0; j < C; ++j)
      for (int64_t i = 0; i < D; ++i) z[i] += Fk[size_t(j * D + i)];
  }
}

void la_quadratic(const LaHead& h, float* S, float* z) {
  const int64_t fd = h.fd, dv = h.dv, D = taylor_dim(fd);
  std::vector<float> fq(static_cast<size_t>(D)), fk(static_cast<size_t>(D));
  std::vector<double> num(static_cast<size_t>(dv));
  for (int64_t i = 0; i < h.L; ++i) {
    const float* qi = h.q + i * h.ldq;
    taylor_features(qi, fd, fq.data());
    // The initial state's share, decayed over i+1 steps.
    double g0 = std::pow(h.gamma, double(i + 1)), den = 0;
    for (int64_t e = 0; e < dv; ++e) {
      double a = 0;
      for (int64_t f = 0; f < D; ++f) a += double(fq[size_t(f)]) * S[f * dv + e];
      num[size_t(e)] = g0 * a;
    }
    for (int64_t f = 0; f < D; ++f) den += double(fq[size_t(f)]) * z[f];
    for (int64_t j = 0; j <= i; ++j) {
      const float* kj = h.k + j * h.ldk;
      double dot = 0;
      for (int64_t c = 0; c < fd; ++c) dot += double(qi[c]) * kj[c];
      double s = dot / std::sqrt(double(fd));
      double w = 1.0 + s + 0.5 * s * s;
      den += w;
      double wd = w * std::pow(h.gamma, double(i - j));
      for (int64_t e = 0; e < dv; ++e) num[size_t(e)] += wd * h.v[j * h.ldv + e];
    }
    double scale = h.dt ? h.dt[i * h.lddt] : 1.0;
    for (int64_t e = 0; e < dv; ++e) h.y[i * h.ldy + e] = float(scale * num[size_t(e)] / (den + h.eps));
  }
  // Final state, for continuing.
  const double gL = std::pow(h.gamma, double(h.L));
  for (int64_t i = 0; i < D * dv; ++i) S[i] = float(S[i] * gL);
  for (int64_t j = 0; j < h.L; ++j) {
    taylor_features(h.k + j * h.ldk, fd, fk.data());
    double g = std::pow(h.gamma, double(h.L - 1 - j));
    for (int64_t f = 0; f < D; ++f) {
      z[f] += fk[size_t(f)];
      float gf = float(g * fk[size_t(f)]);
      for (int64_t e = 0; e < dv; ++e) S[f * dv + e] += gf * h.v[j * h.ldv + e];
    }
  }
}

void la_step(const LaHead& h, float* S, float* z) {
  const int64_t fd = h.fd, dv = h.dv, D = taylor_dim(fd);
  float fq[1 + 64 + 64 * 64], fk[1 + 64 + 64 * 64];
  std::vector<float> bq, bk;
  float* pq = fq;
  float* pk = fk;
  if (fd > 64) {
    bq.resize(size_t(D));
    bk.resize(size_t(D));
    pq = bq.data();
    pk = bk.data();
  }
  taylor_features(h.q, fd, pq);
  taylor_features(h.k, fd, pk);
  const float g = float(h.gamma);
  // Update first: the token attends to itself (models-spec §5.1.4; single add, §4.2).
  for (int64_t f = 0; f < D; ++f) {
    float* Sr = S + f * dv;
    const float kf = pk[f];
    if (h.gamma != 1.0)
      for (int64_t e = 0; e < dv; ++e) Sr[e] = g * Sr[e] + kf * h.v[e];
    else
      for (int64_t e = 0; e < dv; ++e) Sr[e] += kf * h.v[e];
    z[f] += kf;
  }
  float den = 0;
  for (int64_t f = 0; f < D; ++f) den += pq[f] * z[f];
  float* y = h.y;
  for (int64_t e = 0; e < dv; ++e) y[e] = 0;
  for (int64_t f = 0; f < D; ++f) {
    const float* Sr = S + f * dv;
    const float qf = pq[f];
    for (int64_t e = 0; e < dv; ++e) y[e] += qf * Sr[e];
  }
  float inv = (h.dt ? h.dt[0] : 1.0f) / (den + h.eps);
  for (int64_t e = 0; e < dv; ++e) y[e] *= inv;
}

}  // namespace jrt::ops
