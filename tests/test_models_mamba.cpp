// End-to-end parity of the Mamba model with the reference fixture (tests/data/models/mamba): the
// parallel forward of a packed batch, per-layer residual streams, greedy decode (prefill + one-token
// steps) and chunked prefill / state save-restore against the uninterrupted run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "common/test_util.h"
#include "io/safetensors.h"
#include "models/model.h"

using namespace jrt;

namespace {

const std::string kDir = "models/mamba";

std::vector<int64_t> ids_of(const Tensor& t) {
  auto s = t.span<int64_t>();
  return {s.begin(), s.end()};
}

std::vector<float> floats_of(const Tensor& t) {
  HostTensor h = to_f32(t);
  auto s = h.span<float>();
  return {s.begin(), s.end()};
}

// max |a - b| / max |b|.
double max_rel(const float* a, const float* b, size_t n) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) {
    ma = std::max(ma, std::fabs(double(a[i]) - double(b[i])));
    mb = std::max(mb, std::fabs(double(b[i])));
  }
  return mb > 0 ? ma / mb : ma;
}

int64_t argmax(const float* v, int64_t n) { return int64_t(std::max_element(v, v + n) - v); }

// Runs `ids` of one sequence through the model in pieces of the given lengths, all logits.
std::vector<float> run_chunks(const Model& m, const std::vector<int64_t>& ids, const std::vector<int64_t>& pieces,
                              SequenceState* st) {
  const int64_t V = m.vocab();
  std::vector<float> out(ids.size() * size_t(V));
  int64_t t = 0;
  for (size_t i = 0; t < int64_t(ids.size()); ++i) {
    int64_t len = std::min<int64_t>(pieces[i % pieces.size()], int64_t(ids.size()) - t);
    Segment seg{0, len};
    SequenceState* sp = st;
    m.run(std::span<const int64_t>(ids.data() + t, size_t(len)), std::span<const Segment>(&seg, 1),
          std::span<SequenceState*>(&sp, 1), nullptr, true, out.data() + t * V);
    t += len;
  }
  return out;
}

class MambaModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = Model::load(test::data_path(kDir)).release(); }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static Model* model_;
};
Model* MambaModel::model_ = nullptr;

}  // namespace

TEST_F(MambaModel, ConfigAndState) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.arch, Arch::Mamba);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(model_->vocab(), 1008);
  EXPECT_EQ(c.mamba.d_inner, 128);
  EXPECT_EQ(c.mamba.dt_rank, 4);
  // Per layer: conv tail [3, di] + h [di, 16], fp32.
  auto st = model_->new_state();
  EXPECT_EQ(st->bytes(), 5 * (3 * 128 + 128 * 16) * 4);
}

TEST_F(MambaModel, ForwardMatchesReference) {
  SafeTensorsFile f(test::data_path(kDir + "/forward.safetensors"));
  const auto ids = ids_of(f.get("input_ids"));
  const auto ref = floats_of(f.get("logits"));
  const int64_t B = f.get("input_ids").size(0), L = f.get("input_ids").size(1), V = model_->vocab();
  ASSERT_EQ(int64_t(ref.size()), B * L * V);

  // Both rows packed into one batch, each its own sequence from a fresh state.
  std::vector<Segment> segs;
  std::vector<std::unique_ptr<SequenceState>> owned;
  std::vector<SequenceState*> states;
  for (int64_t b = 0; b < B; ++b) {
    segs.push_back({b * L, L});
    owned.push_back(model_->new_state());
    states.push_back(owned.back().get());
  }
  std::vector<std::vector<float>> hidden;
  model_->set_hidden_capture(&hidden);
  std::vector<float> logits(size_t(B * L * V));
  model_->run(ids, segs, states, nullptr, true, logits.data());
  model_->set_hidden_capture(nullptr);

  double rel = max_rel(logits.data(), ref.data(), ref.size());
  std::printf("mamba forward logits max|d|/max|ref| = %.3g\n", rel);
  EXPECT_LE(rel, 1e-4);
  for (auto* s : states) EXPECT_EQ(s->pos, L);

  // Residual stream after every layer, batch element 0 (diagnoses which layer drifts).
  SafeTensorsFile hs(test::data_path(kDir + "/hidden_states.safetensors"));
  const int64_t d = model_->d_model();
  ASSERT_EQ(hidden.size(), size_t(model_->config().n_layer + 2));
  auto check = [&](const std::vector<float>& got, const std::string& name) {
    auto want = floats_of(hs.get(name));
    ASSERT_EQ(int64_t(want.size()), L * d) << name;
    double r = max_rel(got.data(), want.data(), want.size());
    EXPECT_LE(r, 1e-4) << name;
  };
  check(hidden[0], "embeddings");
  for (int64_t i = 0; i < model_->config().n_layer; ++i)
    check(hidden[size_t(i + 1)], "layers." + std::to_string(i) + ".stream");
  check(hidden.back(), "final_hidden");

  // Sanity of the comparison: a shifted input gives logits far from the reference.
  std::vector<int64_t> wrong(ids);
  std::rotate(wrong.begin(), wrong.begin() + 1, wrong.begin() + L);
  auto bad = model_->forward(std::span<const int64_t>(wrong.data(), size_t(L)));
  EXPECT_GT(max_rel(bad.data(), ref.data(), size_t(L * V)), 1e-2);
}

