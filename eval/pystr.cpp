// eval/pystr.cpp — see pystr.h.
#include "eval/pystr.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "eval/unicode_tables.h"

namespace jrt::eval {
namespace {

bool in_ranges(const ucd::CodePair* r, size_t n, char32_t c) {
  // Ranges are sorted and disjoint: the last range starting at or before c decides.
  const ucd::CodePair* end = r + n;
  const ucd::CodePair* it = std::upper_bound(r, end, c, [](char32_t v, const ucd::CodePair& p) { return v < p.a; });
  if (it == r) return false;
  --it;
  return c <= it->b;
}

// Decodes one UTF-8 sequence at s[i]; returns the number of bytes of the longest well-formed prefix
// (0 when s[i] cannot start a sequence) and whether it is complete.
struct Step {
  size_t len;
  bool complete;
  char32_t cp;
};
Step utf8_step(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {1, true, b0};
  size_t need;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0, false, 0};
  }
  size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= s.size()) return {k, false, 0};
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return {k, false, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {k, true, cp};
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

bool case_ignorable(char32_t c) { return in_ranges(ucd::kCaseIgnorable, ucd::kCaseIgnorable_size, c); }
bool cased_not_ignorable(char32_t c) { return in_ranges(ucd::kCasedNotIgnorable, ucd::kCasedNotIgnorable_size, c); }

// Python's handle_capital_sigma: \p{cased}\p{case-ignorable}* U+03A3 !(\p{case-ignorable}*\p{cased}).
bool final_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  bool before = false;
  while (j > 0) {
    --j;
    if (!case_ignorable(s[j])) {
      before = cased_not_ignorable(s[j]);
      break;
    }
  }
  if (!before) return false;
  for (size_t k = i + 1; k < s.size(); ++k)
    if (!case_ignorable(s[k])) return !cased_not_ignorable(s[k]);
  return true;
}

}  // namespace

U32 to_u32(std::string_view s, std::string_view what) {
  U32 out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    Step st = utf8_step(s, i);
    JRT_CHECK(st.complete, "{}: invalid UTF-8 at byte offset {}", what, i);
    out += st.cp;
    i += st.len;
  }
  return out;
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    Step st = utf8_step(s, i);
    if (st.complete) {
      out.append(s.substr(i, st.len));
      i += st.len;
    } else {
      out += "\xEF\xBF\xBD";
      i += std::max<size_t>(st.len, 1);
    }
  }
  return out;
}

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

U32 py_strip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && py_isspace(s[b])) ++b;
  while (e > b && py_isspace(s[e - 1])) --e;
  return U32(s.substr(b, e - b));
}

U32 py_strip_char(std::u32string_view s, char32_t c) {
  size_t b = 0, e = s.size();
  while (b < e && s[b] == c) ++b;
  while (e > b && s[e - 1] == c) --e;
  return U32(s.substr(b, e - b));
}

U32 py_drop_last(std::u32string_view s, int64_t n) {
  if (n <= 0) return n == 0 ? U32() : U32(s);  // s[:-0] is empty; s[:-(-k)] would be s[:k] (unused)
  if (size_t(n) >= s.size()) return U32();
  return U32(s.substr(0, s.size() - size_t(n)));
}

bool py_endswith(std::u32string_view s, std::u32string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

U32 py_split_first(std::u32string_view s, std::u32string_view sep) {
  size_t at = s.find(sep);
  return U32(at == std::u32string_view::npos ? s : s.substr(0, at));
}

bool py_contains(std::u32string_view s, std::u32string_view sub) { return s.find(sub) != std::u32string_view::npos; }

char32_t re_lower(char32_t c) {
  const ucd::CodePair* b = ucd::kSimpleLower;
  const ucd::CodePair* e = b + ucd::kSimpleLower_size;
  const ucd::CodePair* it = std::lower_bound(b, e, c, [](const ucd::CodePair& p, char32_t v) { return p.a < v; });
  return it != e && it->a == c ? it->b : c;
}

bool re_iscased(char32_t c) { return in_ranges(ucd::kReCased, ucd::kReCased_size, c); }

U32 py_lower(std::u32string_view s) {
  U32 out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == 0x130) {
      out += U'i';
      out += char32_t(0x307);
    } else if (c == 0x3A3) {
      out += final_sigma(s, i) ? char32_t(0x3C2) : char32_t(0x3C3);
    } else {
      out += re_lower(c);  // str.lower() equals the simple mapping elsewhere (checked by the generator)
    }
  }
  return out;
}

U32 py_upper(char32_t c) {
  const ucd::FullUpper* b = ucd::kFullUpper;
  const ucd::FullUpper* e = b + ucd::kFullUpper_size;
  const ucd::FullUpper* it = std::lower_bound(b, e, c, [](const ucd::FullUpper& p, char32_t v) { return p.from < v; });
  if (it == e || it->from != c) return U32(1, c);
  U32 out;
  for (char32_t x : it->to)
    if (x) out += x;
  return out;
}

int64_t re_find_ignorecase(std::u32string_view hay, std::u32string_view needle) {
  if (needle.empty()) return 0;
  // Compile once: per needle character, the lower-cased hay characters it accepts.
  struct Pat {
    bool cased;
    char32_t lo;
    char32_t alt[2];
  };
  std::vector<Pat> pat;
  pat.reserve(needle.size());
  for (char32_t c : needle) {
    Pat p{re_iscased(c), c, {0, 0}};
    if (p.cased) {
      p.lo = re_lower(c);
      const ucd::CodePair* b = ucd::kReExtraCases;
      const ucd::CodePair* e = b + ucd::kReExtraCases_size;
      const ucd::CodePair* it =
          std::lower_bound(b, e, p.lo, [](const ucd::CodePair& q, char32_t v) { return q.a < v; });
      for (int k = 0; it != e && it->a == p.lo && k < 2; ++it, ++k) p.alt[k] = it->b;
    }
    pat.push_back(p);
  }
  auto match = [](const Pat& p, char32_t h) {
    if (!p.cased) return h == p.lo;
    const char32_t hl = re_lower(h);
    return hl == p.lo || (p.alt[0] && hl == p.alt[0]) || (p.alt[1] && hl == p.alt[1]);
  };
  if (hay.size() < needle.size()) return -1;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t j = 0;
    while (j < pat.size() && match(pat[j], hay[i + j])) ++j;
    if (j == pat.size()) return int64_t(i);
  }
  return -1;
}

std::string clean_up_tokenization(std::string s) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    if (s.find(from) == std::string::npos) continue;
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    for (size_t at; (at = s.find(from, pos)) != std::string::npos; pos = at + from.size()) {
      out.append(s, pos, at - pos);
      out.append(to);
    }
    out.append(s, pos, std::string::npos);
    s = std::move(out);
  }
  return s;
}

}  // namespace jrt::eval
