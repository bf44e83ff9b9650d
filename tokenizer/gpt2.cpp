// tokenizer/gpt2.cpp — the GPT-2 byte-level BPE: loads encoder.json / vocab.bpe, owns the merge table,
// the per-id decoded bytes and the word cache; encode = special-token split -> pre-tokenise -> BPE per
// piece (cached), decode = concatenation of each id's raw bytes.
//
// Invalid UTF-8 input to encode() is an error naming the byte offset: the HF tokenizer only takes
// valid (Python / Rust) strings, so there is no reference behaviour to copy for it.
#include "tokenizer/gpt2.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/embedded_assets.h"
#include "tokenizer/gpt2_pretok.h"

namespace jrt {

namespace {

constexpr std::string_view kEndOfText = "<|endoftext|>";
constexpr size_t kMaxCachedWord = 128;           // longer pieces are rare; BPE them every time
constexpr size_t kSharedCacheEntries = 1 << 18;  // then the shared cache starts over
constexpr size_t kLocalCacheEntries = 1 << 20;   // same for one encode() call's own cache

// GPT-2's byte -> code point alphabet: printable Latin-1 bytes stand for themselves, the other 68
// bytes (controls, space, DEL, NBSP, soft hyphen) take code points 256, 257, ... in byte order.
std::array<uint32_t, 256> byte_alphabet() {
  std::array<uint32_t, 256> cp{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    cp[b] = self ? b : next++;
  }
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Decodes one code point of valid UTF-8 at s[i], advancing i.
uint32_t next_code_point(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return uint32_t(static_cast<unsigned char>(s[k])); };
  uint32_t c = b(i);
  if (c < 0x80) {
    i += 1;
    return c;
  }
  if (c < 0xE0) {
    uint32_t cp = ((c & 0x1F) << 6) | (b(i + 1) & 0x3F);
    i += 2;
    return cp;
  }
  if (c < 0xF0) {
    uint32_t cp = ((c & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F);
    i += 3;
    return cp;
  }
  uint32_t cp = ((c & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F);
  i += 4;
  return cp;
}

inline uint64_t mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t(n) * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t k = 0; k < n; ++k) v |= uint64_t(static_cast<unsigned char>(p[k])) << (8 * k);
  return mix((h ^ v) * 0x94d049bb133111ebull);
}

// Equality of short byte strings without a libc call (pieces are a few bytes).
inline bool same_bytes(const char* a, const char* b, size_t n) {
  while (n >= 8) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  for (size_t k = 0; k < n; ++k)
    if (a[k] != b[k]) return false;
  return true;
}

// (left id, right id) -> (rank, merged id); open addressing over a power-of-two table.
class MergeTable {
 public:
  struct Merge {
    int32_t rank, id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slots_.assign(cap, Slot{kEmpty, {0, 0}});
    mask_ = cap - 1;
  }
  // Keeps the first (best-ranked) entry of a pair listed twice.
  void insert(int32_t a, int32_t b, Merge m) {
    uint64_t key = make_key(a, b);
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return;
      if (slots_[i].key == kEmpty) {
        slots_[i] = Slot{key, m};
        return;
      }
    }
  }
  const Merge* find(int32_t a, int32_t b) const {
    uint64_t key = make_key(a, b);
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i].m;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);  // ids are < 2^31, so no real key is all ones
  static uint64_t make_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  struct Slot {
    uint64_t key;
    Merge m;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// Piece bytes -> BPE ids. A slot is 32 bytes and holds short pieces (<= 12 bytes, <= 3 ids: nearly
// all of them) inline, so a hit costs one cache line; longer ones live in two arenas.
class WordCache {
 public:
  size_t size() const { return count_; }
  void clear() {
    slots_.clear();
    keys_.clear();
    vals_.clear();
    count_ = 0;
  }
  // Appends the cached ids of `w` (at most kMaxCachedWord bytes) to out; false when absent.
  bool lookup(std::string_view w, uint64_t h, std::vector<int32_t>& out) const {
    if (slots_.empty()) return false;
    const Slot* s = probe(w, uint32_t(h));
    if (s->key_len == 0) return false;
    const int32_t* v = inline_slot(s->key_len, s->n_ids) ? s->in.ids : vals_.data() + s->out.val_off;
    for (uint32_t k = 0; k < s->n_ids; ++k) out.push_back(v[k]);  // mostly 1-2 ids: no memmove call
    return true;
  }
  void insert(std::string_view w, uint64_t h, std::span<const int32_t> ids) {
    if (2 * (count_ + 1) > slots_.size()) grow();
    Slot* s = const_cast<Slot*>(probe(w, uint32_t(h)));
    if (s->key_len != 0) return;
    *s = Slot{};
    s->h32 = uint32_t(h);
    s->key_len = uint8_t(w.size());
    s->n_ids = uint8_t(ids.size());
    if (inline_slot(w.size(), ids.size())) {
      std::memcpy(s->in.key, w.data(), w.size());
      std::copy(ids.begin(), ids.end(), s->in.ids);
    } else {
      s->out.key_off = uint32_t(keys_.size());
      s->out.val_off = uint32_t(vals_.size());
      keys_.append(w);
      vals_.insert(vals_.end(), ids.begin(), ids.end());
    }
    ++count_;
  }

 private:
  struct Slot {
    uint32_t h32;
    uint8_t key_len;  // 0: empty (pieces are never empty)
    uint8_t n_ids;
    union {
      struct {
        char key[12];
        int32_t ids[3];
      } in;
      struct {
        uint32_t key_off, val_off;
      } out;
    };
  };
  static_assert(sizeof(Slot) == 32);
  static bool inline_slot(size_t key_len, size_t n_ids) { return key_len <= 12 && n_ids <= 3; }

  // The slot holding w, or the empty slot where it would go.
  const Slot* probe(std::string_view w, uint32_t h32) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = h32 & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return &s;
      if (s.h32 == h32 && s.key_len == w.size()) {
        const char* key = inline_slot(s.key_len, s.n_ids) ? s.in.key : keys_.data() + s.out.key_off;
        if (same_bytes(key, w.data(), w.size())) return &s;
      }
    }
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 256 : old.size() * 2, Slot{});
    size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.key_len == 0) continue;
      size_t i = s.h32 & mask;
      while (slots_[i].key_len != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> vals_;
  size_t count_ = 0;
};

