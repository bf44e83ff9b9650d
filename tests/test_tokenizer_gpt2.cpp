// Tests of tokenizer/gpt2: the HF fixtures (ids, split-special ids, token strings, decoded text), the
// byte alphabet, UTF-8 handling, errors, a small custom vocabulary that pins the merge order, an
// independent reference BPE on random text, the ASCII fast path against plain PCRE2, and threads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/test_util.h"
#include "core/error.h"
#include "tokenizer/gpt2.h"
#include "tokenizer/gpt2_pretok.h"

using namespace jrt;
using nlohmann::json;

namespace {

struct Case {
  std::string text;
  std::vector<int32_t> ids, ids_split;
  std::vector<std::string> tokens;
  std::string decoded;
};

const std::vector<Case>& fixtures() {
  static const std::vector<Case> cases = [] {
    std::ifstream f(test::data_path("tokenizer/gpt2.jsonl"));
    EXPECT_TRUE(f.good());
    std::vector<Case> v;
    std::string line;
    while (std::getline(f, line)) {
      if (line.empty()) continue;
      json j = json::parse(line);
      Case c;
      c.text = j.at("text").get<std::string>();
      c.ids = j.at("ids").get<std::vector<int32_t>>();
      c.ids_split = j.contains("ids_split_special") ? j["ids_split_special"].get<std::vector<int32_t>>() : c.ids;
      c.tokens = j.at("tokens").get<std::vector<std::string>>();
      c.decoded = j.at("decoded").get<std::string>();
      v.push_back(std::move(c));
    }
    return v;
  }();
  return cases;
}

std::string assets_dir() { return std::string(JRT_SOURCE_DIR) + "/assets/gpt2"; }

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's byte alphabet, written out from its definition.
uint32_t alphabet_cp(int b) {
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    bool self = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
    if (x == b) return self ? uint32_t(x) : uint32_t(256 + n);
    if (!self) ++n;
  }
  return 0;
}

// Random valid UTF-8 from a palette that stresses the pattern: ASCII classes, contractions,
// whitespace runs (incl. NBSP, NEL, ideographic space), accented letters, CJK, numbers, emoji.
std::string random_text(std::mt19937& rng, size_t pieces) {
  static const std::vector<std::string> palette = {"a",
                                                   "Z",
                                                   "q",
                                                   "hello",
                                                   " ",
                                                   "  ",
                                                   "\t",
                                                   "\n",
                                                   "\r\n",
                                                   "'",
                                                   "'s",
                                                   "'t",
                                                   "'re",
                                                   "'ve",
                                                   "'m",
                                                   "'ll",
                                                   "'d",
                                                   "'S",
                                                   "0",
                                                   "42",
                                                   "7",
                                                   ".",
                                                   ",",
                                                   "!?",
                                                   "-",
                                                   "_",
                                                   "(",
                                                   "\"",
                                                   "<|",
                                                   "|>",
                                                   "é",
                                                   "ß",
                                                   "Ω",
                                                   "Я",
                                                   "中",
                                                   "文",
                                                   "²",
                                                   "½",
                                                   "٣",
                                                   "\u00a0",
                                                   "\u0085",
                                                   "\u3000",
                                                   "\u2028",
                                                   "\u200b",
                                                   "\u180e",
                                                   "😀",
                                                   "👩‍💻",
                                                   "\u0301",
                                                   "\x01",
                                                   "\x7f",
                                                   "\x1c",
                                                   "\v",
                                                   "\f",
                                                   "ŉ",
                                                   "ǅ",
                                                   "ｱ",
                                                   "한",
                                                   "ก",
                                                   "<|endoftext|>"};
  std::uniform_int_distribution<size_t> pick(0, palette.size() - 1);
  std::string s;
  for (size_t i = 0; i < pieces; ++i) s += palette[pick(rng)];
  return s;
}

