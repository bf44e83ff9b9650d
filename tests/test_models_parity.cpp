// Whole-model golden parity against the reference fixtures (tests/data/models/<family>), fp32 CPU:
// parallel logits, prefill + recurrent greedy decode (ids identical, step logits), JRT's masked
// left-padded prefix, both weight files, every chunk size, state save -> restore -> continue.
//
// Tolerance: max|Δ| / max|ref| <= 1e-4 (the bar). The reference's own run-to-run and
// recurrent-vs-parallel spread is ~1e-6 (fixtures README), so 1e-4 leaves room for fp32 summation
// order only; the figures measured are printed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "common/test_util.h"
#include "io/safetensors.h"
#include "models/generate.h"
#include "models/model.h"

using namespace jrt;
using jrt::test::data_path;

namespace {

constexpr double kTol = 1e-4;

std::string fixture(const std::string& fam) { return data_path("models/" + fam); }

std::vector<std::vector<int64_t>> rows(const Tensor& t) { return test::int_rows(t); }

// Runs every row of ids as its own segment (fresh states): logits [B, L, V].
std::vector<float> forward_batch(const Model& m, const std::vector<std::vector<int64_t>>& ids,
                                 const std::vector<std::vector<int64_t>>* mask = nullptr) {
  std::vector<int64_t> flat, fm;
  std::vector<Segment> segs;
  std::vector<std::unique_ptr<SequenceState>> st;
  std::vector<SequenceState*> sp;
  for (size_t b = 0; b < ids.size(); ++b) {
    segs.push_back({int64_t(flat.size()), int64_t(ids[b].size())});
    flat.insert(flat.end(), ids[b].begin(), ids[b].end());
    if (mask) fm.insert(fm.end(), (*mask)[b].begin(), (*mask)[b].end());
    st.push_back(m.new_state());
    sp.push_back(st.back().get());
  }
  std::vector<float> logits(flat.size() * size_t(m.vocab()));
  m.run(flat, segs, sp, mask ? fm.data() : nullptr, true, logits.data());
  return logits;
}

test::Diff diff(const std::vector<float>& got, const Tensor& ref) {
  return test::compare(Tensor(const_cast<float*>(got.data()), DType::F32, {int64_t(got.size())}), ref);
}

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, ForwardLogitsBothWeightFiles) {
  const std::string fam = GetParam();
  SafeTensorsFile fwd(fixture(fam) + "/forward.safetensors");
  auto ids = rows(fwd.get("input_ids"));
  for (const char* wf : {"model.safetensors", "pytorch_model.bin"}) {
    auto m = Model::load(fixture(fam), fixture(fam) + "/" + wf);
    auto logits = forward_batch(*m, ids);
    auto d = diff(logits, fwd.get("logits"));
    std::printf("[%s %s] forward logits max|d|=%.3g max-rel=%.3g nmse=%.3g\n", fam.c_str(), wf, d.max_abs,
                d.max_rel(), d.nmse);
    EXPECT_LE(d.max_rel(), kTol) << fam << " " << wf;
  }
}

TEST_P(Parity, ChunkSizesAndQuadraticAgree) {
  const std::string fam = GetParam();
  SafeTensorsFile fwd(fixture(fam) + "/forward.safetensors");
  auto ids = rows(fwd.get("input_ids"));
  auto m = Model::load(fixture(fam));
  for (int64_t chunk : {1, 7, 64, 95, 1000}) {
    m->options().la_chunk = chunk;
    auto d = diff(forward_batch(*m, ids), fwd.get("logits"));
    EXPECT_LE(d.max_rel(), kTol) << fam << " chunk " << chunk;
  }
  m->options().la_quadratic = true;
  auto d = diff(forward_batch(*m, ids), fwd.get("logits"));
  EXPECT_LE(d.max_rel(), kTol) << fam << " quadratic";
}

