// io/pytorch.cpp — owns the torch.save zip reader: the archive access (libzip), a restricted
// unpickler for data.pkl that only builds plain values, storages and tensor views (no code is ever
// run, unknown globals and opcodes are refused), and the materialisation of tensor views.
#include "io/pytorch.h"

#include <zip.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <unordered_map>

namespace jrt {

namespace {

// Bounds that no real state dict comes near; they keep a hostile pickle's memory use linear in its size.
constexpr uint64_t kMaxPickleBytes = uint64_t(1) << 30;
constexpr size_t kMaxStack = size_t(1) << 20;
constexpr size_t kMaxMemo = size_t(1) << 22;
constexpr size_t kMaxObjects = size_t(1) << 23;
constexpr size_t kMaxDims = 64;
constexpr int64_t kMaxExpansion = int64_t(1) << 26;  // elements an expanded view may add beyond its storage

// Renders untrusted bytes (global names, keys) printable and short for messages.
std::string printable(std::string_view s) {
  std::string r;
  for (unsigned char c : s.substr(0, 200)) {
    if (c >= 0x20 && c < 0x7f)
      r += char(c);
    else
      r += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > 200) r += "...";
  return r;
}

// ---- zip access -------------------------------------------------------------------------------

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;

class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path) {
    int err = 0;
    zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
    if (!z) {
      zip_error_t ze;
      zip_error_init_with_code(&ze, err);
      std::string msg = zip_error_strerror(&ze);
      zip_error_fini(&ze);
      fail("{}: cannot open as a zip archive: {}", path, msg);
    }
    zip_.reset(z);
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path, ec);
    archive_bytes_ = ec ? 0 : uint64_t(bytes);
  }

  const std::string& path() const { return path_; }

  std::vector<std::string> names() const {
    std::vector<std::string> r;
    const zip_int64_t n = zip_get_num_entries(zip_.get(), 0);
    for (zip_int64_t i = 0; i < n; ++i)
      if (const char* name = zip_get_name(zip_.get(), zip_uint64_t(i), 0)) r.emplace_back(name);
    return r;
  }

  bool has(const std::string& entry) const { return zip_name_locate(zip_.get(), entry.c_str(), 0) >= 0; }

  // Uncompressed size of an entry, after checking that the directory's claims are plausible for this
  // archive (a forged size must not make us allocate terabytes).
  uint64_t size(const std::string& entry) const {
    const zip_int64_t idx = zip_name_locate(zip_.get(), entry.c_str(), 0);
    JRT_CHECK(idx >= 0, "{}: entry '{}' is missing from the archive", path_, printable(entry));
    zip_stat_t st;
    zip_stat_init(&st);
    JRT_CHECK(zip_stat_index(zip_.get(), zip_uint64_t(idx), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE) &&
                  (st.valid & ZIP_STAT_COMP_SIZE),
              "{}: cannot stat entry '{}': {}", path_, printable(entry), zip_strerror(zip_.get()));
    const bool stored = (st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE;
    const bool plausible = archive_bytes_ == 0 || (st.comp_size <= archive_bytes_ &&
                                                   (stored ? st.size == st.comp_size : st.size / 1100 <= st.comp_size));
    JRT_CHECK(plausible, "{}: entry '{}' claims {} bytes ({} compressed) in a {}-byte archive; the archive is corrupt",
              path_, printable(entry), st.size, st.comp_size, archive_bytes_);
    return st.size;
  }

  // Reads the first n bytes of an entry into dst.
  void read(const std::string& entry, void* dst, uint64_t n) const {
    ZipFilePtr f(zip_fopen(zip_.get(), entry.c_str(), 0));
    JRT_CHECK(f != nullptr, "{}: cannot open entry '{}': {}", path_, printable(entry), zip_strerror(zip_.get()));
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      const zip_int64_t r = zip_fread(f.get(), p, std::min<uint64_t>(n, uint64_t(1) << 30));
      JRT_CHECK(r > 0, "{}: cannot read entry '{}' ({} bytes short): {}", path_, printable(entry), n,
                r < 0 ? zip_file_strerror(f.get()) : "unexpected end of data");
      p += r;
      n -= uint64_t(r);
    }
  }

  std::string read_all(const std::string& entry, uint64_t limit) const {
    const uint64_t n = size(entry);
    JRT_CHECK(n <= limit, "{}: entry '{}' is {} bytes, more than the {} allowed", path_, printable(entry), n, limit);
    std::string s(size_t(n), '\0');
    read(entry, s.data(), n);
    return s;
  }

 private:
  std::string path_;
  ZipPtr zip_;
  uint64_t archive_bytes_ = 0;
};