// A straightforward BPE in the OpenAI style, written independently of the library: strings in the
// byte alphabet, repeatedly merge every occurrence of the best-ranked pair left to right.
class ReferenceBpe {
 public:
  explicit ReferenceBpe(const std::string& dir) {
    json enc = json::parse(test::read_file(dir + "/encoder.json"));
    for (auto it = enc.begin(); it != enc.end(); ++it) encoder_[it.key()] = it.value().get<int32_t>();
    std::istringstream bpe(test::read_file(dir + "/vocab.bpe"));
    std::string line;
    int rank = 0;
    std::getline(bpe, line);  // #version
    while (std::getline(bpe, line)) {
      if (line.empty()) continue;
      size_t sp = line.find(' ');
      ranks_[{line.substr(0, sp), line.substr(sp + 1)}] = rank++;
    }
  }
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    std::vector<std::string> w;
    for (unsigned char b : piece) w.push_back(utf8(alphabet_cp(b)));
    while (w.size() > 1) {
      int best = -1;
      std::pair<std::string, std::string> bp;
      for (size_t i = 0; i + 1 < w.size(); ++i) {
        auto it = ranks_.find({w[i], w[i + 1]});
        if (it != ranks_.end() && (best < 0 || it->second < best)) {
          best = it->second;
          bp = it->first;
        }
      }
      if (best < 0) break;
      std::vector<std::string> nw;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == bp.first && w[i + 1] == bp.second) {
          nw.push_back(w[i] + w[i + 1]);
          i += 2;
        } else {
          nw.push_back(w[i++]);
        }
      }
      w = std::move(nw);
    }
    for (auto& t : w) out.push_back(encoder_.at(t));
  }

 private:
  std::map<std::string, int32_t> encoder_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
};

}  // namespace

TEST(Gpt2Tokenizer, Basics) {
  const auto& tok = Gpt2Tokenizer::builtin();
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.eot_id(), 50256);
  EXPECT_EQ(tok.token_string(50256), "<|endoftext|>");
  EXPECT_EQ(tok.token_string(995), "Ġworld");
  EXPECT_EQ(&tok, &Gpt2Tokenizer::builtin());
}

TEST(Gpt2Tokenizer, FixturesMatchHuggingFace) {
  const auto& tok = Gpt2Tokenizer::builtin();
  ASSERT_EQ(fixtures().size(), 120u);
  size_t total = 0;
  for (const Case& c : fixtures()) {
    SCOPED_TRACE(c.text.substr(0, 80));
    EXPECT_EQ(tok.encode(c.text), c.ids);
    EXPECT_EQ(tok.encode(c.text, /*split_special=*/true), c.ids_split);
    ASSERT_EQ(c.tokens.size(), c.ids.size());
    for (size_t i = 0; i < c.ids.size(); ++i) EXPECT_EQ(tok.token_string(c.ids[i]), c.tokens[i]) << i;
    EXPECT_EQ(tok.decode(c.ids), c.decoded);
    EXPECT_EQ(tok.decode(c.ids_split), c.decoded);
    total += c.ids.size();
  }
  EXPECT_EQ(total, 1250u);  // the README's count: all lines were read
}

TEST(Gpt2Tokenizer, FromDirMatchesBuiltin) {
  Gpt2Tokenizer dir = Gpt2Tokenizer::from_dir(assets_dir());
  EXPECT_EQ(dir.vocab_size(), 50257);
  for (const Case& c : fixtures()) {
    EXPECT_EQ(dir.encode(c.text), c.ids) << c.text;
    EXPECT_EQ(dir.decode(c.ids), c.decoded);
  }
  Gpt2Tokenizer moved = std::move(dir);
  EXPECT_EQ(moved.encode("Hello, world!"), (std::vector<int32_t>{15496, 11, 995, 0}));
}