// encoder.json as a flat object of token -> integer id, collected in file order.
class EncoderSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::vector<std::pair<std::string, int64_t>> entries;
  std::string error;

  bool null() override { return unexpected("null"); }
  bool boolean(bool) override { return unexpected("a boolean"); }
  bool number_integer(number_integer_t v) override { return id(v); }
  bool number_unsigned(number_unsigned_t v) override { return id(v > uint64_t(INT64_MAX) ? -1 : int64_t(v)); }
  bool number_float(number_float_t, const string_t&) override { return unexpected("a non-integer number"); }
  bool string(string_t&) override { return unexpected("a string"); }
  bool binary(binary_t&) override { return unexpected("binary data"); }
  bool start_object(std::size_t) override { return depth_++ == 0 || unexpected("a nested object"); }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return unexpected("an array"); }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = fmt::format("not valid JSON: {}", e.what());
    return false;
  }

 private:
  bool unexpected(const char* what) {
    error = depth_ == 1 ? fmt::format("the id of token '{}' is {}, not an integer", key_, what)
                        : fmt::format("expected one JSON object of token -> id, found {}", what);
    return false;
  }
  bool id(int64_t v) {
    if (depth_ != 1) return unexpected("a number");
    entries.emplace_back(std::move(key_), v);
    return true;
  }
  std::string key_;
  int depth_ = 0;
};

std::string read_whole_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  JRT_CHECK(f.good(), "gpt2 tokenizer: cannot open '{}'", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  JRT_CHECK(!f.bad(), "gpt2 tokenizer: cannot read '{}'", path);
  return ss.str();
}

}  // namespace