// ---- the restricted unpickler -----------------------------------------------------------------

enum class Callable { OrderedDict, RebuildTensorV2, RebuildParameter, RebuildParameterWithState, StorageType };

struct Global {
  const char* name;
  Callable kind;
  DType dtype;  // StorageType only
};

constexpr Global kAllowedGlobals[] = {
    {"collections.OrderedDict", Callable::OrderedDict, DType::F32},
    {"torch._utils._rebuild_tensor_v2", Callable::RebuildTensorV2, DType::F32},
    {"torch._utils._rebuild_parameter", Callable::RebuildParameter, DType::F32},
    {"torch._utils._rebuild_parameter_with_state", Callable::RebuildParameterWithState, DType::F32},
    {"torch.FloatStorage", Callable::StorageType, DType::F32},
    {"torch.DoubleStorage", Callable::StorageType, DType::F64},
    {"torch.HalfStorage", Callable::StorageType, DType::F16},
    {"torch.BFloat16Storage", Callable::StorageType, DType::BF16},
    {"torch.LongStorage", Callable::StorageType, DType::I64},
    {"torch.IntStorage", Callable::StorageType, DType::I32},
    {"torch.ShortStorage", Callable::StorageType, DType::I16},
    {"torch.CharStorage", Callable::StorageType, DType::I8},
    {"torch.ByteStorage", Callable::StorageType, DType::U8},
    {"torch.BoolStorage", Callable::StorageType, DType::Bool},
};

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
  static constexpr const char* kNames[] = {"None",  "bool", "int",  "float",  "str",     "bytes",
                                           "tuple", "list", "dict", "global", "storage", "tensor"};
  return kNames[size_t(k)];
}

// One pickle value. Objects live in the unpickler's pool and refer to each other by raw pointer, so
// reference cycles a hostile pickle builds (a list appended to itself) cannot leak.
struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;  // Bool, Int; Storage / Tensor: index into the unpickler's tables
  double f = 0;   // Float
  std::string s;  // Str, Bytes; Global: qualified name
  const Global* g = nullptr;
  std::vector<Obj*> items;                        // Tuple, List
  std::vector<std::pair<Obj*, Obj*>> entries;     // Dict, in insertion order
  std::unordered_map<std::string, size_t> index;  // Dict: key -> position in entries
};

struct Storage {
  std::string key;
  DType dtype;
  int64_t numel;
  std::shared_ptr<HostTensor> buf;
};

struct BuiltTensor {
  Tensor view;
  std::shared_ptr<void> backing;
};

class Unpickler {
 public:
  Unpickler(const Archive& zip, std::string prefix, std::string_view pickle)
      : zip_(zip), prefix_(std::move(prefix)), p_(pickle) {}

  Obj* run();
  const std::vector<BuiltTensor>& tensors() const { return tensors_; }
  std::string where() const { return fmt::format("{}: {}data.pkl", zip_.path(), prefix_); }

 private:
  template <typename... Args>
  [[noreturn]] void bad(fmt::format_string<Args...> f, Args&&... args) const {
    fail("{}: {} (opcode 0x{:02x} at offset {})", where(), fmt::format(f, std::forward<Args>(args)...), op_, op_pos_);
  }

  // ---- input
  const uint8_t* take(uint64_t n) {
    if (n > p_.size() - pos_)
      bad("truncated pickle: the opcode needs {} more bytes but only {} remain", n, p_.size() - pos_);
    const uint8_t* r = reinterpret_cast<const uint8_t*>(p_.data()) + pos_;
    pos_ += size_t(n);
    return r;
  }
  uint64_t le(int n) {
    const uint8_t* b = take(uint64_t(n));
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | b[k];
    return v;
  }
  std::string_view line() {
    const size_t nl = p_.find('\n', pos_);
    if (nl == std::string_view::npos) bad("truncated pickle: GLOBAL name has no terminating newline");
    std::string_view r = p_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return r;
  }

