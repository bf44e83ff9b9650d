// AdamW (torch.optim.AdamW's update, decoupled weight decay, the reference's no-decay groups), the
// warmup + cosine schedule, and global-norm clipping, against values computed here independently.
#include <gtest/gtest.h>

#include <cmath>

#include "train/optimizer.h"

using namespace jrt;

namespace {

// torch.optim.AdamW, one tensor, in double.
struct RefAdam {
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g, double lr, double wd, double b1 = 0.9,
            double b2 = 0.999, double eps = 1e-8) {
    if (m.empty()) m.assign(p.size(), 0), v.assign(p.size(), 0);
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * mh / (std::sqrt(vh) + eps);
    }
  }
};

}  // namespace

TEST(AdamW, MatchesTorchUpdateAndSkipsDecayOnNormsBiasesEmbeddings) {
  // Tensors: a matrix (decayed), a norm weight, a bias and an embedding (not decayed), a conv weight (decayed).
  std::vector<AdamW::Slot> slots = {{0, 4, ParamRole::Matrix},
                                    {4, 2, ParamRole::NormWeight},
                                    {6, 2, ParamRole::Bias},
                                    {8, 3, ParamRole::Embedding},
                                    {11, 2, ParamRole::ConvWeight}};
  AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  AdamW opt(cfg, slots);
  std::vector<float> p = {0.5f, -1.0f, 2.0f, 0.1f, 1.0f, 1.0f, 0.0f, 0.2f, 0.3f, -0.3f, 0.7f, 0.4f, -0.6f};
  std::vector<double> pd(p.begin(), p.end());
  std::vector<RefAdam> refs(slots.size());  // torch keeps moments per tensor
  for (int s = 0; s < 5; ++s) {
    std::vector<float> g(p.size());
    for (size_t i = 0; i < g.size(); ++i) g[i] = float(std::sin(double(i + 1) * (s + 1)));
    const double lr = 1e-2 * (s + 1);
    opt.step(p, g, lr);
    for (size_t k = 0; k < slots.size(); ++k) {
      const AdamW::Slot& sl = slots[k];
      std::vector<double> ps(pd.begin() + sl.offset, pd.begin() + sl.offset + sl.numel);
      std::vector<double> gs(g.begin() + sl.offset, g.begin() + sl.offset + sl.numel);
      refs[k].step(ps, gs, lr, role_decays(sl.role) ? 0.1 : 0.0);
      std::copy(ps.begin(), ps.end(), pd.begin() + sl.offset);
    }
  }
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], pd[i], 2e-6) << i;
  EXPECT_EQ(opt.t(), 5);
  EXPECT_TRUE(role_decays(ParamRole::Matrix));
  EXPECT_TRUE(role_decays(ParamRole::ConvWeight));
  for (auto r : {ParamRole::NormWeight, ParamRole::Bias, ParamRole::Embedding, ParamRole::MambaALog, ParamRole::MambaD,
                 ParamRole::MambaDtBias})
    EXPECT_FALSE(role_decays(r));
}

TEST(AdamW, DecayAllDecaysEveryTensorAsZoologyDoes) {
  std::vector<AdamW::Slot> slots = {{0, 1, ParamRole::NormWeight}};
  AdamWConfig cfg;
  cfg.weight_decay = 0.5;
  cfg.decay_all = true;
  AdamW a(cfg, slots);
  std::vector<float> p = {2.0f}, g = {0.0f};
  a.step(p, g, 0.1);  // zero gradient: only the decay moves p
  EXPECT_NEAR(p[0], 2.0 * (1 - 0.1 * 0.5), 1e-6);
  cfg.decay_all = false;
  AdamW b(cfg, slots);
  p = {2.0f};
  b.step(p, g, 0.1);
  EXPECT_EQ(p[0], 2.0f);
}

TEST(Schedule, WarmupThenCosine) {
  EXPECT_DOUBLE_EQ(cosine_lr(0, 0, 10, 1.0, 0.0), 1.0);
  EXPECT_NEAR(cosine_lr(5, 0, 10, 1.0, 0.0), 0.5, 1e-12);
  EXPECT_NEAR(cosine_lr(10, 0, 10, 1.0, 0.0), 0.0, 1e-12);
  // Zoology's CosineAnnealingLR per epoch: lr (1 + cos(pi e / E)) / 2.
  for (int e = 0; e < 8; ++e) EXPECT_NEAR(cosine_lr(e, 0, 8, 3e-3, 0), 3e-3 * (1 + std::cos(M_PI * e / 8)) / 2, 1e-15);
  EXPECT_NEAR(cosine_lr(0, 4, 20, 1.0, 0.1), 0.25, 1e-12);
  EXPECT_NEAR(cosine_lr(3, 4, 20, 1.0, 0.1), 1.0, 1e-12);
  EXPECT_NEAR(cosine_lr(4, 4, 20, 1.0, 0.1), 1.0, 1e-12);
  EXPECT_NEAR(cosine_lr(12, 4, 20, 1.0, 0.1), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(cosine_lr(20, 4, 20, 1.0, 0.1), 0.1, 1e-12);
  EXPECT_NEAR(cosine_lr(99, 4, 20, 1.0, 0.1), 0.1, 1e-12);
}

TEST(Clip, GlobalNormClipping) {
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_NEAR(global_norm(g), 5.0, 1e-12);
  EXPECT_NEAR(clip_grad_norm(g, 0.0), 5.0, 1e-12);  // off
  EXPECT_EQ(g[0], 3.0f);
  EXPECT_NEAR(clip_grad_norm(g, 10.0), 5.0, 1e-12);  // under the limit: unchanged
  EXPECT_EQ(g[1], 4.0f);
  EXPECT_NEAR(clip_grad_norm(g, 1.0), 5.0, 1e-12);
  EXPECT_NEAR(global_norm(g), 1.0, 1e-6);
  EXPECT_NEAR(g[0] / g[1], 0.75, 1e-6);
  // Many elements: the chunked sum equals the plain one.
  std::vector<float> big(100000);
  double s = 0;
  for (size_t i = 0; i < big.size(); ++i) s += double(big[i] = float(std::cos(double(i)))) * big[i];
  EXPECT_NEAR(global_norm(big), std::sqrt(s), 1e-9 * std::sqrt(s));
}