struct Gpt2Tokenizer::Impl {
  std::vector<std::string> token_strings;  // id -> encoder.json key
  std::vector<uint32_t> raw_off;           // id -> [raw_off[id], raw_off[id+1]) in raw_bytes
  std::string raw_bytes;                   // followed by kCopySlack zero bytes
  static constexpr uint32_t kCopySlack = 16;
  std::array<int32_t, 256> byte_id{};  // the single-byte tokens BPE starts from
  MergeTable merges;
  int32_t eot = -1;
  gpt2::PreTokenizer pretok;

  mutable std::shared_mutex cache_mu;
  mutable WordCache shared_cache;

  // Scratch for one BPE run.
  struct Sym {
    int32_t id, prev, next;
  };
  struct Cand {
    int32_t rank, pos, id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  struct BpeScratch {
    std::vector<Sym> syms;
    std::vector<Cand> heap;
  };

  void load(std::string_view encoder_json, std::string_view vocab_bpe, const std::string& enc_name,
            const std::string& bpe_name);
  void bpe(std::string_view word, std::vector<int32_t>& out, BpeScratch& sc) const;
};

void Gpt2Tokenizer::Impl::load(std::string_view encoder_json, std::string_view vocab_bpe, const std::string& enc_name,
                               const std::string& bpe_name) {
  // SAX parsing: no DOM of 50k nodes, which would dominate the start-up of every `jrt tokenize`.
  EncoderSax sax;
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(encoder_json.begin(), encoder_json.end(), &sax);
  } catch (const nlohmann::json::exception& e) {
    fail("gpt2 tokenizer: {} is not valid JSON: {}", enc_name, e.what());
  }
  JRT_CHECK(ok, "gpt2 tokenizer: {}: {}", enc_name, sax.error);
  JRT_CHECK(!sax.entries.empty(), "gpt2 tokenizer: {} must be a non-empty JSON object of token -> id", enc_name);
  const size_t n = sax.entries.size();
  JRT_CHECK(n < (size_t(1) << 30), "gpt2 tokenizer: {} has {} entries, too many", enc_name, n);
  token_strings.assign(n, {});
  std::vector<bool> seen(n, false);
  for (auto& [key, id] : sax.entries) {
    JRT_CHECK(id >= 0 && id < int64_t(n), "gpt2 tokenizer: {}: id {} of token '{}' is outside [0, {})", enc_name, id,
              key, n);
    JRT_CHECK(!seen[id], "gpt2 tokenizer: {}: id {} is used twice (again by token '{}')", enc_name, id, key);
    JRT_CHECK(gpt2::find_invalid_utf8(key) == std::string_view::npos,
              "gpt2 tokenizer: {}: token with id {} is not valid UTF-8", enc_name, id);
    seen[id] = true;
    token_strings[id] = std::move(key);
  }
  std::unordered_map<std::string_view, int32_t> enc;  // views into token_strings, fixed from here on
  enc.reserve(n);
  for (size_t id = 0; id < n; ++id)
    JRT_CHECK(enc.emplace(token_strings[id], int32_t(id)).second, "gpt2 tokenizer: {}: token '{}' is listed twice",
              enc_name, token_strings[id]);

