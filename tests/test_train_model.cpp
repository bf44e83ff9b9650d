// The training model's backward against float64 central differences for every mixer the synthetic
// models use (LayerNorm with bias, no-MLP and MLP blocks, attention biases, the JRT objective), and its
// forward against the inference engine on the same weights (so trained checkpoints run in `jrt forward`).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "models/model.h"
#include "synth/model.h"
#include "train/engine.h"
#include "train/rng.h"
#include "train/train_model.h"

using namespace jrt;

namespace {

synth::ModelOptions tiny(const std::string& mixer) {
  synth::ModelOptions o;
  o.mixer = mixer;
  o.d_model = 8;
  o.n_layers = 2;
  o.vocab_size = 13;
  o.feature_dim = 4;
  o.la_heads = 2;
  o.attn_heads = 2;
  o.window = 2;
  o.enc_length = 3;
  o.max_len = 7;
  o.d_state = 4;
  return o;
}

struct Batch {
  std::vector<int64_t> ids, labels;
};

Batch random_batch(int64_t B, int64_t L, int64_t V, uint64_t seed) {
  Rng r(seed);
  Batch b;
  for (int64_t i = 0; i < B * L; ++i) {
    b.ids.push_back(r.uniform_int(0, V));
    b.labels.push_back(r.uniform() < 0.3 ? -100 : r.uniform_int(0, V));
  }
  return b;
}

// Checks a few entries of every tensor's gradient against (f(p+h) - f(p-h)) / 2h in float64.
void check_fd(const ModelConfig& c, const Objective& obj, const std::string& what) {
  const int64_t B = 2, L = 7;
  TrainModel<double> m(c, B, L);
  // Larger-than-init weights so that every path (and every nonlinearity) matters.
  WeightStore ws = random_weights(c, 7, 0.3f);
  m.load(ws);
  Batch b = random_batch(B, L, c.padded_vocab, 11);
  if (obj.enc_length > 0)  // MLM rows take their label from the prefix; keep some > 0
    for (int64_t i = 0; i < B * L; ++i)
      if (i % L < obj.enc_length && b.labels[size_t(i)] == -100) b.labels[size_t(i)] = 1 + i % 5;
  m.zero_grad();
  m.forward(b.ids.data(), b.labels.data(), B, L, obj);
  m.backward();
  std::vector<double> g(m.grads().begin(), m.grads().end());
  Rng pick(3);
  int checked = 0;
  for (size_t t = 0; t < m.specs().size(); ++t) {
    const ParamSpec& s = m.specs()[t];
    if (s.role == ParamRole::Buffer) continue;
    auto p = m.param(t);
    for (int k = 0; k < 3; ++k) {
      const size_t i = size_t(pick.uniform_int(0, int64_t(p.size())));
      const double h = 1e-5, keep = p[i];
      p[i] = keep + h;
      const double fp = m.forward(b.ids.data(), b.labels.data(), B, L, obj).loss;
      p[i] = keep - h;
      const double fm = m.forward(b.ids.data(), b.labels.data(), B, L, obj).loss;
      p[i] = keep;
      const double fd = (fp - fm) / (2 * h), an = g[size_t(m.offset(t)) + i];
      EXPECT_NEAR(an, fd, 1e-6 + 1e-5 * std::fabs(fd)) << what << ": " << s.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10) << what;
}

}  // namespace

TEST(TrainModel, BackwardMatchesFiniteDifferencesForEveryMixer) {
  for (const auto& mixer : synth::mixer_names()) {
    synth::ModelOptions o = tiny(mixer);
    check_fd(synth::model_config(o), Objective{}, mixer);
  }
}

TEST(TrainModel, BackwardMatchesFiniteDifferencesWithMlpRmsNormAndJrtObjective) {
  synth::ModelOptions o = tiny("jrt");
  o.mlp_hidden = 6;
  o.layer_norm = false;
  Objective obj;
  obj.enc_length = 3;
  obj.mlm_weight = 0.25;
  check_fd(synth::model_config(o), obj, "jrt+mlp+rms");
  o = tiny("sliding");
  o.mlp_hidden = 5;
  check_fd(synth::model_config(o), Objective{}, "sliding+mlp");
}

TEST(TrainModel, ForwardEqualsTheInferenceEngineOnTheSameWeights) {
  for (const auto& mixer : synth::mixer_names()) {
    synth::ModelOptions o = tiny(mixer);
    o.d_model = 16;
    o.n_layers = 3;
    ModelConfig c = synth::model_config(o);
    const int64_t B = 2, L = 7, V = c.padded_vocab;
    TrainModel<float> m(c, B, L);
    m.load(synth::init_weights(c, 5));
    Batch b = random_batch(B, L, V, 9);
    m.forward(b.ids.data(), b.labels.data(), B, L, Objective{});
    auto inf = Model::build(c, m.weights());
    for (int64_t s = 0; s < B; ++s) {
      std::vector<int64_t> ids(b.ids.begin() + s * L, b.ids.begin() + (s + 1) * L);
      auto ref = inf->forward(ids);
      double md = 0;
      for (int64_t i = 0; i < L * V; ++i)
        md = std::max(md, double(std::fabs(ref[size_t(i)] - m.logits()[s * L * V + i])));
      EXPECT_LT(md, 2e-5) << mixer << " sequence " << s;
    }
  }
}

TEST(TrainModel, ParameterAndGradientArenasFollowParameterSpecs) {
  ModelConfig c = synth::model_config(tiny("based"));
  TrainModel<float> m(c, 1, 4);
  auto specs = parameter_specs(c);
  ASSERT_EQ(m.specs().size(), specs.size());
  int64_t prev_end = 0, n = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(m.specs()[i].name, specs[i].name);
    EXPECT_GE(m.offset(i), prev_end);  // in order, non-overlapping
    prev_end = m.offset(i) + shape_numel(specs[i].shape);
    n += shape_numel(specs[i].shape);
  }
  EXPECT_LE(prev_end, int64_t(m.params().size()));
  EXPECT_EQ(m.num_parameters(), n);
  EXPECT_EQ(m.num_parameters(), param_count(c));
}