  // ---- objects and stacks
  Obj* make(Kind k) {
    if (pool_.size() >= kMaxObjects) bad("pickle builds more than {} objects; not a state dict", kMaxObjects);
    pool_.emplace_back();
    pool_.back().kind = k;
    return &pool_.back();
  }
  Obj* make_int(int64_t v) {
    Obj* o = make(Kind::Int);
    o->i = v;
    return o;
  }
  Obj* make_str(Kind k, const uint8_t* b, uint64_t n) {
    Obj* o = make(k);
    o->s.assign(reinterpret_cast<const char*>(b), size_t(n));
    return o;
  }
  void push(Obj* o) {
    if (stack_.size() >= kMaxStack) bad("pickle stack deeper than {}", kMaxStack);
    stack_.push_back(o);
  }
  Obj* pop() {
    if (stack_.size() <= stack_floor()) bad("pickle stack underflow");
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj* top() {
    if (stack_.size() <= stack_floor()) bad("pickle stack underflow");
    return stack_.back();
  }
  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Obj*> pop_mark() {
    if (marks_.empty()) bad("pickle uses a MARK that was never set");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj*> r(stack_.begin() + std::ptrdiff_t(m), stack_.end());
    stack_.resize(m);
    return r;
  }
  Obj* tuple(std::vector<Obj*> items) {
    Obj* t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  void memo_put(uint64_t idx, Obj* o) {
    if (idx >= kMaxMemo) bad("memo index {} is beyond the {} allowed", idx, kMaxMemo);
    memo_[idx] = o;
  }
  Obj* memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("memo index {} was never stored", idx);
    return it->second;
  }

  // ---- dict keys: only scalar keys occur in state dicts
  std::string dict_key(const Obj* k) {
    switch (k->kind) {
      case Kind::Str:
        return "s" + k->s;
      case Kind::Bytes:
        return "b" + k->s;
      case Kind::Int:
        return "i" + std::to_string(k->i);
      case Kind::Bool:
        return "i" + std::to_string(k->i);
      case Kind::None:
        return "n";
      default:
        bad("dict key of type {} is not supported", kind_name(k->kind));
    }
  }
  void set_item(Obj* d, Obj* k, Obj* v) {
    if (d->kind != Kind::Dict) bad("SETITEM(S) on a {}, not a dict", kind_name(d->kind));
    auto [it, fresh] = d->index.emplace(dict_key(k), d->entries.size());
    if (fresh)
      d->entries.emplace_back(k, v);
    else
      d->entries[it->second].second = v;  // Python semantics: the last assignment wins
  }

  // ---- callables
  void global(std::string_view module, std::string_view name);
  Obj* call(Obj* callable, Obj* args);
  Obj* persistent_load(Obj* pid);
  Obj* rebuild_tensor(const std::vector<Obj*>& a);
  int64_t as_int(const Obj* o, const char* what) {
    if (o->kind != Kind::Int) bad("{} must be an int, got {}", what, kind_name(o->kind));
    return o->i;
  }
  Shape int_tuple(const Obj* o, const char* what) {
    if (o->kind != Kind::Tuple && o->kind != Kind::List)
      bad("{} must be a tuple of ints, got {}", what, kind_name(o->kind));
    if (o->items.size() > kMaxDims) bad("{} has {} dimensions, more than {}", what, o->items.size(), kMaxDims);
    Shape r;
    for (const Obj* x : o->items) r.push_back(as_int(x, what));
    return r;
  }

  const Archive& zip_;
  std::string prefix_;  // "archive/"
  std::string_view p_;
  size_t pos_ = 0, op_pos_ = 0;
  uint8_t op_ = 0;
  std::deque<Obj> pool_;
  std::vector<Obj*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj*> memo_;
  std::vector<Storage> storages_;
  std::map<std::string, size_t> storage_by_key_;
  std::vector<BuiltTensor> tensors_;
};

void Unpickler::global(std::string_view module, std::string_view name) {
  const std::string qual = std::string(module) + "." + std::string(name);
  for (const Global& g : kAllowedGlobals)
    if (qual == g.name) {
      Obj* o = make(Kind::Global);
      o->s = qual;
      o->g = &g;
      push(o);
      return;
    }
  fail("{}: pickle refers to global '{}', which a state dict never uses; refusing to load", where(), printable(qual));
}

// ('storage', <storage type>, key, location, numel): torch's persistent id for a storage record
// stored as data/<key> in the archive. Each key is read once, however many tensors view it.
Obj* Unpickler::persistent_load(Obj* pid) {
  if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage")
    bad("persistent id is not a ('storage', type, key, location, numel) tuple");
  const Obj* type = pid->items[1];
  if (type->kind != Kind::Global || type->g->kind != Callable::StorageType)
    bad("persistent id names a {} as storage type, not a torch.*Storage", kind_name(type->kind));
  if (pid->items[2]->kind != Kind::Str) bad("storage key must be a str");
  const std::string& key = pid->items[2]->s;
  const int64_t numel = as_int(pid->items[4], "storage numel");
  if (numel < 0) bad("storage '{}' has negative size {}", printable(key), numel);
  const DType dt = type->g->dtype;

  auto found = storage_by_key_.find(key);
  if (found == storage_by_key_.end()) {
    const std::string entry = prefix_ + "data/" + key;
    JRT_CHECK(zip_.has(entry), "{}: storage entry '{}' is missing from the archive", zip_.path(), printable(entry));
    int64_t need = 0;
    if (__builtin_mul_overflow(numel, int64_t(dtype_size(dt)), &need))
      bad("storage '{}' size {} x {} overflows", printable(key), numel, dtype_size(dt));
    const uint64_t have = zip_.size(entry);
    JRT_CHECK(have >= uint64_t(need), "{}: storage entry '{}' is too short: {} bytes, but {} {} elements need {}",
              zip_.path(), printable(entry), have, numel, dtype_name(dt), need);
    auto buf = std::make_shared<HostTensor>(dt, Shape{numel});
    if (need > 0) zip_.read(entry, buf->view().data, uint64_t(need));
    found = storage_by_key_.emplace(key, storages_.size()).first;
    storages_.push_back({key, dt, numel, std::move(buf)});
  } else {
    const Storage& s = storages_[found->second];
    if (s.dtype != dt || s.numel != numel)
      bad("storage '{}' is referenced as {} x {} and as {} x {}", printable(key), s.numel, dtype_name(s.dtype), numel,
          dtype_name(dt));
  }
  Obj* o = make(Kind::Storage);
  o->i = int64_t(found->second);
  return o;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
Obj* Unpickler::rebuild_tensor(const std::vector<Obj*>& a) {
  if (a.size() < 6 || a.size() > 7) bad("_rebuild_tensor_v2 takes 6 or 7 arguments, got {}", a.size());
  if (a[0]->kind != Kind::Storage)
    bad("_rebuild_tensor_v2's first argument is a {}, not a storage", kind_name(a[0]->kind));
  const Storage& st = storages_[size_t(a[0]->i)];
  const int64_t offset = as_int(a[1], "tensor storage offset");
  const Shape size = int_tuple(a[2], "tensor size");
  const Shape stride = int_tuple(a[3], "tensor stride");
  if (size.size() != stride.size())
    bad("tensor size {} and stride {} differ in length", shape_str(size), shape_str(stride));
  if (offset < 0) bad("tensor storage offset {} is negative", offset);
  int64_t numel = 1, last = offset;  // `last`: the furthest storage element the view reaches
  for (size_t d = 0; d < size.size(); ++d) {
    if (size[d] < 0 || stride[d] < 0)
      bad("tensor size {} / stride {} has a negative entry", shape_str(size), shape_str(stride));
    if (__builtin_mul_overflow(numel, size[d], &numel)) bad("tensor size {} overflows", shape_str(size));
  }
  if (numel > 0) {
    for (size_t d = 0; d < size.size(); ++d) {
      int64_t reach = 0;
      if (__builtin_mul_overflow(size[d] - 1, stride[d], &reach) || __builtin_add_overflow(last, reach, &last))
        bad("tensor size {} stride {} overflows", shape_str(size), shape_str(stride));
    }
    JRT_CHECK(last < st.numel,
              "{}: tensor view (offset {}, size {}, stride {}) reaches element {}, beyond its storage '{}' of {} "
              "elements",
              where(), offset, shape_str(size), shape_str(stride), last, printable(st.key), st.numel);
  } else if (offset > st.numel) {
    bad("empty tensor's storage offset {} is beyond its storage '{}' of {} elements", offset, printable(st.key),
        st.numel);
  }
  // Overlapping strides (stride-0 expansion) can describe far more elements than the storage holds;
  // materialising them must stay within reason.
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, int64_t(dtype_size(st.dtype)), &nbytes) || numel - st.numel > kMaxExpansion)
    bad("tensor view of {} elements (size {}, stride {}) over a storage of {} elements is too large to materialise",
        numel, shape_str(size), shape_str(stride), st.numel);