  // Alphabet code point -> byte; characters outside the alphabet (only possible in added tokens of a
  // custom vocabulary) decode to their own UTF-8.
  auto alphabet = byte_alphabet();
  std::array<int16_t, 324> byte_of_cp;
  byte_of_cp.fill(-1);
  for (int b = 0; b < 256; ++b) byte_of_cp[alphabet[b]] = int16_t(b);
  raw_off.assign(n + 1, 0);
  for (size_t id = 0; id < n; ++id) {
    raw_off[id] = uint32_t(raw_bytes.size());
    const std::string& t = token_strings[id];
    for (size_t i = 0; i < t.size();) {
      size_t start = i;
      uint32_t cp = next_code_point(t, i);
      if (cp < byte_of_cp.size() && byte_of_cp[cp] >= 0)
        raw_bytes += char(byte_of_cp[cp]);
      else
        raw_bytes.append(t, start, i - start);
    }
  }
  raw_off[n] = uint32_t(raw_bytes.size());
  raw_bytes.append(kCopySlack, '\0');

  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(s, alphabet[b]);
    auto it = enc.find(s);
    JRT_CHECK(it != enc.end(), "gpt2 tokenizer: {} lacks the token '{}' for byte 0x{:02x}", enc_name, s, b);
    byte_id[b] = it->second;
  }
  if (auto it = enc.find(kEndOfText); it != enc.end()) eot = it->second;

  // vocab.bpe: optional "#version" line, then "left right" per line in priority order.
  std::vector<std::array<int32_t, 3>> list;
  std::string joined;
  size_t line_no = 0;
  for (size_t pos = 0; pos < vocab_bpe.size();) {
    size_t nl = vocab_bpe.find('\n', pos);
    if (nl == std::string_view::npos) nl = vocab_bpe.size();
    std::string_view line = vocab_bpe.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    size_t sp = line.find(' ');
    JRT_CHECK(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                  line.find(' ', sp + 1) == std::string_view::npos,
              "gpt2 tokenizer: {} line {}: expected two tokens separated by one space, got '{}'", bpe_name, line_no,
              line);
    std::string_view left = line.substr(0, sp), right = line.substr(sp + 1);
    joined.assign(left).append(right);
    auto a = enc.find(left), b = enc.find(right), m = enc.find(joined);
    if (a == enc.end() || b == enc.end() || m == enc.end())
      fail("gpt2 tokenizer: {} line {}: merge '{}' uses a token missing from {}: '{}'", bpe_name, line_no, line,
           enc_name,
           a == enc.end()   ? left
           : b == enc.end() ? right
                            : std::string_view(joined));
    list.push_back({a->second, b->second, m->second});
  }
  merges.reserve(list.size());
  for (size_t r = 0; r < list.size(); ++r) merges.insert(list[r][0], list[r][1], {int32_t(r), list[r][2]});
}