TEST_P(Parity, GreedyGenerationMatchesReference) {
  const std::string fam = GetParam();
  // Based: the reference's released decode adds k.v twice (models-spec §4.2); we implement the
  // parallel form's recurrence, which the reference run with the single add reproduces.
  const std::string file = fam == "based" ? "/generate_single_add.safetensors" : "/generate.safetensors";
  SafeTensorsFile gen(fixture(fam) + file);
  SafeTensorsFile fwd(fixture(fam) + "/forward.safetensors");
  auto seqs = rows(gen.get("sequences"));
  auto gen_ids = rows(gen.get("gen_ids"));
  const int64_t N = gen.get("gen_ids").shape[1];
  const int64_t P = int64_t(seqs[0].size()) - N;
  std::vector<std::vector<int64_t>> prompts;
  for (auto& s : seqs) prompts.emplace_back(s.begin(), s.begin() + P);
  auto m = Model::load(fixture(fam));
  GenerateOptions go;
  go.max_new_tokens = N;
  go.keep_step_logits = true;
  auto r = generate(*m, prompts, {}, go);
  for (size_t b = 0; b < prompts.size(); ++b) EXPECT_EQ(r.tokens[b], gen_ids[b]) << fam << " row " << b;
  auto d = diff(r.step_logits, gen.get("step_logits"));
  std::printf("[%s] step logits max|d|=%.3g max-rel=%.3g\n", fam.c_str(), d.max_abs, d.max_rel());
  EXPECT_LE(d.max_rel(), kTol);
  // Decode equals the parallel forward of the same sequence (the reference's parallel_logits).
  auto d2 = diff(r.step_logits, gen.get("parallel_logits"));
  EXPECT_LE(d2.max_rel(), kTol) << "recurrent decode vs parallel";
}

TEST_P(Parity, StateSaveRestoreContinueIsExact) {
  const std::string fam = GetParam();
  SafeTensorsFile fwd(fixture(fam) + "/forward.safetensors");
  auto ids = rows(fwd.get("input_ids"))[0];
  auto m = Model::load(fixture(fam));
  const int64_t V = m->vocab();
  // Uninterrupted: prefill 50, then decode 10 tokens.
  auto run_steps = [&](SequenceState& st, int64_t from, int64_t to, std::vector<float>& out) {
    for (int64_t t = from; t < to; ++t) {
      Segment sg{0, 1};
      SequenceState* sp = &st;
      std::vector<float> lg(static_cast<size_t>(V));
      m->run(std::span<const int64_t>(&ids[size_t(t)], 1), std::span<const Segment>(&sg, 1),
             std::span<SequenceState*>(&sp, 1), nullptr, false, lg.data());
      out.insert(out.end(), lg.begin(), lg.end());
    }
  };
  auto prefill = [&](SequenceState& st) {
    Segment sg{0, 50};
    SequenceState* sp = &st;
    std::vector<float> lg(static_cast<size_t>(V));
    m->run(std::span<const int64_t>(ids.data(), 50), std::span<const Segment>(&sg, 1),
           std::span<SequenceState*>(&sp, 1), nullptr, false, lg.data());
  };
  auto a = m->new_state();
  prefill(*a);
  std::vector<float> ref;
  run_steps(*a, 50, 60, ref);
  // Interrupted: prefill, 4 steps, serialise, restore into a fresh state, 6 more steps.
  auto b = m->new_state();
  prefill(*b);
  std::vector<float> got;
  run_steps(*b, 50, 54, got);
  std::vector<uint8_t> bytes = b->serialize();
  auto c = m->new_state();
  c->deserialize(bytes);
  EXPECT_EQ(c->pos, 54);
  run_steps(*c, 54, 60, got);
  ASSERT_EQ(got.size(), ref.size());
  EXPECT_EQ(0, std::memcmp(got.data(), ref.data(), got.size() * sizeof(float))) << "restore-then-continue differs";
  // Truncated or foreign bytes are refused.
  bytes.resize(bytes.size() - 3);
  auto e = m->new_state();
  EXPECT_THROW(e->deserialize(bytes), Error);
}

// Chunked prefill (several calls continuing the state) equals one prefill, for the causal families.
TEST_P(Parity, ChunkedPrefillEqualsOneShot) {
  const std::string fam = GetParam();
  if (fam == "jrt") GTEST_SKIP() << "JRT's first call defines the non-causal prefix (covered below)";
  SafeTensorsFile fwd(fixture(fam) + "/forward.safetensors");
  auto ids = rows(fwd.get("input_ids"))[1];
  auto m = Model::load(fixture(fam));
  const int64_t V = m->vocab(), L = int64_t(ids.size());
  auto full = m->forward(ids);
  auto st = m->new_state();
  std::vector<float> got;
  int64_t t = 0;
  for (int64_t piece : {1, 6, 33, 1, 55}) {
    ASSERT_LE(t + piece, L);
    Segment sg{0, piece};
    SequenceState* sp = st.get();
    std::vector<float> lg(size_t(piece * V));
    m->run(std::span<const int64_t>(ids.data() + t, size_t(piece)), std::span<const Segment>(&sg, 1),
           std::span<SequenceState*>(&sp, 1), nullptr, true, lg.data());
    got.insert(got.end(), lg.begin(), lg.end());
    t += piece;
  }
  ASSERT_EQ(t, L);
  Tensor ref(full.data(), DType::F32, {L * V});
  auto d = diff(got, ref);
  EXPECT_LE(d.max_rel(), 1e-5) << fam;
}

