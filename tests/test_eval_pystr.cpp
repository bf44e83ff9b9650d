// Python string semantics of eval/pystr.h. Expected values were produced by CPython 3.11 (str.strip,
// str.lower/upper, re.search(re.escape(x), y, re.IGNORECASE), bytes.decode("utf-8", "replace")).
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/pystr.h"

using namespace jrt;
using namespace jrt::eval;

namespace {
int64_t find(const std::string& needle, const std::string& hay) {
  return re_find_ignorecase(to_u32(hay), to_u32(needle));
}
std::string lower(const std::string& s) { return to_utf8(py_lower(to_u32(s))); }
std::string upper(char32_t c) { return to_utf8(py_upper(c)); }
std::string strip(const std::string& s) { return to_utf8(py_strip(to_u32(s))); }
}  // namespace

TEST(EvalPyStr, Utf8RoundTripAndErrors) {
  const std::string s = "a\xC3\xA9\xE6\xBC\xA2\xF0\x9F\x98\x80";  // a é 漢 😀
  EXPECT_EQ(to_u32(s), U32({U'a', 0xE9, 0x6F22, 0x1F600}));
  EXPECT_EQ(to_utf8(to_u32(s)), s);
  EXPECT_THROW(to_u32("ab\xF0\x9F"), Error);
  try {
    to_u32("ab\xC0\xAF", "field 'text'");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("field 'text'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("byte offset 2"), std::string::npos) << e.what();
  }
}

TEST(EvalPyStr, LossyDecodeReplacesMaximalSubparts) {
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), R);  // a character cut by a window edge: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xE2\x82"
                       "A"),
            R + "A");
  EXPECT_EQ(utf8_lossy("\xE0\x80\x80"), R + R + R);  // overlong: each byte
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), R + R + R);  // surrogate
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), R + R);
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), R + R + R + R);  // > U+10FFFF
  EXPECT_EQ(utf8_lossy("\xFF"), R);
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98\x80"
                       "b"),
            "a\xF0\x9F\x98\x80"
            "b");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98\n"), R + "\n");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\xF0\x9F\x98\x80"), R + "\xF0\x9F\x98\x80");
  EXPECT_EQ(utf8_lossy("\x80\x80"), R + R);
}

TEST(EvalPyStr, StripIsPythonIsspace) {
  EXPECT_EQ(strip(" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
                  "ab c\xC2\x85\xC2\xA0\xE1\x9A\x80\xE2\x80\x80\xE2\x80\x8A\xE2\x80\xA8"
                  "\xE2\x80\xA9\xE2\x80\xAF\xE2\x81\x9F\xE3\x80\x80"),
            "ab c");
  // Not whitespace for Python: zero-width space U+200B, U+FEFF, U+180E.
  EXPECT_EQ(strip("\xE2\x80\x8B"
                  "a\xEF\xBB\xBF"),
            "\xE2\x80\x8B"
            "a\xEF\xBB\xBF");
  EXPECT_EQ(to_utf8(py_strip_char(U"..a.b..", U'.')), "a.b");
  EXPECT_EQ(to_utf8(py_strip_char(U"\n .a\n", U'\n')), " .a");
  EXPECT_EQ(to_utf8(py_strip_char(U"....", U'.')), "");
}

TEST(EvalPyStr, SlicingAndSearching) {
  EXPECT_EQ(py_drop_last(U"abcdef", 2), U"abcd");
  EXPECT_EQ(py_drop_last(U"abcdef", 0), U"");  // s[:-0]
  EXPECT_EQ(py_drop_last(U"abc", 7), U"");
  EXPECT_TRUE(py_endswith(U"abc", U""));
  EXPECT_FALSE(py_endswith(U"bc", U"abc"));
  EXPECT_EQ(py_split_first(U"a--b--c", U"--"), U"a");
  EXPECT_EQ(py_split_first(U"abc", U"--"), U"abc");
}

TEST(EvalPyStr, LowerIsFullMappingWithFinalSigma) {
  EXPECT_EQ(lower("ABC\xC3\x89"), "abc\xC3\xA9");
  EXPECT_EQ(lower("\xC4\xB0x"), "i\xCC\x87x");  // İx -> i̇x (two characters)
  EXPECT_EQ(lower("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\xA3\xCE\x91"),
            "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82 \xCF\x83\xCE\xB1");
  EXPECT_EQ(lower("A\xCE\xA3."), "a\xCF\x82.");
  EXPECT_EQ(lower("\xCE\xA3"), "\xCF\x83");
  EXPECT_EQ(lower("A'\xCE\xA3"), "a'\xCF\x82");    // ' is case-ignorable
  EXPECT_EQ(lower("A\xCE\xA3'b"), "a\xCF\x83'b");  // followed by a cased letter
  EXPECT_EQ(lower("\xCE\xA3\xCE\xA3"), "\xCF\x83\xCF\x82");
  EXPECT_EQ(lower("a\xCE\xA3\xCC\x81"), "a\xCF\x82\xCC\x81");  // combining acute is ignorable
  EXPECT_EQ(lower("\xE2\x84\xAA"), "k");                       // Kelvin sign
}