// Merges the adjacent pair of lowest rank (leftmost among equals) until none is in the table: the
// same order as HF's BPE, via a heap of candidate pairs with stale entries skipped on pop.
void Gpt2Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out, BpeScratch& sc) const {
  const int32_t n = int32_t(word.size());
  auto& syms = sc.syms;
  auto& heap = sc.heap;
  syms.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i)
    syms[i] = Sym{byte_id[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  auto greater = std::greater<Cand>();
  auto push = [&](int32_t pos) {
    const Sym& s = syms[pos];
    if (s.next < 0) return;
    if (const MergeTable::Merge* m = merges.find(s.id, syms[s.next].id)) {
      heap.push_back(Cand{m->rank, pos, m->id});
      std::push_heap(heap.begin(), heap.end(), greater);
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    Cand c = heap.back();
    heap.pop_back();
    Sym& s = syms[c.pos];
    if (s.id < 0 || s.next < 0) continue;
    Sym& r = syms[s.next];
    const MergeTable::Merge* m = merges.find(s.id, r.id);
    if (!m || m->id != c.id) continue;  // the pair changed since this candidate was queued
    s.id = c.id;
    r.id = -1;
    s.next = r.next;
    if (s.next >= 0) syms[s.next].prev = c.pos;
    if (s.prev >= 0) push(s.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

Gpt2Tokenizer::Gpt2Tokenizer() : impl_(std::make_unique<Impl>()) {}
Gpt2Tokenizer::Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept = default;
Gpt2Tokenizer& Gpt2Tokenizer::operator=(Gpt2Tokenizer&&) noexcept = default;
Gpt2Tokenizer::~Gpt2Tokenizer() = default;

Gpt2Tokenizer Gpt2Tokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  JRT_CHECK(fs::is_directory(dir), "gpt2 tokenizer: '{}' is not a directory (expected encoder.json and vocab.bpe)",
            dir);
  std::string enc_path = (fs::path(dir) / "encoder.json").string();
  std::string bpe_path = (fs::path(dir) / "vocab.bpe").string();
  std::string enc = read_whole_file(enc_path), bpe = read_whole_file(bpe_path);
  Gpt2Tokenizer t;
  t.impl_->load(enc, bpe, enc_path, bpe_path);
  return t;
}

const Gpt2Tokenizer& Gpt2Tokenizer::builtin() {
  static const Gpt2Tokenizer t = [] {
    Gpt2Tokenizer t;
    t.impl_->load(assets::gpt2_encoder_json(), assets::gpt2_vocab_bpe(), "builtin encoder.json", "builtin vocab.bpe");
    return t;
  }();
  return t;
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text, bool split_special) const {
  const Impl& im = *impl_;
  size_t bad = gpt2::find_invalid_utf8(text);
  JRT_CHECK(bad == std::string_view::npos,
            "gpt2 encode: input is not valid UTF-8: ill-formed sequence at byte offset {} (byte 0x{:02x})", bad,
            unsigned(static_cast<unsigned char>(text[bad])));

  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 16);
  gpt2::PreTokenizer::Scratch pscratch;
  Impl::BpeScratch bscratch;
  WordCache local;
  std::vector<int32_t> ids;

  auto encode_segment = [&](std::string_view seg) {
    for (size_t pos = 0; pos < seg.size();) {
      size_t end = im.pretok.next_end(seg, pos, pscratch);
      std::string_view w = seg.substr(pos, end - pos);
      pos = end;
      if (w.size() == 1) {
        out.push_back(im.byte_id[static_cast<unsigned char>(w[0])]);
        continue;
      }
      if (w.size() > kMaxCachedWord) {
        im.bpe(w, out, bscratch);
        continue;
      }
      uint64_t h = hash_bytes(w.data(), w.size());
      if (local.lookup(w, h, out)) continue;
      ids.clear();
      bool hit;
      {
        std::shared_lock lock(im.cache_mu);
        hit = im.shared_cache.lookup(w, h, ids);
      }
      if (!hit) {
        im.bpe(w, ids, bscratch);
        std::unique_lock lock(im.cache_mu);
        if (im.shared_cache.size() >= kSharedCacheEntries) im.shared_cache.clear();
        im.shared_cache.insert(w, h, ids);
      }
      if (local.size() >= kLocalCacheEntries) local.clear();
      local.insert(w, h, ids);
      out.insert(out.end(), ids.begin(), ids.end());
    }
  };

  if (split_special || im.eot < 0) {
    encode_segment(text);
    return out;
  }
  // HF matches added tokens on the raw text first; the pieces between are tokenised on their own.
  for (size_t pos = 0;;) {
    size_t at = text.find(kEndOfText, pos);
    encode_segment(text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    out.push_back(im.eot);
    pos = at + kEndOfText.size();
  }
  return out;
}

std::string Gpt2Tokenizer::decode(std::span<const int32_t> ids) const {
  const Impl& im = *impl_;
  const int64_t n = vocab_size();
  size_t bytes = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    JRT_CHECK(id >= 0 && id < n, "gpt2 decode: token id {} (position {}) is outside the vocabulary [0, {})", id, i, n);
    bytes += im.raw_off[id + 1] - im.raw_off[id];
  }
  // Tokens are short: copy a fixed 16 bytes each (raw_bytes and the output have the slack) instead
  // of a length-dependent memcpy call, then trim.
  std::string out(bytes + Impl::kCopySlack, '\0');
  char* p = out.data();
  for (int32_t id : ids) {
    uint32_t off = im.raw_off[id], len = im.raw_off[id + 1] - off;
    if (len <= Impl::kCopySlack)
      std::memcpy(p, im.raw_bytes.data() + off, Impl::kCopySlack);
    else
      std::memcpy(p, im.raw_bytes.data() + off, len);
    p += len;
  }
  out.resize(bytes);
  return out;
}

std::string Gpt2Tokenizer::token_string(int32_t id) const {
  JRT_CHECK(id >= 0 && id < vocab_size(), "gpt2 token_string: token id {} is outside the vocabulary [0, {})", id,
            vocab_size());
  return impl_->token_strings[id];
}

int32_t Gpt2Tokenizer::eot_id() const { return impl_->eot; }
int64_t Gpt2Tokenizer::vocab_size() const { return int64_t(impl_->token_strings.size()); }

}  // namespace jrt
