// tools/cmd_tokenize.cpp — `jrt tokenize` (UTF-8 text on stdin -> GPT-2 ids on one line) and
// `jrt detokenize` (whitespace-separated ids on stdin -> the raw text, nothing appended).
#include <charconv>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "core/error.h"
#include "tokenizer/gpt2.h"
#include "tools/cli.h"

namespace {

std::string read_stdin() {
  std::string s;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) s.append(buf, n);
  JRT_CHECK(!std::ferror(stdin), "cannot read stdin");
  return s;
}

void write_stdout(const std::string& s) {
  JRT_CHECK(std::fwrite(s.data(), 1, s.size(), stdout) == s.size() && std::fflush(stdout) == 0, "cannot write stdout");
}

struct Options {
  std::string vocab;
  bool split_special = false;
};

// The embedded vocabulary unless --vocab names a folder.
const jrt::Gpt2Tokenizer& tokenizer(const Options& o, std::optional<jrt::Gpt2Tokenizer>& own) {
  if (o.vocab.empty()) return jrt::Gpt2Tokenizer::builtin();
  own.emplace(jrt::Gpt2Tokenizer::from_dir(o.vocab));
  return *own;
}

jrt::cli::Runner setup_tokenize(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* sub = app.add_subcommand("tokenize", "Read UTF-8 text from stdin, print its GPT-2 token ids on one line");
  sub->add_flag("--split-special", opt->split_special,
                "Encode the text <|endoftext|> as ordinary text instead of the special token 50256");
  sub->add_option("--vocab", opt->vocab, "Folder with encoder.json and vocab.bpe (default: the embedded GPT-2 vocab)");
  return [opt] {
    std::optional<jrt::Gpt2Tokenizer> own;
    const auto& tok = tokenizer(*opt, own);
    std::string text = read_stdin();
    std::vector<int32_t> ids = tok.encode(text, opt->split_special);
    std::string line;
    line.reserve(ids.size() * 6 + 1);
    char num[16];
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      auto r = std::to_chars(num, num + sizeof(num), ids[i]);
      line.append(num, r.ptr);
    }
    line += '\n';
    write_stdout(line);
    return 0;
  };
}

jrt::cli::Runner setup_detokenize(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* sub = app.add_subcommand("detokenize", "Read whitespace-separated GPT-2 token ids from stdin, print the text");
  sub->add_option("--vocab", opt->vocab, "Folder with encoder.json and vocab.bpe (default: the embedded GPT-2 vocab)");
  return [opt] {
    std::optional<jrt::Gpt2Tokenizer> own;
    const auto& tok = tokenizer(*opt, own);
    std::string in = read_stdin();
    std::vector<int32_t> ids;
    auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    for (size_t pos = 0, k = 0; pos < in.size();) {
      if (is_space(in[pos])) {
        ++pos;
        continue;
      }
      size_t end = pos;
      while (end < in.size() && !is_space(in[end])) ++end;
      std::string_view word(in.data() + pos, end - pos);
      std::string shown(word.substr(0, 40));
      if (word.size() > 40) shown += "...";
      int64_t id = 0;
      auto r = std::from_chars(word.data(), word.data() + word.size(), id);
      bool whole = r.ptr == word.data() + word.size();
      if (r.ec == std::errc::result_out_of_range && whole) id = -1;  // too long for int64: out of range
      JRT_CHECK((r.ec == std::errc() || r.ec == std::errc::result_out_of_range) && whole,
                "token '{}' (number {} of the input) is not an integer id", shown, k + 1);
      JRT_CHECK(id >= 0 && id < tok.vocab_size(),
                "token '{}' (number {} of the input) is outside the vocabulary [0, {})", shown, k + 1,
                tok.vocab_size());
      ids.push_back(int32_t(id));
      pos = end;
      ++k;
    }
    write_stdout(tok.decode(ids));
    return 0;
  };
}

JRT_REGISTER_COMMAND("tokenize", setup_tokenize);
JRT_REGISTER_COMMAND("detokenize", setup_detokenize);

}  // namespace
