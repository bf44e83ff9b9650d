// Tests of io/pytorch and io/weights: the golden pytorch_model.bin files load to exactly the tensors of
// their model.safetensors twins (names, shapes, bits); views, shared storages, scalars and protocol-4
// pickles of the crafted good_*.pt files; the models-spec §0 key cleanup; WeightStore and
// find_weights_file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "io/weights.h"

using namespace jrt;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.is_contiguous() && b.is_contiguous() &&
         (a.nbytes() == 0 || std::memcmp(a.data, b.data, a.nbytes()) == 0);
}

class GoldenModel : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenModel, PytorchAndSafetensorsHoldTheSameTensors) {
  const std::string dir = test::data_path(std::string("models/") + GetParam());
  // ordered_json keeps the manifest's key order, which is the state_dict order.
  auto manifest = nlohmann::ordered_json::parse(test::read_file(dir + "/manifest.json"));
  const auto& want = manifest["files"]["model.safetensors"]["tensors"];
  std::vector<std::string> want_order;
  for (const auto& [name, info] : want.items()) want_order.push_back(name);

  const WeightStore st = load_weights(dir + "/model.safetensors");
  const WeightStore pt = load_weights(dir + "/pytorch_model.bin");
  EXPECT_EQ(pt.source(), dir + "/pytorch_model.bin");
  EXPECT_EQ(pt.names(), want_order) << "pickle order is the state_dict order the manifest records";
  ASSERT_EQ(st.size(), want.size());
  for (const auto& [name, info] : want.items()) {
    ASSERT_TRUE(st.has(name)) << name;
    ASSERT_TRUE(pt.has(name)) << name;
    const Shape shape = info["shape"].get<Shape>();
    EXPECT_EQ(st.get(name).shape, shape) << name;
    EXPECT_EQ(pt.get(name).dtype, DType::F32) << name;
    EXPECT_TRUE(same_bits(st.get(name), pt.get(name))) << name << " differs between the two files";
  }

  // Tied weights: lm_head is the embedding, and torch stored them as one storage, read once.
  const std::string emb = pt.has("backbone.embedding.weight") ? "backbone.embedding.weight"
                                                              : "transformer.embeddings.word_embeddings.weight";
  EXPECT_TRUE(same_bits(st.get("lm_head.weight"), st.get(emb)));
  EXPECT_TRUE(same_bits(pt.get("lm_head.weight"), pt.get(emb)));
  EXPECT_EQ(pt.get("lm_head.weight").data, pt.get(emb).data) << "shared storage must be read once";