  Tensor view(static_cast<char*>(st.buf->view().data) + offset * int64_t(dtype_size(st.dtype)), st.dtype, size);
  view.strides = stride;
  BuiltTensor bt;
  if (view.is_contiguous()) {  // share the storage buffer
    view.strides = Tensor(view.data, view.dtype, view.shape).strides;
    bt = {view, st.buf};
  } else {  // materialise strided views (transposes, expands) as contiguous copies
    auto copy = std::make_shared<HostTensor>(HostTensor::copy_of(view));
    bt = {copy->view(), copy};
  }
  Obj* o = make(Kind::Tensor);
  o->i = int64_t(tensors_.size());
  tensors_.push_back(std::move(bt));
  return o;
}

Obj* Unpickler::call(Obj* callable, Obj* args) {
  if (callable->kind != Kind::Global) bad("REDUCE/NEWOBJ calls a {}, not an allowed global", kind_name(callable->kind));
  if (args->kind != Kind::Tuple) bad("REDUCE/NEWOBJ arguments are a {}, not a tuple", kind_name(args->kind));
  const auto& a = args->items;
  switch (callable->g->kind) {
    case Callable::OrderedDict:
      if (!a.empty())
        bad("collections.OrderedDict is called with {} arguments; only OrderedDict() is supported", a.size());
      return make(Kind::Dict);
    case Callable::RebuildTensorV2:
      return rebuild_tensor(a);
    case Callable::RebuildParameter:           // (data, requires_grad, backward_hooks)
    case Callable::RebuildParameterWithState:  // (data, requires_grad, backward_hooks, state)
      if (a.size() < 3 || a.size() > 4 || a[0]->kind != Kind::Tensor)
        bad("{} needs (tensor, requires_grad, backward_hooks[, state])", callable->s);
      return a[0];
    case Callable::StorageType:
      bad("{} is called directly; storages only occur as persistent ids", callable->s);
  }
  bad("unreachable callable");
}