TEST(TrainModel, BadBatchShapesAreErrors) {
  ModelConfig c = synth::model_config(tiny("based"));
  TrainModel<float> m(c, 2, 4);
  std::vector<int64_t> ids(12, 1), labels(12, 1);
  EXPECT_THROW(m.forward(ids.data(), labels.data(), 3, 4, Objective{}), Error);
  EXPECT_THROW(m.forward(ids.data(), labels.data(), 1, 5, Objective{}), Error);
  std::vector<int64_t> bad(8, 99);
  EXPECT_THROW(m.forward(bad.data(), labels.data(), 2, 4, Objective{}), Error);
  EXPECT_THROW(m.backward(), Error);  // no successful forward
}

// The trainer pipelines optimizer steps one deep (step s + 1 enqueued before step s is taken). On the engine
// API that is take_step(): each step's losses and gradient norm come out in order, equal to what taking every
// step at once reports, and misuse (nothing to take, too many untaken steps) is an error.
TEST(TrainEngine, TakeStepReportsStepsInOrderWhenPipelined) {
  const ModelConfig c = synth::model_config(tiny("based"));
  const WeightStore w = synth::init_weights(c, 3);
  const int64_t B = 2, L = 6;
  std::vector<Batch> batches;
  for (uint64_t s = 0; s < 6; ++s) batches.push_back(random_batch(B, L, c.vocab_size, 40 + s));
  auto run_step = [&](TrainEngine& e, int s) {  // two micro-batches per step
    e.zero_grad();
    for (int j = 0; j < 2; ++j) {
      const Batch& b = batches[size_t(2 * s + j)];
      e.forward(b.ids.data(), b.labels.data(), B, L, Objective{});
      e.backward(0.5);
    }
    e.step(1e-2, 1.0);
  };
  auto direct = make_train_engine("cpu", c, B, L, AdamWConfig{});
  auto piped = make_train_engine("cpu", c, B, L, AdamWConfig{});
  for (auto* e : {direct.get(), piped.get()}) e->host().load(w);
  std::vector<StepResult> want, got;
  for (int s = 0; s < 3; ++s) {
    run_step(*direct, s);
    want.push_back(direct->take_step());
    run_step(*piped, s);
    if (s > 0) got.push_back(piped->take_step());
  }
  got.push_back(piped->take_step());
  ASSERT_EQ(got.size(), want.size());
  for (size_t s = 0; s < want.size(); ++s) {
    ASSERT_EQ(got[s].losses.size(), 2u) << "step " << s;
    for (size_t j = 0; j < 2; ++j) EXPECT_EQ(got[s].losses[j].loss, want[s].losses[j].loss) << "step " << s;
    EXPECT_EQ(got[s].grad_norm, want[s].grad_norm) << "step " << s;
  }
  EXPECT_THROW(piped->take_step(), Error);  // nothing untaken

  // take_losses() returns the losses of untaken steps too, in order, and counts those steps as taken.
  auto e = make_train_engine("cpu", c, B, L, AdamWConfig{});
  e->host().load(w);
  for (int s = 0; s < 2; ++s) run_step(*e, s);
  const std::vector<LossParts> all = e->take_losses();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].loss, want[0].losses[0].loss);
  EXPECT_EQ(all[3].loss, want[1].losses[1].loss);
  EXPECT_THROW(e->take_step(), Error);
  for (int s = 0; s < 4; ++s) run_step(*e, s % 3);
  EXPECT_THROW(run_step(*e, 0), Error);  // a fifth untaken step
}
