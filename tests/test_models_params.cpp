// parameter_specs(config) lists exactly the checkpoint's tensors (names, shapes, order) for every
// fixture family, and random_weights() builds a model that loads and runs.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "common/test_util.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/params.h"
#include "models/presets.h"

using namespace jrt;

TEST(Params, SpecsMatchEveryFixtureCheckpoint) {
  for (std::string fam : {"based", "jrt", "mamba", "attn"}) {
    const std::string dir = test::data_path("models/" + fam);
    ModelConfig c = load_config(dir + "/config.json");
    SafeTensorsFile f(dir + "/model.safetensors");
    std::vector<std::string> names;
    for (const auto& n : f.names())
      if (n != "lm_head.weight") names.push_back(n);
    auto specs = parameter_specs(c);
    ASSERT_EQ(specs.size(), names.size()) << fam;
    std::set<std::string> file_names(names.begin(), names.end());
    for (const auto& s : specs) {
      ASSERT_TRUE(file_names.count(s.name)) << fam << ": " << s.name;
      EXPECT_EQ(f.get(s.name).shape, s.shape) << s.name;
    }
  }
}

TEST(Params, RandomWeightsBuildRunnableModelsForEveryPreset) {
  // Small versions of the released shapes (3 layers, 512-row vocabulary) keep the test fast; the layer pattern and every
  // tensor kind are still exercised.
  for (const auto& name : preset_names()) {
    ModelConfig c = parse_config(preset_config_json(name), name);
    c.n_layer = std::min<int64_t>(c.n_layer, 3);
    c.layers.resize(size_t(c.n_layer));
    c.vocab_size = c.padded_vocab = 512;  // a 50k-row embedding only costs time here
    auto m = Model::build(c, random_weights(c, 5));
    std::vector<int64_t> ids = {1, 2, 3, 4, 5};
    auto logits = m->forward(ids);
    ASSERT_EQ(int64_t(logits.size()), 5 * c.padded_vocab);
    for (float v : logits) ASSERT_TRUE(std::isfinite(v)) << name;
  }
}

#include "io/state_size.h"

// What `jrt inspect` reports as the CPU engine's state bytes is what the engine actually allocates.
TEST(Params, InspectStateBytesEqualTheEngineState) {
  for (std::string fam : {"based", "jrt", "mamba", "attn"}) {
    auto m = Model::load(test::data_path("models/" + fam));
    auto st = m->new_state();
    const StateBytes sb = model_state_bytes(m->config(), StatePolicy::CpuFp32);
    // Attention's KV cache grows: compare after 10 tokens.
    std::vector<int64_t> ids(10, 1);
    Segment sg{0, 10};
    SequenceState* sp = st.get();
    std::vector<float> lg(size_t(m->vocab()));
    m->run(ids, std::span<const Segment>(&sg, 1), std::span<SequenceState*>(&sp, 1), nullptr, false, lg.data());
    EXPECT_EQ(st->bytes(), sb.at(10)) << fam;
  }
}