  // Raw reading gives the same keys (these fixtures need no cleanup).
  EXPECT_EQ(read_pytorch_checkpoint(dir + "/pytorch_model.bin").names(), want_order);
  EXPECT_EQ(find_weights_file(dir), dir + "/model.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenModel, ::testing::Values("attn", "based", "jrt", "mamba"));

float s0(int i) { return float(i) + 0.25f; }  // storage '0' of good_views.pt

void expect_floats(const Tensor& t, const Shape& shape, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(t.dtype, DType::F32) << what;
  ASSERT_EQ(t.shape, shape) << what;
  ASSERT_TRUE(t.is_contiguous()) << what;
  ASSERT_EQ(size_t(t.numel()), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(t.ptr<float>()[i], want[i]) << what << "[" << i << "]";
}

void check_good_views(const WeightStore& w, bool raw) {
  std::vector<float> all;
  for (int i = 0; i < 24; ++i) all.push_back(s0(i));
  const std::string full = raw ? "model.full" : "full";
  expect_floats(w.get(full), {4, 6}, all, "full");
  expect_floats(w.get("tail"), {12}, std::vector<float>(all.begin() + 12, all.end()), "tail");
  EXPECT_EQ(w.get("tail").ptr<float>(), w.get(full).ptr<float>() + 12) << "a shared storage is read once";
  // view_t(i, j) = storage[3 + i*1 + j*4]
  expect_floats(w.get("view_t"), {2, 3}, {s0(3), s0(7), s0(11), s0(4), s0(8), s0(12)}, "view_t");
  // bcast(i, j) = storage[5 + i*0 + j]
  expect_floats(w.get("bcast"), {3, 2}, {s0(5), s0(6), s0(5), s0(6), s0(5), s0(6)}, "bcast");
  expect_floats(w.get("param"), {2, 2}, {s0(20), s0(21), s0(22), s0(23)}, "param");
  const Tensor& counter = w.get("counter");
  ASSERT_EQ(counter.dtype, DType::I64);
  EXPECT_EQ(counter.shape, Shape{});
  EXPECT_EQ(counter.ptr<int64_t>()[0], -7);
  const Tensor& half = w.get("half");
  ASSERT_EQ(half.dtype, DType::F16);
  ASSERT_EQ(half.shape, Shape{4});
  const float hv[] = {1.0f, -2.0f, 0.5f, 65504.0f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f16_to_f32(half.ptr<uint16_t>()[i]), hv[i]);
  EXPECT_EQ(w.get("empty").shape, (Shape{0, 3}));
  EXPECT_FALSE(w.has("step"));  // plain numbers are skipped
  EXPECT_FALSE(w.has("lr"));
  EXPECT_FALSE(w.has("flag"));
  if (raw) {
    EXPECT_EQ(w.get("train_metrics.num-tokens.count").ptr<int64_t>()[0], 123456789012);
    expect_floats(w.get("layers.0.mixer.rotary_emb.inv_freq"), {2}, {s0(0), s0(1)}, "inv_freq");
  }
}

TEST(PyTorch, GoodViewsRawKeys) {
  const std::string path = test::data_path("bad/good_views.pt");
  const WeightStore w = read_pytorch_checkpoint(path);
  EXPECT_EQ(w.source(), path);
  EXPECT_EQ(w.names(), (std::vector<std::string>{"model.full", "tail", "view_t", "bcast", "param", "counter",
                                                 "train_metrics.num-tokens.count", "half",
                                                 "layers.0.mixer.rotary_emb.inv_freq", "empty"}));
  check_good_views(w, true);
}

TEST(PyTorch, GoodViewsCleanedByLoadWeights) {
  const WeightStore w = load_weights(test::data_path("bad/good_views.pt"));
  EXPECT_EQ(w.names(),
            (std::vector<std::string>{"full", "tail", "view_t", "bcast", "param", "counter", "half", "empty"}));
  check_good_views(w, false);
}

TEST(PyTorch, Protocol4PickleGivesTheSameTensors) {
  const WeightStore a = read_pytorch_checkpoint(test::data_path("bad/good_views.pt"));
  const WeightStore b = read_pytorch_checkpoint(test::data_path("bad/good_proto4.pt"));
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& n : a.names()) EXPECT_TRUE(same_bits(a.get(n), b.get(n))) << n;
  check_good_views(b, true);
}

TEST(PyTorch, LoadedTensorsOutliveTheirReader) {
  // The store keeps storages and mappings alive after the reader returns (moved out of a scope).
  WeightStore w;
  {
    WeightStore tmp = load_weights(test::data_path("bad/good_views.pt"));
    w = std::move(tmp);
  }
  check_good_views(w, false);
}

TEST(Weights, SafetensorsKeyCleanup) {
  HostTensor h(DType::F32, {2});
  h.ptr<float>()[0] = 1;
  h.ptr<float>()[1] = 2;
  const std::string path = test::temp_dir() + "/cleanup.safetensors";
  write_safetensors(path, {{"model.transformer.ln_f.weight", h.view()},
                           {"lm_head.weight", h.view()},
                           {"train_metrics.num-tokens.count", h.view()},
                           {"model.layers.0.mixer.rotary_emb.inv_freq", h.view()},
                           {"model.val_metrics.x", h.view()},
                           {"backbone.layers.0.mixer.conv1d.weight", h.view()}});
  const WeightStore w = load_weights(path);
  EXPECT_EQ(w.names(), (std::vector<std::string>{"transformer.ln_f.weight", "lm_head.weight",
                                                 "backbone.layers.0.mixer.conv1d.weight"}));
  EXPECT_EQ(w.get("transformer.ln_f.weight").ptr<float>()[1], 2.0f);

  // Stripping "model." must not silently merge two tensors.
  write_safetensors(path, {{"model.a", h.view()}, {"a", h.view()}});
  const std::string msg = error_of([&] { load_weights(path); });
  EXPECT_NE(msg.find("'model.a'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("already taken"), std::string::npos) << msg;
}

TEST(Weights, StoreApi) {
  HostTensor h(DType::I32, {3});
  WeightStore w;
  w.set_source("mem.bin");
  w.add_owned("a", std::move(h));
  HostTensor g(DType::F32, {1});
  w.add("b", g.view());
  EXPECT_EQ(w.size(), 2u);
  EXPECT_NE(error_of([&] { w.add("a", g.view()); }).find("mem.bin: tensor 'a' appears twice"), std::string::npos);
  w.rename("a", "c");
  EXPECT_EQ(w.names(), (std::vector<std::string>{"c", "b"}));
  EXPECT_EQ(w.get("c").shape, Shape{3});
  EXPECT_NE(error_of([&] { w.rename("c", "b"); }).find("already taken"), std::string::npos);
  EXPECT_NE(error_of([&] { w.rename("zz", "y"); }).find("'zz': not found"), std::string::npos);
  w.erase("b");
  EXPECT_FALSE(w.has("b"));
  EXPECT_EQ(w.names(), std::vector<std::string>{"c"});
  EXPECT_NE(error_of([&] { w.erase("b"); }).find("not found"), std::string::npos);
  EXPECT_EQ(error_of([&] { w.get("nope"); }), "mem.bin: tensor 'nope' not found");
}

TEST(Weights, GetNamesSourceFileAndTensor) {
  const std::string path = test::data_path("models/mamba/pytorch_model.bin");
  const WeightStore w = load_weights(path);
  EXPECT_EQ(error_of([&] { w.get("backbone.layers.99.mixer.D"); }),
            path + ": tensor 'backbone.layers.99.mixer.D' not found");
}

TEST(Weights, FindWeightsFile) {
  const std::string dir = test::temp_dir() + "/model_dir";
  fs::create_directories(dir);
  std::string msg = error_of([&] { find_weights_file(dir); });
  EXPECT_NE(msg.find(dir + ": no model.safetensors or pytorch_model.bin"), std::string::npos) << msg;
  fs::copy_file(test::data_path("bad/good_views.pt"), dir + "/pytorch_model.bin", fs::copy_options::overwrite_existing);
  EXPECT_EQ(find_weights_file(dir), dir + "/pytorch_model.bin");
  HostTensor h(DType::F32, {1});
  write_safetensors(dir + "/model.safetensors", {{"x", h.view()}});
  EXPECT_EQ(find_weights_file(dir), dir + "/model.safetensors");  // preferred
  msg = error_of([&] { find_weights_file(dir + "/nowhere"); });
  EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
}

}  // namespace
