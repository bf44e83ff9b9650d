// eval/unicode_tables.h — the generated Unicode tables (eval/unicode_tables.cpp, written by
// eval/gen_unicode_tables.py from Python's own runtime) behind eval/pystr.h. Internal to eval/.
#pragma once
#include <cstddef>
#include <cstdint>

namespace jrt::eval::ucd {

struct CodePair {
  char32_t a, b;  // a mapping (from, to) or an inclusive range [a, b]
};
struct FullUpper {
  char32_t from;
  char32_t to[3];  // 0-terminated when shorter than 3
};

extern const CodePair kSimpleLower[];  // sorted by .a: simple lower-case (_sre.unicode_tolower) != itself
extern const size_t kSimpleLower_size;
extern const CodePair kReCased[];  // ranges where _sre.unicode_iscased
extern const size_t kReCased_size;
extern const CodePair kReExtraCases[];  // (lower, also-matches) pairs of re._casefix._EXTRA_CASES, sorted
extern const size_t kReExtraCases_size;
extern const FullUpper kFullUpper[];  // sorted: str.upper() of one character, where it differs
extern const size_t kFullUpper_size;
extern const CodePair kCaseIgnorable[];  // ranges: Case_Ignorable as str.lower()'s Final_Sigma rule sees it
extern const size_t kCaseIgnorable_size;
extern const CodePair kCasedNotIgnorable[];  // ranges: cased and not case-ignorable
extern const size_t kCasedNotIgnorable_size;

}  // namespace jrt::eval::ucd