TEST_F(MambaModel, GreedyDecodeMatchesReference) {
  SafeTensorsFile f(test::data_path(kDir + "/generate.safetensors"));
  const auto prompt = ids_of(f.get("prompt_ids"));
  const auto gen = ids_of(f.get("gen_ids"));
  const auto step_ref = floats_of(f.get("step_logits"));
  const int64_t B = f.get("prompt_ids").size(0), P = f.get("prompt_ids").size(1);
  const int64_t T = f.get("gen_ids").size(1), V = model_->vocab();
  ASSERT_EQ(int64_t(step_ref.size()), B * T * V);

  std::vector<std::unique_ptr<SequenceState>> owned;
  std::vector<SequenceState*> states;
  std::vector<Segment> segs;
  for (int64_t b = 0; b < B; ++b) {
    owned.push_back(model_->new_state());
    states.push_back(owned.back().get());
    segs.push_back({b * P, P});
  }
  // Prefill: last-row logits of every sequence -> step 0.
  std::vector<float> logits(size_t(B * V));
  std::vector<float> steps(size_t(B * T * V));
  model_->run(prompt, segs, states, nullptr, false, logits.data());
  std::vector<int64_t> got(size_t(B * T));
  for (int64_t t = 0; t < T; ++t) {
    if (t > 0) {
      // One token per sequence: B segments of length 1.
      std::vector<int64_t> ids(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) {
        ids[size_t(b)] = got[size_t(b * T + t - 1)];
        segs[size_t(b)] = {b, 1};
      }
      model_->run(ids, std::span<const Segment>(segs.data(), size_t(B)), states, nullptr, false, logits.data());
    }
    for (int64_t b = 0; b < B; ++b) {
      const float* row = logits.data() + b * V;
      std::copy(row, row + V, steps.data() + (b * T + t) * V);
      got[size_t(b * T + t)] = argmax(row, V);
    }
  }
  EXPECT_EQ(got, gen);
  double rel = max_rel(steps.data(), step_ref.data(), step_ref.size());
  std::printf("mamba decode step_logits max|d|/max|ref| = %.3g\n", rel);
  EXPECT_LE(rel, 1e-4);
  for (auto* s : states) EXPECT_EQ(s->pos, P + T - 1);
}

TEST_F(MambaModel, ChunkedPrefillAndRestoreMatchOneShot) {
  SafeTensorsFile f(test::data_path(kDir + "/forward.safetensors"));
  const auto all = ids_of(f.get("input_ids"));
  const int64_t L = f.get("input_ids").size(1), V = model_->vocab();
  const std::vector<int64_t> ids(all.begin(), all.begin() + L);
  const auto ref = floats_of(f.get("logits"));  // row 0 first

  auto one = model_->forward(ids);
  // Pieces shorter than the conv tail, around the short-segment threshold, and long.
  for (const std::vector<int64_t>& pieces :
       std::vector<std::vector<int64_t>>{{1}, {2, 1, 5}, {15, 16, 17}, {3, 40}, {L}}) {
    auto st = model_->new_state();
    auto got = run_chunks(*model_, ids, pieces, st.get());
    EXPECT_LE(max_rel(got.data(), one.data(), one.size()), 1e-5) << "pieces[0] " << pieces[0];
    EXPECT_LE(max_rel(got.data(), ref.data(), one.size()), 1e-4) << "pieces[0] " << pieces[0];
  }

  // Save after 37 tokens, restore into a fresh state, continue: same logits as without the break.
  const int64_t cut = 37;
  auto st = model_->new_state();
  std::vector<int64_t> head(ids.begin(), ids.begin() + cut), tail(ids.begin() + cut, ids.end());
  run_chunks(*model_, head, {cut}, st.get());
  auto bytes = st->serialize();
  auto restored = model_->new_state();
  restored->deserialize(bytes);
  auto cont = run_chunks(*model_, tail, {7}, restored.get());
  auto direct = run_chunks(*model_, tail, {7}, st.get());
  EXPECT_EQ(cont, direct);
  EXPECT_LE(max_rel(cont.data(), one.data() + cut * V, cont.size()), 1e-5);
}

TEST_F(MambaModel, MixedBatchPrefillAndDecode) {
  // One sequence decodes a token while another prefills a long chunk in the same packed call: each
  // must get what it gets alone.
  SafeTensorsFile f(test::data_path(kDir + "/forward.safetensors"));
  const auto all = ids_of(f.get("input_ids"));
  const int64_t L = f.get("input_ids").size(1), V = model_->vocab();
  const std::vector<int64_t> a(all.begin(), all.begin() + L), b(all.begin() + L, all.end());
  auto la = model_->forward(a), lb = model_->forward(b);

  auto sa = model_->new_state(), sb = model_->new_state();
  run_chunks(*model_, std::vector<int64_t>(a.begin(), a.begin() + 50), {50}, sa.get());  // a: 50 tokens in
  // Packed: a's token 50 (length 1), then b's first 60 tokens.
  std::vector<int64_t> ids{a[50]};
  ids.insert(ids.end(), b.begin(), b.begin() + 60);
  std::vector<Segment> segs{{0, 1}, {1, 60}};
  std::vector<SequenceState*> states{sa.get(), sb.get()};
  std::vector<float> logits(size_t(61 * V));
  model_->run(ids, segs, states, nullptr, true, logits.data());
  EXPECT_LE(max_rel(logits.data(), la.data() + 50 * V, size_t(V)), 1e-5);
  EXPECT_LE(max_rel(logits.data() + V, lb.data(), size_t(60 * V)), 1e-5);
}