TEST(Gpt2Tokenizer, SpecialTokenSplitting) {
  const auto& tok = Gpt2Tokenizer::builtin();
  EXPECT_EQ(tok.encode("<|endoftext|>"), (std::vector<int32_t>{50256}));
  EXPECT_EQ(tok.encode("<|endoftext|>", true), (std::vector<int32_t>{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(tok.encode(". <|endoftext|> start"), (std::vector<int32_t>{13, 220, 50256, 923}));
  // A partial marker is plain text.
  EXPECT_EQ(tok.encode("<|endoftext|"), tok.encode("<|endoftext|", true));
  auto two = tok.encode("a<|endoftext|><|endoftext|>b");
  ASSERT_EQ(two.size(), 4u);
  EXPECT_EQ(two[1], 50256);
  EXPECT_EQ(two[2], 50256);
  EXPECT_EQ(tok.decode(two), "a<|endoftext|><|endoftext|>b");
}

TEST(Gpt2Tokenizer, EmptyAndSingleBytes) {
  const auto& tok = Gpt2Tokenizer::builtin();
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_TRUE(tok.encode("", true).empty());
  EXPECT_EQ(tok.decode({}), "");
  for (int b = 0; b < 128; ++b) {
    std::string s(1, char(b));
    auto ids = tok.encode(s);
    ASSERT_EQ(ids.size(), 1u) << b;
    EXPECT_EQ(tok.token_string(ids[0]), utf8(alphabet_cp(b))) << b;
    EXPECT_EQ(tok.decode(ids), s) << b;
  }
}

TEST(Gpt2Tokenizer, ByteAlphabetCoversAll256Bytes) {
  const auto& tok = Gpt2Tokenizer::builtin();
  std::map<std::string, int32_t> by_string;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) by_string[tok.token_string(id)] = id;
  std::set<int32_t> ids;
  for (int b = 0; b < 256; ++b) {
    auto it = by_string.find(utf8(alphabet_cp(b)));
    ASSERT_NE(it, by_string.end()) << "no token for byte " << b;
    ids.insert(it->second);
    std::vector<int32_t> one{it->second};
    EXPECT_EQ(tok.decode(one), std::string(1, char(b))) << b;
  }
  EXPECT_EQ(ids.size(), 256u);
  EXPECT_EQ(tok.token_string(220), "Ġ");  // space -> U+0120
  EXPECT_EQ(tok.token_string(198), "Ċ");  // newline -> U+010A
}

TEST(Gpt2Tokenizer, EveryUtf8ByteValueRoundTrips) {
  const auto& tok = Gpt2Tokenizer::builtin();
  std::string s;
  for (uint32_t cp = 0; cp < 0x800; ++cp) s += utf8(cp);                                           // 1-2 byte forms
  for (uint32_t lead = 0; lead < 16; ++lead) s += utf8(lead == 0 ? 0x800 : (lead << 12) | 0x123);  // E0..EF
  for (uint32_t cp : {0x10000u, 0x40000u, 0x80000u, 0xC0000u, 0x10FFFFu}) s += utf8(cp);           // F0..F4
  std::set<unsigned char> bytes(s.begin(), s.end());
  EXPECT_EQ(bytes.size(), 256u - 13u);  // all but C0, C1, F5..FF, which valid UTF-8 never holds
  EXPECT_EQ(tok.decode(tok.encode(s)), s);
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string t = random_text(rng, 1 + i % 40);
    EXPECT_EQ(tok.decode(tok.encode(t)), t);
    EXPECT_EQ(tok.decode(tok.encode(t, true)), t);
  }
}

TEST(Gpt2Tokenizer, DecodeMaySplitACharacter) {
  const auto& tok = Gpt2Tokenizer::builtin();
  const std::string parrot = "🦜";  // 4 bytes, 3 tokens
  auto ids = tok.encode(parrot);
  ASSERT_GE(ids.size(), 2u);
  std::string first = tok.decode(std::span<const int32_t>(ids).first(1));
  EXPECT_LT(first.size(), parrot.size());
  EXPECT_EQ(first, parrot.substr(0, first.size()));
  EXPECT_NE(gpt2::find_invalid_utf8(first), std::string_view::npos);  // raw bytes, not repaired
}

TEST(Gpt2Tokenizer, OutOfRangeIdsThrow) {
  const auto& tok = Gpt2Tokenizer::builtin();
  for (int32_t bad : {50257, -1, 1 << 30}) {
    std::vector<int32_t> ids{15496, bad};
    try {
      tok.decode(ids);
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(std::to_string(bad)), std::string::npos) << m;
      EXPECT_NE(m.find("[0, 50257)"), std::string::npos) << m;
    }
    EXPECT_THROW(tok.token_string(bad), Error);
  }
}

