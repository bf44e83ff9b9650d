// tools/cmd_grad.cpp — `jrt grad`: one forward + backward of a model family's training loss on one
// batch (the layout of the fixtures' train_step.safetensors), writing the loss and the gradient of every
// parameter under its checkpoint name. JRT models use the combined NTP + MLM objective (models-spec §9).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/threads.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/gpu_model.h"
#include "tools/cli.h"
#include "tools/io_util.h"
#include "train/engine.h"

namespace jrt::cli {
namespace {

struct GradArgs {
  std::string model, input, output, objective = "auto", device = "cpu";
  int threads = 0;
  double mlm_weight = -1;
  int64_t enc_length = -1;
};

// A scalar (any shape with one element) of an integer or float tensor, as double.
double read_scalar(const SafeTensorsFile& f, const std::string& key) {
  const Tensor& t = f.get(key);
  JRT_CHECK(t.numel() == 1, "{}: tensor '{}' must hold one value, has shape {}", f.path(), key, shape_str(t.shape));
  if (t.dtype == DType::I64) return double(HostTensor::copy_of(t).ptr<int64_t>()[0]);
  if (t.dtype == DType::I32) return double(HostTensor::copy_of(t).ptr<int32_t>()[0]);
  return double(to_f32(t).ptr<float>()[0]);
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<GradArgs>();
  auto* c = app.add_subcommand("grad",
                               "One forward + backward of the training loss on a batch: writes 'loss' and "
                               "'grad.<name>' for every parameter");
  c->add_option("--model", a->model, "Model folder (config.json + model.safetensors or pytorch_model.bin)")->required();
  c->add_option("--input", a->input,
                "safetensors batch: input_ids [B, L] and labels [B, L] (int64, -100 = ignored); JRT: labels hold "
                "the MLM targets at prefix positions, optional enc_length / mlm_weight scalars")
      ->required();
  c->add_option("--output", a->output, "Output safetensors file")->required();
  c->add_option("--objective", a->objective,
                "auto (JRT models: NTP + MLM, others: mean cross-entropy), ntp (plain mean cross-entropy), jrt")
      ->check(CLI::IsMember({"auto", "ntp", "jrt"}))
      ->capture_default_str();
  c->add_option("--enc-length", a->enc_length,
                "JRT objective prefix length E (default: the input's enc_length, else the config's)");
  c->add_option("--mlm-weight", a->mlm_weight, "JRT objective MLM weight (default: the input's mlm_weight, else 0.25)");
  c->add_option("--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  c->add_option("--device", a->device,
                "cpu (fp32) or cuda (bf16 mixed precision: bf16 GEMM operands and activations, fp32 master "
                "weights, statistics and gradients)")
      ->capture_default_str();
  return [a] {
    use_gpu(a->device);  // refuse an unusable --device before reading anything
    set_num_threads(a->threads);
    namespace fs = std::filesystem;
    JRT_CHECK(fs::is_directory(a->model), "--model '{}' is not a model folder", a->model);
    ModelConfig cfg = load_config((fs::path(a->model) / "config.json").string());
    WeightStore ws = load_weights(find_weights_file(a->model));
    SafeTensorsFile in(a->input);
    auto ids = read_int_matrix(in, "input_ids");
    auto labels = read_int_matrix(in, "labels");
    JRT_CHECK(!ids.empty() && !ids[0].empty(), "{}: input_ids is empty", a->input);
    JRT_CHECK(labels.size() == ids.size() && labels[0].size() == ids[0].size(),
              "{}: labels are [{}, {}], input_ids [{}, {}]", a->input, labels.size(), labels[0].size(), ids.size(),
              ids[0].size());
    const int64_t B = int64_t(ids.size()), L = int64_t(ids[0].size()), V = cfg.padded_vocab;
    std::vector<int64_t> fid, flab;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        const int64_t id = ids[size_t(b)][size_t(t)], lab = labels[size_t(b)][size_t(t)];
        JRT_CHECK(id >= 0 && id < V, "{}: input_ids[{}, {}] = {} is outside the vocabulary [0, {})", a->input, b, t, id,
                  V);
        JRT_CHECK(lab == -100 || (lab >= 0 && lab < V), "{}: labels[{}, {}] = {} is neither -100 nor in [0, {})",
                  a->input, b, t, lab, V);
        fid.push_back(id);
        flab.push_back(lab);
      }
    Objective obj;
    const bool jrt = a->objective == "jrt" || (a->objective == "auto" && cfg.arch == Arch::JRT);
    if (jrt) {
      obj.enc_length = a->enc_length > 0      ? a->enc_length
                       : in.has("enc_length") ? int64_t(read_scalar(in, "enc_length"))
                                              : cfg.la.enc_length;
      JRT_CHECK(obj.enc_length > 0, "the JRT objective needs an enc_length > 0 (--enc-length)");
      obj.mlm_weight = a->mlm_weight >= 0 ? a->mlm_weight : in.has("mlm_weight") ? read_scalar(in, "mlm_weight") : 0.25;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto engine = make_train_engine(a->device, cfg, B, L, AdamWConfig{});
    TrainModel<float>& m = engine->host();
    m.load(ws);
    engine->push();
    engine->zero_grad();
    engine->forward(fid.data(), flab.data(), B, L, obj);
    engine->backward(1.0);
    engine->pull_grads();
    const LossParts lp = engine->take_losses().back();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    std::vector<HostTensor> keep;
    std::vector<NamedTensor> out;
    auto scalar = [&](const std::string& name, double v) {
      keep.emplace_back(DType::F32, Shape{});
      keep.back().ptr<float>()[0] = float(v);
      out.push_back({name, keep.back().view()});
    };
    scalar("loss", lp.loss);
    if (jrt) {
      scalar("loss_ntp", lp.ntp);
      scalar("loss_mlm", lp.mlm);
    }
    const std::string emb =
        cfg.arch == Arch::Mamba ? "backbone.embedding.weight" : "transformer.embeddings.word_embeddings.weight";
    for (size_t i = 0; i < m.specs().size(); ++i) {
      const ParamSpec& s = m.specs()[i];
      if (s.role == ParamRole::Buffer) continue;
      keep.emplace_back(DType::F32, s.shape);
      std::copy(m.grad(i).begin(), m.grad(i).end(), keep.back().ptr<float>());
      out.push_back({"grad." + s.name, keep.back().view()});
      // The tied head is the embedding: the checkpoint lists it under both names, and so do we.
      if (s.name == emb && ws.has("lm_head.weight")) out.push_back({"grad.lm_head.weight", keep.back().view()});
    }
    write_safetensors(a->output, out, {{"note", "jrt grad: loss and gradient of every parameter (fp32)"}});
    std::printf("loss=%.7f", lp.loss);
    if (jrt)
      std::printf(" loss_ntp=%.7f loss_mlm=%.7f (E=%lld, weight %g)", lp.ntp, lp.mlm, (long long)obj.enc_length,
                  obj.mlm_weight);
    std::printf(" tensors=%zu time_ms=%.1f\n", out.size() - (jrt ? 3 : 1), ms);
    return 0;
  };
}
JRT_REGISTER_COMMAND("grad", setup);

}  // namespace
}  // namespace jrt::cli
