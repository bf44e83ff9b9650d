// tools/cmd_generate.cpp — `jrt generate`: prefill + recurrent decode, streamed text, optional
// safetensors output (gen_ids [B, N], step_logits [B, N, V]).
#include <cstdio>
#include <memory>

#include "core/threads.h"
#include "io/safetensors.h"
#include "models/generate.h"
#include "tokenizer/gpt2.h"
#include "tools/cli.h"
#include "tools/io_util.h"

namespace jrt::cli {
namespace {

struct GenArgs {
  std::string model, weights, prompt, input, ids_key = "prompt_ids", mask_key, output, stop;
  int64_t max_new = 32, top_k = 0;
  bool greedy = false, no_left_pad = false, quiet = false;
  float temperature = 1.0f, top_p = 1.0f;
  uint64_t seed = 0;
  std::string device = "cpu";
  int threads = 0;
};

// Text of ids, with ids outside the tokenizer's vocabulary (padded rows) shown as <|id|>.
std::string render(const Gpt2Tokenizer& tok, std::span<const int64_t> ids) {
  std::string s;
  for (int64_t id : ids) {
    if (id >= 0 && id < tok.vocab_size()) {
      int32_t i = int32_t(id);
      s += tok.decode(std::span<const int32_t>(&i, 1));
    } else {
      s += "<|" + std::to_string(id) + "|>";
    }
  }
  return s;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  auto* c = app.add_subcommand("generate", "Generate text: parallel prefill, then recurrent one-token decode");
  c->add_option("--model", a->model, "Model folder (config.json + model.safetensors or pytorch_model.bin)")->required();
  c->add_option("--weights", a->weights, "Weights file to use instead of the folder's own");
  auto* p = c->add_option("--prompt", a->prompt, "Prompt text (GPT-2 tokenizer)");
  auto* in = c->add_option("--input", a->input, "safetensors file with int64 prompt ids [B, L] (a batch)");
  p->excludes(in);
  c->add_option("--ids-key", a->ids_key, "Name of the ids tensor in --input")->capture_default_str();
  c->add_option("--mask-key", a->mask_key,
                "Name of a 1/0 mask [B, L] in --input (left padding). Default: attn_mask if present");
  c->add_option("--max-new-tokens", a->max_new, "Tokens to generate per sequence")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  auto* g = c->add_flag("--greedy", a->greedy, "Greedy decoding (argmax over the padded vocabulary; the default)");
  auto* t = c->add_option("--temperature", a->temperature, "Sampling temperature (> 0)")->check(CLI::PositiveNumber);
  auto* k = c->add_option("--top-k", a->top_k, "Sample among the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber);
  auto* pp = c->add_option("--top-p", a->top_p, "Nucleus sampling mass in (0, 1]")->check(CLI::Range(0.0, 1.0));
  c->add_option("--seed", a->seed, "Random seed for sampling")->capture_default_str();
  g->excludes(t)->excludes(k)->excludes(pp);
  c->add_option("--stop", a->stop, "Stop a sequence once its generated text contains this string");
  c->add_option("--output", a->output, "Write gen_ids int64 [B, N] and step_logits float32 [B, N, V] here");
  c->add_flag("--no-left-pad", a->no_left_pad,
              "JRT-RNN with --prompt: do not left-pad a prompt shorter than enc_length with token 220 "
              "(the reference harness's default_left_pad mode pads it)");
  c->add_flag("--quiet", a->quiet, "Do not print the generated text");
  c->add_option("--device", a->device,
                "cpu or cuda (cuda: bf16 weights and activations, fp32 accumulation and state; the decode step "
                "is one CUDA graph)")
      ->capture_default_str();
  c->add_option("--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  return [a, t, k, pp] {
    const bool gpu = use_gpu(a->device);
    JRT_CHECK(!a->prompt.empty() || !a->input.empty(), "give --prompt TEXT or --input FILE");
    set_num_threads(a->threads);
    auto model = Model::load(a->model, a->weights);
    const ModelConfig& cfg = model->config();
    const Gpt2Tokenizer& tok = Gpt2Tokenizer::builtin();
    std::vector<std::vector<int64_t>> prompts, masks;
    if (!a->input.empty()) {
      SafeTensorsFile f(a->input);
      prompts = read_int_matrix(f, a->ids_key);
      std::string mk = a->mask_key.empty() && f.has("attn_mask") ? "attn_mask" : a->mask_key;
      if (!mk.empty()) masks = read_int_matrix(f, mk);
    } else {
      std::vector<int32_t> ids = tok.encode(a->prompt);
      JRT_CHECK(!ids.empty(), "the prompt is empty");
      std::vector<int64_t> row(ids.begin(), ids.end());
      if (cfg.arch == Arch::JRT && !a->no_left_pad && int64_t(row.size()) < cfg.la.enc_length) {
        // default_left_pad (jrt-prompt-eval-spec §6.4): pad with " " (220) to enc_length, masked.
        const size_t pad = size_t(cfg.la.enc_length) - row.size();
        std::vector<int64_t> mask(pad, 0);
        mask.insert(mask.end(), row.size(), 1);
        row.insert(row.begin(), pad, 220);
        masks.push_back(mask);
      }
      prompts.push_back(row);
    }
    for (size_t b = 0; b < prompts.size(); ++b)
      for (size_t i = 0; i < prompts[b].size(); ++i)
        JRT_CHECK(prompts[b][i] >= 0 && prompts[b][i] < model->vocab(),
                  "token id {} (prompt {}, position {}) is outside the model's vocabulary [0, {})", prompts[b][i], b,
                  i, model->vocab());
    if (cfg.arch == Arch::Based && cfg.la.use_decay_proj && cfg.la.l_max > 0)
      for (size_t b = 0; b < prompts.size(); ++b)
        JRT_CHECK(int64_t(prompts[b].size()) <= cfg.la.l_max,
                  "prompt {} has {} tokens; this Based model's decay mask covers l_max = {} positions "
                  "(alt_mixer.l_max in {})",
                  b, prompts[b].size(), cfg.la.l_max, cfg.source);

    GenerateOptions go;
    go.max_new_tokens = a->max_new;
    go.keep_step_logits = !a->output.empty();
    const bool sampling = t->count() || k->count() || pp->count();
    go.sampling.greedy = !sampling;
    go.sampling.temperature = a->temperature;
    go.sampling.top_k = a->top_k;
    go.sampling.top_p = a->top_p;
    go.sampling.seed = a->seed;
    const bool stream = prompts.size() == 1 && !a->quiet;
    std::vector<std::string> texts(prompts.size());
    go.on_token = [&](int64_t b, int64_t id) {
      std::string piece = render(tok, std::span<const int64_t>(&id, 1));
      std::string& txt = texts[size_t(b)];
      size_t before = txt.size();
      txt += piece;
      bool stop = false;
      if (!a->stop.empty()) {
        // The stop string may straddle tokens: search the tail that could contain it.
        size_t from = before >= a->stop.size() ? before - a->stop.size() + 1 : 0;
        size_t at = txt.find(a->stop, from);
        if (at != std::string::npos) {
          txt.resize(at);
          stop = true;
        }
      }
      if (stream && txt.size() > before) {
        std::fwrite(txt.data() + before, 1, txt.size() - before, stdout);
        std::fflush(stdout);
      }
      return stop;
    };
    GenerateResult r;
    if (gpu) {
      int64_t longest = 0;
      for (auto& p : prompts) longest = std::max<int64_t>(longest, int64_t(p.size()));
      auto g = GpuModel::create(*model, GpuModelOptions{.slots = int64_t(prompts.size()),
                                                        .max_seq = longest + a->max_new, .use_graph = true});
      GpuDecoder dec(*g);
      r = generate(dec, prompts, masks, go);
    } else {
      r = generate(*model, prompts, masks, go);
    }
    if (!a->quiet) {
      if (stream)
        std::printf("\n");
      else
        for (auto& s : texts) std::printf("%s\n", s.c_str());
    }
    std::fprintf(stderr, "generate: prefill %lld tokens %.3f s (%.0f tok/s), decode %lld tokens %.3f s (%.1f tok/s)\n",
                 (long long)r.prefill_tokens, r.prefill_seconds, double(r.prefill_tokens) / r.prefill_seconds,
                 (long long)r.decode_tokens, r.decode_seconds,
                 r.decode_seconds > 0 ? double(r.decode_tokens) / r.decode_seconds : 0.0);
    if (!a->output.empty()) {
      const int64_t B = int64_t(prompts.size()), N = a->max_new, V = model->vocab();
      HostTensor ids(DType::I64, {B, N});
      // Rows that stopped early are padded with -1 (their step_logits rows stay zero).
      for (int64_t b = 0; b < B; ++b)
        for (int64_t n = 0; n < N; ++n)
          ids.ptr<int64_t>()[b * N + n] = n < int64_t(r.tokens[size_t(b)].size()) ? r.tokens[size_t(b)][size_t(n)] : -1;
      Tensor sl(r.step_logits.data(), DType::F32, {B, N, V});
      write_safetensors(a->output, {{"gen_ids", ids.view()}, {"step_logits", sl}});
    }
    return 0;
  };
}

JRT_REGISTER_COMMAND("generate", setup);

}  // namespace
}  // namespace jrt::cli