TEST(Gpt2Tokenizer, InvalidUtf8IsAnErrorNamingTheOffset) {
  const auto& tok = Gpt2Tokenizer::builtin();
  const std::vector<std::pair<std::string, size_t>> bad = {{"\xff", 0},
                                                           {"ab\xc3", 2},
                                                           {"abc\x80", 3},
                                                           {"x\xc0\xaf", 1},
                                                           {"xy\xed\xa0\x80", 2},
                                                           {"\xf4\x90\x80\x80", 0},
                                                           {"hello world \xe4\xb8", 12},
                                                           {"ok\xf8\x88\x80\x80\x80", 2}};
  for (const auto& [s, off] : bad) {
    try {
      tok.encode(s);
      ADD_FAILURE() << "accepted invalid UTF-8 at " << off;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(off)), std::string::npos) << e.what();
    }
    EXPECT_EQ(gpt2::find_invalid_utf8(s), off);
  }
  EXPECT_EQ(gpt2::find_invalid_utf8("plain ascii, then é中😀"), std::string_view::npos);
}

TEST(Gpt2PreTokenizer, KnownSplits) {
  gpt2::PreTokenizer pt;
  using V = std::vector<std::string_view>;
  EXPECT_EQ(pt.split("Hello  world"), (V{"Hello", " ", " world"}));
  EXPECT_EQ(pt.split("don't you'll"), (V{"don", "'t", " you", "'ll"}));
  EXPECT_EQ(pt.split("a\n\nb  "), (V{"a", "\n", "\n", "b", "  "}));
  EXPECT_EQ(pt.split("x 123 ...!"), (V{"x", " 123", " ...!"}));
  EXPECT_EQ(pt.split("  "), (V{"  "}));
  // NBSP, NEL and U+3000 are whitespace as in Oniguruma (\s); zero-width space and U+180E are not
  // (PCRE2's own \s would take U+180E).
  EXPECT_EQ(pt.split("x\u0085\u0085y"), (V{"x", "\u0085", "\u0085", "y"}));
  EXPECT_EQ(pt.split("x\u3000\u3000y"), (V{"x", "\u3000", "\u3000", "y"}));  // only U+0020 joins a word
  EXPECT_EQ(pt.split("a\u180e\u180eb"), (V{"a", "\u180e\u180e", "b"}));
  EXPECT_EQ(pt.split("a\u00a0b"), (V{"a", "\u00a0", "b"}));
  EXPECT_EQ(pt.split("a\u200bb"), (V{"a", "\u200b", "b"}));
  EXPECT_EQ(pt.split(" café²"), (V{" café", "²"}));
}

TEST(Gpt2PreTokenizer, AsciiFastPathAgreesWithPcre2) {
  gpt2::PreTokenizer pt;
  std::mt19937 rng(1234);
  for (int i = 0; i < 3000; ++i) {
    std::string s = random_text(rng, 1 + i % 30);
    ASSERT_EQ(pt.split(s, true), pt.split(s, false)) << s;
  }
  for (const Case& c : fixtures()) ASSERT_EQ(pt.split(c.text, true), pt.split(c.text, false)) << c.text;
}

TEST(Gpt2Tokenizer, MatchesReferenceBpeOnRandomText) {
  const auto& tok = Gpt2Tokenizer::builtin();
  ReferenceBpe ref(assets_dir());
  gpt2::PreTokenizer pt;
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    std::string s = random_text(rng, 1 + i % 50);
    std::vector<int32_t> want;
    for (auto piece : pt.split(s, false)) ref.encode_piece(piece, want);
    ASSERT_EQ(tok.encode(s, true), want) << s;
  }
  // Long single pieces take the uncached path.
  for (std::string word : {std::string(300, 'a'),
                           std::string("pneumonoultramicroscopicsilicovolcanoconiosis") + std::string(200, 'z'), [] {
                             std::string w;
                             for (int k = 0; k < 100; ++k) w += "中文한";
                             return w;
                           }()}) {
    std::vector<int32_t> want;
    for (auto piece : pt.split(word, false)) ref.encode_piece(piece, want);
    EXPECT_EQ(tok.encode(word), want);
    EXPECT_EQ(tok.encode(word), want);  // second time via the cache (for short pieces)
  }
}

TEST(Gpt2Tokenizer, HugePieceIsNotQuadratic) {
  const auto& tok = Gpt2Tokenizer::builtin();
  std::string s;
  for (int i = 0; i < 100000; ++i) s += "中";  // one 300 KB \p{L}+ piece
  auto ids = tok.encode(s);
  EXPECT_EQ(tok.decode(ids), s);
}

