// tokenizer/gpt2_pretok.cpp — see gpt2_pretok.h. Owns the compiled PCRE2 pattern and the ASCII fast
// path that decides most pieces of English-like text without entering PCRE2.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/gpt2_pretok.h"

#include <pcre2.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "core/error.h"

namespace jrt::gpt2 {

namespace {

// Oniguruma's Unicode \s: TAB..CR, NEL and the separators (space, line, paragraph); not U+180E.
#define JRT_WS "\\t-\\r\\x{85}\\p{Z}"
constexpr const char* kPattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" JRT_WS "\\p{L}\\p{N}]+|[" JRT_WS
                                 "]+(?![^" JRT_WS "])|[" JRT_WS "]+";
#undef JRT_WS

// ASCII classes as the pattern sees them.
enum : uint8_t { kOther = 0, kLetter = 1, kDigit = 2, kSpace = 3 };
constexpr std::array<uint8_t, 128> make_ascii_classes() {
  std::array<uint8_t, 128> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kLetter;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = kLetter;
  for (int c = '0'; c <= '9'; ++c) t[c] = kDigit;
  for (int c = '\t'; c <= '\r'; ++c) t[c] = kSpace;
  t[' '] = kSpace;
  return t;
}
constexpr std::array<uint8_t, 128> kAsciiClass = make_ascii_classes();

// End of the piece at `p`, or 0 when a non-ASCII byte could change the answer (PCRE2 decides then).
inline size_t ascii_end(const unsigned char* s, size_t n, size_t p) {
  unsigned char c = s[p];
  if (c >= 0x80) return 0;
  if (c == '\'' && p + 1 < n) {
    unsigned char c1 = s[p + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return p + 2;
    if (p + 2 < n) {
      unsigned char c2 = s[p + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return p + 3;
    }
  }
  uint8_t k = kAsciiClass[c];
  size_t q = p + 1;
  if (c == ' ' && q < n) {
    unsigned char c1 = s[q];
    if (c1 >= 0x80) return 0;  // " é" vs " \u00a0": the class of c1 decides
    if (kAsciiClass[c1] != kSpace) {
      k = kAsciiClass[c1];
      ++q;
    }
  }
  if (k != kSpace) {
    while (q < n && s[q] < 0x80 && kAsciiClass[s[q]] == k) ++q;
    if (q < n && s[q] >= 0x80) return 0;
    return q;
  }
  // A whitespace run: all of it at the end of input; otherwise it leaves its last character to
  // the next piece (\s+(?!\S)), unless it is a single character (\s+).
  while (q < n && s[q] < 0x80 && kAsciiClass[s[q]] == kSpace) ++q;
  if (q == n) return q;
  if (s[q] >= 0x80) return 0;
  return q - p >= 2 ? q - 1 : q;
}

}  // namespace

size_t find_invalid_utf8(std::string_view str) {
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  size_t n = str.size(), i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

struct PreTokenizer::Code {
  pcre2_code* code = nullptr;
  ~Code() {
    if (code) pcre2_code_free(code);
  }
};

struct PreTokenizer::Scratch::MatchData {
  pcre2_match_data* md = nullptr;
  ~MatchData() {
    if (md) pcre2_match_data_free(md);
  }
};

PreTokenizer::Scratch::Scratch() = default;
PreTokenizer::Scratch::~Scratch() = default;

const char* PreTokenizer::pattern() { return kPattern; }

PreTokenizer::PreTokenizer() : code_(std::make_unique<Code>()) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                              &err, &err_off, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    fail("gpt2 pre-tokenizer: PCRE2 cannot compile the pattern at offset {}: {}", err_off,
         reinterpret_cast<const char*>(msg));
  }
  // Without JIT support pcre2_match interprets the pattern: slower, same result.
  jit_ = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

PreTokenizer::~PreTokenizer() = default;

size_t PreTokenizer::pcre_end(std::string_view text, size_t pos, Scratch& scratch) const {
  if (!scratch.md) {
    scratch.md = std::make_unique<Scratch::MatchData>();
    scratch.md->md = pcre2_match_data_create(1, nullptr);
    JRT_CHECK(scratch.md->md, "gpt2 pre-tokenizer: out of memory for PCRE2 match data");
  }
  // The caller validated the UTF-8 once for the whole text; checking per call would be quadratic.
  int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, PCRE2_NO_UTF_CHECK,
                       scratch.md->md, nullptr);
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.md->md);
  // Every character starts some alternative, so a match always begins at pos.
  JRT_CHECK(rc > 0 && ov[0] == pos && ov[1] > pos, "gpt2 pre-tokenizer: PCRE2 failed at byte offset {} (rc {})", pos,
            rc);
  return ov[1];
}

size_t PreTokenizer::next_end(std::string_view text, size_t pos, Scratch& scratch, bool ascii_fast_path) const {
  if (ascii_fast_path) {
    size_t e = ascii_end(reinterpret_cast<const unsigned char*>(text.data()), text.size(), pos);
    if (e) return e;
  }
  return pcre_end(text, pos, scratch);
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text, bool ascii_fast_path) const {
  size_t bad = find_invalid_utf8(text);
  JRT_CHECK(bad == std::string_view::npos, "gpt2 pre-tokenizer: invalid UTF-8 at byte offset {} (byte 0x{:02x})", bad,
            static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
  std::vector<std::string_view> out;
  Scratch scratch;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = next_end(text, pos, scratch, ascii_fast_path);
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

}  // namespace jrt::gpt2