Obj* Unpickler::run() {
  while (true) {
    if (pos_ >= p_.size()) fail("{}: pickle ends without a STOP opcode (truncated?) at offset {}", where(), pos_);
    op_pos_ = pos_;
    op_ = uint8_t(p_[pos_++]);
    switch (op_) {
      case 0x80: {  // PROTO
        const uint64_t v = le(1);
        if (v < 2 || v > 5) bad("unsupported pickle protocol {}", v);
        break;
      }
      case 0x95:  // FRAME: a length hint only
        le(8);
        break;
      case '.':  // STOP
        if (!marks_.empty()) bad("STOP with an unclosed MARK");
        if (stack_.size() != 1) bad("STOP with {} objects on the stack (expected 1)", stack_.size());
        return stack_.back();
      case '(':  // MARK
        if (marks_.size() >= kMaxStack) bad("too many nested MARKs");
        marks_.push_back(stack_.size());
        break;
      case '0':  // POP
        pop();
        break;
      case '1':  // POP_MARK
        pop_mark();
        break;
      case '}':  // EMPTY_DICT
        push(make(Kind::Dict));
        break;
      case ']':  // EMPTY_LIST
        push(make(Kind::List));
        break;
      case ')':  // EMPTY_TUPLE
        push(tuple({}));
        break;
      case 'N':  // NONE
        push(make(Kind::None));
        break;
      case 0x88:    // NEWTRUE
      case 0x89: {  // NEWFALSE
        Obj* o = make(Kind::Bool);
        o->i = op_ == 0x88;
        push(o);
        break;
      }
      case 'J':  // BININT
        push(make_int(int64_t(int32_t(uint32_t(le(4))))));
        break;
      case 'K':  // BININT1
        push(make_int(int64_t(le(1))));
        break;
      case 'M':  // BININT2
        push(make_int(int64_t(le(2))));
        break;
      case 0x8a:    // LONG1
      case 0x8b: {  // LONG4
        const uint64_t n = op_ == 0x8a ? le(1) : le(4);
        if (n > 8) bad("integer of {} bytes does not fit in 64 bits", n);
        const uint8_t* b = take(n);
        uint64_t v = 0;
        for (uint64_t k = n; k-- > 0;) v = (v << 8) | b[k];
        if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
        push(make_int(int64_t(v)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const uint8_t* b = take(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = (u << 8) | b[k];
        Obj* o = make(Kind::Float);
        o->f = std::bit_cast<double>(u);
        push(o);
        break;
      }
      case 'X': {  // BINUNICODE
        const uint64_t n = le(4);
        push(make_str(Kind::Str, take(n), n));
        break;
      }
      case 0x8c: {  // SHORT_BINUNICODE
        const uint64_t n = le(1);
        push(make_str(Kind::Str, take(n), n));
        break;
      }
      case 0x8d: {  // BINUNICODE8
        const uint64_t n = le(8);
        push(make_str(Kind::Str, take(n), n));
        break;
      }
      case 'U': {  // SHORT_BINSTRING (Python 2 str)
        const uint64_t n = le(1);
        push(make_str(Kind::Str, take(n), n));
        break;
      }
      case 'T': {  // BINSTRING
        const int64_t n = int32_t(uint32_t(le(4)));
        if (n < 0) bad("BINSTRING with negative length {}", n);
        push(make_str(Kind::Str, take(uint64_t(n)), uint64_t(n)));
        break;
      }
      case 'C': {  // SHORT_BINBYTES
        const uint64_t n = le(1);
        push(make_str(Kind::Bytes, take(n), n));
        break;
      }
      case 'B': {  // BINBYTES
        const uint64_t n = le(4);
        push(make_str(Kind::Bytes, take(n), n));
        break;
      }
      case 't':  // TUPLE
        push(tuple(pop_mark()));
        break;
      case 0x85: {  // TUPLE1
        Obj* a = pop();
        push(tuple({a}));
        break;
      }
      case 0x86: {  // TUPLE2
        Obj* b = pop();
        Obj* a = pop();
        push(tuple({a, b}));
        break;
      }
      case 0x87: {  // TUPLE3
        Obj* c = pop();
        Obj* b = pop();
        Obj* a = pop();
        push(tuple({a, b, c}));
        break;
      }
      case 'l': {  // LIST
        Obj* l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        break;
      }
      case 'a': {  // APPEND
        Obj* v = pop();
        Obj* l = top();
        if (l->kind != Kind::List) bad("APPEND to a {}, not a list", kind_name(l->kind));
        l->items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Obj*> vs = pop_mark();
        Obj* l = top();
        if (l->kind != Kind::List) bad("APPENDS to a {}, not a list", kind_name(l->kind));
        l->items.insert(l->items.end(), vs.begin(), vs.end());
        break;
      }
      case 'd': {  // DICT
        std::vector<Obj*> kv = pop_mark();
        if (kv.size() % 2) bad("DICT with an odd number of items");
        Obj* d = make(Kind::Dict);
        for (size_t k = 0; k < kv.size(); k += 2) set_item(d, kv[k], kv[k + 1]);
        push(d);
        break;
      }
      case 's': {  // SETITEM
        Obj* v = pop();
        Obj* k = pop();
        set_item(top(), k, v);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Obj*> kv = pop_mark();
        if (kv.size() % 2) bad("SETITEMS with an odd number of items");
        Obj* d = top();
        for (size_t k = 0; k < kv.size(); k += 2) set_item(d, kv[k], kv[k + 1]);
        break;
      }
      case 'q':  // BINPUT
        memo_put(le(1), top());
        break;
      case 'r':  // LONG_BINPUT
        memo_put(le(4), top());
        break;
      case 0x94:  // MEMOIZE
        memo_put(memo_.size(), top());
        break;
      case 'h':  // BINGET
        push(memo_get(le(1)));
        break;
      case 'j':  // LONG_BINGET
        push(memo_get(le(4)));
        break;
      case 'c': {  // GLOBAL "module\nname\n"
        const std::string_view module = line();
        const std::string_view name = line();
        global(module, name);
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Obj* name = pop();
        Obj* module = pop();
        if (module->kind != Kind::Str || name->kind != Kind::Str) bad("STACK_GLOBAL operands must be strings");
        global(module->s, name->s);
        break;
      }
      case 'R': {  // REDUCE
        Obj* args = pop();
        Obj* fn = pop();
        push(call(fn, args));
        break;
      }
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
        Obj* args = pop();
        Obj* cls = pop();
        push(call(cls, args));
        break;
      }
      case 'b': {  // BUILD: sets attributes (a state dict's _metadata); values need none of them
        pop();
        Obj* o = top();
        if (o->kind != Kind::Dict && o->kind != Kind::Tensor) bad("BUILD on a {}", kind_name(o->kind));
        break;
      }
      case 'Q': {  // BINPERSID
        Obj* pid = pop();
        push(persistent_load(pid));
        break;
      }
      default:
        fail("{}: unknown or unsupported pickle opcode 0x{:02x} at offset {}", where(), op_, op_pos_);
    }
  }
}

}  // namespace

WeightStore read_pytorch_checkpoint(const std::string& path) {
  Archive zip(path);
  // torch.save writes every record under one top-level folder whose name varies ("archive",
  // "pytorch_model", the file's stem); data.pkl tells us which.
  std::string prefix;
  bool found = false;
  for (const std::string& n : zip.names()) {
    const size_t slash = n.find('/');
    if (slash != std::string::npos && n.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = n.substr(0, slash + 1);
      found = true;
      break;
    }
  }
  JRT_CHECK(found, "{}: no '<folder>/data.pkl' in the zip archive; not a torch.save checkpoint", path);
  if (zip.has(prefix + "byteorder")) {
    std::string order = zip.read_all(prefix + "byteorder", 64);
    while (!order.empty() && (order.back() == '\n' || order.back() == '\r' || order.back() == ' ')) order.pop_back();
    JRT_CHECK(order == "little", "{}: byteorder is '{}'; only little-endian checkpoints are supported", path,
              printable(order));
  }
  const std::string pickle = zip.read_all(prefix + "data.pkl", kMaxPickleBytes);

  Unpickler up(zip, prefix, pickle);
  const Obj* root = up.run();
  JRT_CHECK(root->kind == Kind::Dict, "{}: the pickled object is a {}, not a dict of tensors (state dict)", up.where(),
            kind_name(root->kind));
  WeightStore w;
  w.set_source(path);
  for (const auto& [k, v] : root->entries) {
    JRT_CHECK(k->kind == Kind::Str, "{}: state dict key of type {}; keys must be strings", up.where(),
              kind_name(k->kind));
    if (v->kind == Kind::Int || v->kind == Kind::Float || v->kind == Kind::Bool) continue;  // counters, step numbers
    JRT_CHECK(v->kind == Kind::Tensor, "{}: state dict entry '{}' is a {}, not a tensor", up.where(), printable(k->s),
              kind_name(v->kind));
    const BuiltTensor& t = up.tensors()[size_t(v->i)];
    w.add(k->s, t.view);
    w.keep_alive(t.backing);
  }
  return w;
}

}  // namespace jrt