TEST(Gpt2Tokenizer, ConcurrentEncodeMatchesSerial) {
  const auto& tok = Gpt2Tokenizer::builtin();
  std::mt19937 rng(5);
  std::vector<std::string> texts;
  for (const Case& c : fixtures()) texts.push_back(c.text);
  for (int i = 0; i < 200; ++i) texts.push_back(random_text(rng, 60));
  // Serial results from a separate instance, so they do not come from the shared cache under test.
  Gpt2Tokenizer fresh = Gpt2Tokenizer::from_dir(assets_dir());
  std::vector<std::vector<int32_t>> serial;
  for (auto& t : texts) serial.push_back(fresh.encode(t));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = 0; i < texts.size(); ++i) {
          size_t k = (i * 7 + size_t(t) * 13 + size_t(rep)) % texts.size();
          if (tok.encode(texts[k]) != serial[k]) ++mismatches;
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// A hand-made vocabulary: the 256 byte tokens plus a few merges whose ranks decide the result.
class TinyVocab : public ::testing::Test {
 protected:
  std::string dir;
  void write(const std::vector<std::string>& merges, const std::vector<std::string>& extra) {
    dir = test::temp_dir() + "/tiny" + std::to_string(counter_++);
    std::filesystem::create_directories(dir);
    json enc = json::object();
    for (int b = 0; b < 256; ++b) enc[utf8(alphabet_cp(b))] = b;
    int id = 256;
    for (auto& t : extra) enc[t] = id++;
    test::write_file(dir + "/encoder.json", enc.dump());
    std::string bpe = "#version: 0.2\n";
    for (auto& m : merges) bpe += m + "\n";
    test::write_file(dir + "/vocab.bpe", bpe);
  }
  static inline int counter_ = 0;
};

TEST_F(TinyVocab, LowestRankFirstAndLeftmostAmongEquals) {
  write({"b c", "a b", "a bc"}, {"bc", "ab", "abc"});
  auto t = Gpt2Tokenizer::from_dir(dir);
  EXPECT_EQ(t.vocab_size(), 259);
  EXPECT_EQ(t.eot_id(), -1);
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{258}));        // (b c) then (a bc)
  EXPECT_EQ(t.encode("abab"), (std::vector<int32_t>{257, 257}));  // no "ab ab" merge
  EXPECT_EQ(t.encode("abcbc"), (std::vector<int32_t>{258, 256}));
  // Without a special token the marker is ordinary text.
  EXPECT_EQ(t.encode("<|endoftext|>").size(), 13u);

  write({"a b", "b c", "ab c"}, {"ab", "bc", "abc"});
  auto u = Gpt2Tokenizer::from_dir(dir);
  EXPECT_EQ(u.encode("abc"), (std::vector<int32_t>{258}));  // (a b) then (ab c)
  EXPECT_EQ(u.encode("bc"), (std::vector<int32_t>{257}));

  write({"a a", "aa aa"}, {"aa", "aaaa"});
  auto v = Gpt2Tokenizer::from_dir(dir);
  EXPECT_EQ(v.encode("aaa"), (std::vector<int32_t>{256, 'a'}));
  EXPECT_EQ(v.encode("aaaa"), (std::vector<int32_t>{257}));
  EXPECT_EQ(v.encode("aaaaa"), (std::vector<int32_t>{257, 'a'}));
  EXPECT_EQ(v.decode(v.encode("aaaaa")), "aaaaa");
}

TEST_F(TinyVocab, BadFilesAreErrorsNamingTheFile) {
  auto expect_error = [](const std::string& d, const std::string& needle) {
    try {
      Gpt2Tokenizer::from_dir(d);
      ADD_FAILURE() << "loaded " << d;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("/nonexistent/gpt2", "/nonexistent/gpt2");
  write({"a b", "x q"}, {"ab"});
  expect_error(dir, "vocab.bpe line 3");
  write({"a b c"}, {"ab"});
  expect_error(dir, "vocab.bpe line 2");
  write({}, {});
  test::write_file(dir + "/encoder.json", "{\"a\": 0,");
  expect_error(dir, "encoder.json");
  test::write_file(dir + "/encoder.json", "{\"a\": 0, \"b\": 5}");
  expect_error(dir, "outside [0, 2)");
  std::filesystem::remove(dir + "/vocab.bpe");
  expect_error(dir, "vocab.bpe");
}