INSTANTIATE_TEST_SUITE_P(Families, Parity, ::testing::Values("based", "jrt", "mamba", "attn"));

TEST(JrtParity, MaskedLeftPaddedPrefix) {
  SafeTensorsFile f(fixture("jrt") + "/masked.safetensors");
  auto ids = rows(f.get("input_ids"));
  auto mask = rows(f.get("attn_mask"));
  auto m = Model::load(fixture("jrt"));
  auto d = diff(forward_batch(*m, ids, &mask), f.get("logits"));
  std::printf("[jrt masked] logits max|d|=%.3g max-rel=%.3g\n", d.max_abs, d.max_rel());
  EXPECT_LE(d.max_rel(), kTol);
  // Without the mask the logits differ visibly (the fixture shows a 0.064 effect).
  auto d0 = diff(forward_batch(*m, ids), f.get("logits"));
  EXPECT_GT(d0.max_abs, 1e-3);
  GenerateOptions go;
  go.max_new_tokens = f.get("gen_ids").shape[1];
  go.keep_step_logits = true;
  auto r = generate(*m, ids, mask, go);
  auto gen_ids = rows(f.get("gen_ids"));
  for (size_t b = 0; b < ids.size(); ++b) EXPECT_EQ(r.tokens[b], gen_ids[b]);
  auto ds = diff(r.step_logits, f.get("step_logits"));
  std::printf("[jrt masked] step logits max-rel=%.3g\n", ds.max_rel());
  EXPECT_LE(ds.max_rel(), kTol);
}

TEST(BasedParity, ReleasedDoubleAddDecodeDiffersFromOurs) {
  // The released decode (generate.safetensors) is NOT the parallel form's recurrence; ours is. The
  // prefill row (t = 0) agrees; later rows differ by far more than the tolerance.
  SafeTensorsFile gen(fixture("based") + "/generate.safetensors");
  auto seqs = rows(gen.get("sequences"));
  const int64_t N = gen.get("gen_ids").shape[1], P = int64_t(seqs[0].size()) - N;
  std::vector<std::vector<int64_t>> prompts;
  for (auto& s : seqs) prompts.emplace_back(s.begin(), s.begin() + P);
  auto m = Model::load(fixture("based"));
  GenerateOptions go;
  go.max_new_tokens = 1;
  go.keep_step_logits = true;
  auto r = generate(*m, prompts, {}, go);
  HostTensor ref = HostTensor::copy_of(gen.get("step_logits"));
  const int64_t V = m->vocab();
  std::vector<float> ref0(static_cast<size_t>(V));
  std::copy(ref.ptr<float>(), ref.ptr<float>() + V, ref0.begin());
  Tensor r0(ref0.data(), DType::F32, {V});
  std::vector<float> got0(r.step_logits.begin(), r.step_logits.begin() + V);
  EXPECT_LE(diff(got0, r0).max_rel(), kTol);
}

TEST(ModelLoad, HiddenStatesMatchPerLayer) {
  for (std::string fam : {"based", "jrt", "mamba", "attn"}) {
    SafeTensorsFile fwd(fixture(fam) + "/forward.safetensors");
    SafeTensorsFile hs(fixture(fam) + "/hidden_states.safetensors");
    auto ids = rows(fwd.get("input_ids"))[0];
    auto m = Model::load(fixture(fam));
    std::vector<std::vector<float>> cap;
    m->set_hidden_capture(&cap);
    m->forward(ids);
    m->set_hidden_capture(nullptr);
    ASSERT_EQ(int64_t(cap.size()), m->config().n_layer + 2);
    EXPECT_LE(diff(cap[0], hs.get("embeddings")).max_rel(), 1e-6) << fam;
    for (int64_t i = 0; i < m->config().n_layer; ++i) {
      auto d = diff(cap[size_t(i + 1)], hs.get("layers." + std::to_string(i) + ".stream"));
      EXPECT_LE(d.max_rel(), kTol) << fam << " layer " << i;
    }
    EXPECT_LE(diff(cap.back(), hs.get("final_hidden")).max_rel(), kTol) << fam;
  }
}

}  // namespace
