// tokenizer/gpt2_pretok.h — GPT-2 pre-tokenisation: splits UTF-8 text into the pieces the GPT-2
// regex matches, and validates UTF-8. Internal to the tokenizer; exposed so tests can compare the
// ASCII fast path with the plain PCRE2 matcher.
//
// The pattern is GPT-2's  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \s spelled out as Oniguruma's Unicode whitespace (what HF tokenizers runs): U+0009..U+000D,
// U+0085 and the Z categories. PCRE2's own \s under UCP also takes U+180E (MONGOLIAN VOWEL SEPARATOR,
// a format character since Unicode 6.3) from its fixed \h list, hence the explicit class.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace jrt::gpt2 {

// Byte offset of the first byte of the first ill-formed UTF-8 sequence (overlongs, surrogates and
// code points above U+10FFFF are ill-formed), or std::string_view::npos when `s` is valid.
size_t find_invalid_utf8(std::string_view s);

class PreTokenizer {
 public:
  PreTokenizer();  // compiles the pattern (JIT when the PCRE2 build supports it)
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Per-caller matching state (the PCRE2 match data, made on first use); one per thread.
  struct Scratch {
    Scratch();
    ~Scratch();
    struct MatchData;
    std::unique_ptr<MatchData> md;
  };

  // End offset of the piece starting at `pos` (< text.size()) of `text`, which must be valid UTF-8.
  // Matching sees `text` as the whole subject: its end is the end of input for the lookahead.
  // With ascii_fast_path, pieces decidable from ASCII bytes alone skip PCRE2.
  size_t next_end(std::string_view text, size_t pos, Scratch& scratch, bool ascii_fast_path = true) const;

  // All pieces of `text` (valid UTF-8), in order.
  std::vector<std::string_view> split(std::string_view text, bool ascii_fast_path = true) const;

  bool jit() const { return jit_; }
  static const char* pattern();

 private:
  size_t pcre_end(std::string_view text, size_t pos, Scratch& scratch) const;
  struct Code;
  std::unique_ptr<Code> code_;
  bool jit_ = false;
};

}  // namespace jrt::gpt2