TEST(EvalPyStr, UpperOfOneCharacterIsFullMapping) {
  EXPECT_EQ(upper(U'a'), "A");
  EXPECT_EQ(upper(U'1'), "1");
  EXPECT_EQ(upper(0xDF), "SS");                         // ß
  EXPECT_EQ(upper(0x149), "\xCA\xBCN");                 // ŉ -> ʼN
  EXPECT_EQ(upper(0xFB03), "FFI");                      // ﬃ
  EXPECT_EQ(upper(0x1C5), "\xC7\x84");                  // ǅ -> Ǆ
  EXPECT_EQ(upper(0x390), "\xCE\x99\xCC\x88\xCC\x81");  // ΐ -> three characters
}

TEST(EvalPyStr, ReIgnorecaseMatchesPythonRe) {
  struct C {
    const char* needle;
    const char* hay;
    int64_t want;
  };
  const C cases[] = {
      {"i", "\xC4\xB0stanbul", 0},  // İ lowers to i
      {"\xC4\xB0", "istanbul", 0},  // pattern İ lowers to i, which also accepts ı
      {"\xC4\xB0stanbul", "ISTANBUL", 0},
      {"k", "\xE2\x84\xAA", 0},  // Kelvin sign
      {"\xE2\x84\xAA", "K", 0},
      {"\xC3\x9F", "SS", -1},  // ß is not SS (no full case folding)
      {"SS", "\xC3\x9F", -1},
      {"ss",
       "stra\xC3\x9F"
       "e",
       -1},
      {"s", "\xC5\xBF", 0},  // long s: re's extra equivalence
      {"\xC5\xBF", "S", 0},
      {"\xE1\xBA\x9E", "\xC3\x9F", 0},  // capital sharp s lowers to ß
      {"\xCF\x83", "\xCF\x82", 0},      // σ / ς
      {"\xC4\xB1", "I", 0},             // ı / I
      {"I", "\xC4\xB1", 0},
      {"i", "\xC4\xB1", 0},
      {"\xCE\xA9", "\xE2\x84\xA6", 0},  // Omega / Ohm sign
      {"\xC3\xA9", "\xC3\x89", 0},
      {"\xC7\x85", "\xC7\x86", 0},  // titlecase ǅ
      {"\xC7\x85", "\xC7\x84", 0},
      {"a.b", "aXb", -1},  // escaped: '.' is literal
      {"a.b", "xA.B", 1},
      {"", "abc", 0},
      {"\xC2\xB5", "\xCE\xBC", 0},          // micro / mu
      {"\xEF\xAC\x85", "\xEF\xAC\x86", 0},  // ﬅ / ﬆ
      {"smith, john", "SMITH, JOHN", 0},
      {"\xC4\xB0", "i\xCC\x87", 0},
      {"i\xCC\x87", "\xC4\xB0", -1},
      {"b", "abcb", 1},
      {"xyz", "xy", -1},
  };
  for (const auto& c : cases) EXPECT_EQ(find(c.needle, c.hay), c.want) << c.needle << " in " << c.hay;
}

TEST(EvalPyStr, CleanUpTokenizationSpaces) {
  EXPECT_EQ(clean_up_tokenization(" Smith , John"), " Smith, John");
  EXPECT_EQ(clean_up_tokenization("a . b ? c ! d , e"), "a. b? c! d, e");
  EXPECT_EQ(clean_up_tokenization("do n't I 'm it 's we 've they 're"), "don't I'm it's we've they're");
  EXPECT_EQ(clean_up_tokenization("a ' b"), "a'b");
  // Sequential str.replace, left to right without overlap: " ' ' " holds one " ' " match.
  EXPECT_EQ(clean_up_tokenization("x ' ' y"), "x'' y");
  EXPECT_EQ(clean_up_tokenization("a  ."), "a .");  // one space removed per match
  EXPECT_EQ(clean_up_tokenization("a \n."), "a \n.");
  EXPECT_EQ(clean_up_tokenization("no change"), "no change");
}
