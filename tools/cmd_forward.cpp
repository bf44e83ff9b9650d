// tools/cmd_forward.cpp — `jrt forward`: parallel forward of a batch of id rows -> logits [B, L, V].
#include <chrono>
#include <cstdio>

#include "core/threads.h"
#include "io/safetensors.h"
#include "models/gpu_model.h"
#include "models/model.h"
#include "tools/cli.h"
#include "tools/io_util.h"

namespace jrt::cli {

std::vector<std::vector<int64_t>> read_int_matrix(const SafeTensorsFile& f, const std::string& key) {
  JRT_CHECK(f.has(key), "{}: no tensor '{}' (choose another with the --*-key flag)", f.path(), key);
  const Tensor& t = f.get(key);
  JRT_CHECK(t.dim() == 2, "{}: tensor '{}' must be 2-D [B, L], has shape {}", f.path(), key, shape_str(t.shape));
  JRT_CHECK(t.dtype == DType::I64 || t.dtype == DType::I32 || t.dtype == DType::U8 || t.dtype == DType::Bool,
            "{}: tensor '{}' must be an integer type (int64), has {}", f.path(), key, dtype_name(t.dtype));
  HostTensor c = HostTensor::copy_of(t);
  std::vector<std::vector<int64_t>> rows(size_t(t.shape[0]), std::vector<int64_t>(size_t(t.shape[1])));
  for (int64_t b = 0; b < t.shape[0]; ++b)
    for (int64_t l = 0; l < t.shape[1]; ++l) {
      int64_t i = b * t.shape[1] + l;
      int64_t v = t.dtype == DType::I64   ? c.ptr<int64_t>()[i]
                  : t.dtype == DType::I32 ? c.ptr<int32_t>()[i]
                                          : c.ptr<uint8_t>()[i];
      rows[size_t(b)][size_t(l)] = v;
    }
  return rows;
}

namespace {

struct ForwardArgs {
  std::string model, weights, input, ids_key = "input_ids", mask_key, output;
  std::string device = "cpu";
  int threads = 0;
  int64_t chunk = 64;
};

Runner setup(CLI::App& app) {
  auto a = std::make_shared<ForwardArgs>();
  auto* c = app.add_subcommand("forward", "Parallel forward of id rows: writes logits float32 [B, L, V]");
  c->add_option("--model", a->model, "Model folder (config.json + model.safetensors or pytorch_model.bin)")->required();
  c->add_option("--weights", a->weights, "Weights file to use instead of the folder's own");
  c->add_option("--input", a->input, "safetensors file with int64 ids [B, L]")->required();
  c->add_option("--ids-key", a->ids_key, "Name of the ids tensor in --input")->capture_default_str();
  c->add_option("--mask-key", a->mask_key,
                "Name of a 1/0 mask [B, L] in --input (1 = token, 0 = left pad; only JRT's prefix linear "
                "attention reads it, as in the reference). Default: attn_mask if present, else none");
  c->add_option("--output", a->output, "Output safetensors file (gets 'logits')")->required();
  c->add_option("--device", a->device,
                "cpu or cuda (cuda: bf16 weights and activations, fp32 accumulation and state)")
      ->capture_default_str();
  c->add_option("--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  c->add_option("--chunk", a->chunk, "Linear-attention chunk size")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  return [a] {
    const bool gpu = use_gpu(a->device);
    set_num_threads(a->threads);
    auto model = Model::load(a->model, a->weights);
    model->options().la_chunk = a->chunk;
    SafeTensorsFile in(a->input);
    auto ids = read_int_matrix(in, a->ids_key);
    std::string mk = a->mask_key.empty() && in.has("attn_mask") ? "attn_mask" : a->mask_key;
    std::vector<std::vector<int64_t>> mask;
    if (!mk.empty()) {
      mask = read_int_matrix(in, mk);
      JRT_CHECK(mask.size() == ids.size() && mask[0].size() == ids[0].size(),
                "{}: mask '{}' is [{}, {}], ids are [{}, {}]", a->input, mk, mask.size(), mask[0].size(), ids.size(),
                ids[0].size());
    }
    const int64_t B = int64_t(ids.size()), L = int64_t(ids[0].size()), V = model->vocab();
    JRT_CHECK(L >= 1, "{}: ids have no columns", a->input);
    std::vector<int64_t> flat, fmask;
    std::vector<Segment> segs;
    std::vector<std::unique_ptr<SequenceState>> st;
    std::vector<SequenceState*> sp;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t l = 0; l < L; ++l) {
        int64_t id = ids[size_t(b)][size_t(l)];
        JRT_CHECK(id >= 0 && id < V, "{}: token id {} at [{}, {}] is outside the model's vocabulary [0, {})",
                  a->input, id, b, l, V);
      }
      segs.push_back({b * L, L});
      flat.insert(flat.end(), ids[size_t(b)].begin(), ids[size_t(b)].end());
      if (!mask.empty()) fmask.insert(fmask.end(), mask[size_t(b)].begin(), mask[size_t(b)].end());
      st.push_back(model->new_state());
      sp.push_back(st.back().get());
    }
    HostTensor logits(DType::F32, {B, L, V});
    auto t0 = std::chrono::steady_clock::now();
    if (gpu) {
      auto g = GpuModel::create(*model, GpuModelOptions{.slots = B, .max_seq = L, .use_graph = false});
      t0 = std::chrono::steady_clock::now();
      std::vector<int64_t> lengths(size_t(B), L);
      g->prefill(flat, lengths, fmask, true, logits.ptr<float>());
    } else {
      model->run(flat, segs, sp, mask.empty() ? nullptr : fmask.data(), true, logits.ptr<float>());
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_safetensors(a->output, {{"logits", logits.view()}});
    std::fprintf(stderr, "forward: %lld x %lld tokens in %.3f s (%.0f tokens/s) -> %s\n", (long long)B, (long long)L,
                 s, double(B * L) / s, a->output.c_str());
    return 0;
  };
}

JRT_REGISTER_COMMAND("forward", setup);

}  // namespace
}  // namespace jrt::cli
