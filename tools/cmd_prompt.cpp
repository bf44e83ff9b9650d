// tools/cmd_prompt.cpp — `jrt prompt`: the exact prompt the evaluation harness feeds for one row
// (document cut + template, no trailing newline added), or with --ids the token ids actually fed
// (after left truncation, and JRT-RNN's left padding for a JRT model). A row the harness drops is
// reported on stderr with exit code 3. Scripts depend on this contract.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/harness.h"
#include "eval/tasks.h"
#include "io/config.h"
#include "tools/cli.h"

namespace {

struct PromptArgs {
  std::string task, row, model;
  int64_t context_length = 0;
  bool ids = false;
};

std::string read_all(const std::string& path) {
  if (path == "-") {
    std::string s;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) s.append(buf, n);
    JRT_CHECK(!std::ferror(stdin), "cannot read stdin");
    return s;
  }
  std::error_code ec;
  JRT_CHECK(std::filesystem::is_regular_file(path, ec), "row file '{}' not found", path);
  std::ifstream f(path, std::ios::binary);
  JRT_CHECK(f.good(), "cannot read row file '{}'", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_stdout(const std::string& s) {
  JRT_CHECK(std::fwrite(s.data(), 1, s.size(), stdout) == s.size() && std::fflush(stdout) == 0, "cannot write stdout");
}

jrt::cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<PromptArgs>();
  auto* c = app.add_subcommand("prompt", "Print the exact prompt the eval harness feeds for one dataset row");
  c->add_option("--task", a->task, "Task name, e.g. based_fda or based_fda_twice (jrt eval --help lists groups)")
      ->required();
  c->add_option("--row", a->row, "A JSON file holding one row in the dataset's field layout ('-' = stdin)")->required();
  auto* cl = c->add_option("--context-length", a->context_length,
                           "The reference's --context_length C: the document is cut to C - 50 tokens "
                           "(default: the task's, 1000; 2000 for based_nq_512 / based_nq_2048)");
  c->add_option("--model", a->model,
                "Model folder: its tokenizer (encoder.json + vocab.bpe if present, else GPT-2) and, with --ids, "
                "JRT-RNN's left padding when config.json is a JRT model");
  c->add_flag("--ids", a->ids, "Print the token ids fed to the model instead of the text (one line)");
  return [a, cl] {
    const auto& spec = jrt::eval::find_task(a->task);
    const int64_t C = cl->count() ? a->context_length : spec.default_context_length;
    const std::string where = a->row == "-" ? "<stdin>" : a->row;
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(read_all(a->row));
    } catch (const nlohmann::json::exception& e) {
      jrt::fail("{}: not valid JSON: {}", where, e.what());
    }
    // A --model must be a model folder (its config decides the JRT-RNN padding), even without --ids.
    int64_t enc_length = 0;
    if (!a->model.empty()) {
      auto cfg = jrt::load_config((std::filesystem::path(a->model) / "config.json").string());
      if (cfg.arch == jrt::Arch::JRT) enc_length = cfg.la.enc_length;
    }
    std::optional<jrt::Gpt2Tokenizer> own;
    const auto& tok = jrt::eval::model_tokenizer(a->model, own);
    auto p = jrt::eval::prepare_row(spec, row, C, tok, where);
    if (p.dropped) {
      std::fprintf(stderr, "jrt prompt: row dropped: %s; the harness makes no request for it and does not score it\n",
                   p.drop_reason.c_str());
      return 3;
    }
    if (!a->ids) {
      write_stdout(p.prompt);
      return 0;
    }
    auto fed = jrt::eval::feed_tokens(p.prompt, tok, enc_length);
    std::string line;
    for (size_t i = 0; i < fed.ids.size(); ++i) line += (i ? " " : "") + std::to_string(fed.ids[i]);
    write_stdout(line + "\n");
    if (fed.truncated > 0)
      std::fprintf(stderr, "jrt prompt: %lld prompt tokens, the first %lld cut (the model sees the last %lld)\n",
                   (long long)fed.prompt_tokens, (long long)fed.truncated, (long long)jrt::eval::kMaxPromptTokens);
    if (fed.padded > 0)
      std::fprintf(stderr, "jrt prompt: JRT-RNN left padding: %lld x token %d (masked) up to enc_length %lld\n",
                   (long long)fed.padded, jrt::eval::kPadToken, (long long)enc_length);
    return 0;
  };
}

JRT_REGISTER_COMMAND("prompt", setup);

}  // namespace
